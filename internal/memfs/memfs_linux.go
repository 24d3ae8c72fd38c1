package memfs

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// InRAM reports whether the file system holding dir keeps its files in
// memory (tmpfs, ramfs).
func InRAM(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, fmt.Errorf("memfs: statfs %s: %w", dir, err)
	}
	// Type is an int32 on 32-bit boards, where ramfs's magic is negative.
	switch uint32(st.Type) {
	case unix.TMPFS_MAGIC, unix.RAMFS_MAGIC:
		return true, nil
	}
	return false, nil
}
