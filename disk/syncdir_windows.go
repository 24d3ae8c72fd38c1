package disk

// SyncDir is a no-op on Windows, where a directory handle cannot be
// flushed; the durability of a rename is left to the file system.
func SyncDir(string) error { return nil }
