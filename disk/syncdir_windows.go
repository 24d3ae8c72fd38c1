package disk

// syncDir is a no-op on Windows, where a directory handle cannot be
// flushed; the durability of the rename is left to the file system.
func syncDir(string) error { return nil }
