package memfs

import (
	"fmt"
	"syscall"
)

// The f_type of the file systems that keep their files in RAM (statfs(2)).
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

// InRAM reports whether the file system holding dir keeps its files in
// memory (tmpfs, ramfs).
func InRAM(dir string) (bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false, fmt.Errorf("memfs: statfs %s: %w", dir, err)
	}
	// Type is an int32 on 32-bit boards, where ramfs's magic is negative.
	switch uint32(st.Type) {
	case tmpfsMagic, ramfsMagic:
		return true, nil
	}
	return false, nil
}
