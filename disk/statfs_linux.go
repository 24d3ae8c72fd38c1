package disk

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Stat returns the usage of the file system holding path (one statfs(2)
// call). Safe for concurrent use.
func Stat(path string) (Usage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Usage{}, fmt.Errorf("disk: statfs %s: %w", path, err)
	}
	bsize := uint64(st.Frsize)
	if bsize == 0 {
		bsize = uint64(st.Bsize)
	}
	return usageFromBlocks(path, st.Blocks, st.Bfree, st.Bavail, bsize), nil
}
