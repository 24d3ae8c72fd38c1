package throttle

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// diskUsage returns the df-style usage of the file system holding path
// (one statfs(2) call): used blocks over the blocks usable by unprivileged
// users, so a disk whose reserved blocks are all that remain reads 100.
func diskUsage(path string) (DiskUsage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return DiskUsage{}, fmt.Errorf("disk %s: statfs: %w", path, err)
	}
	bsize := uint64(st.Frsize)
	if bsize == 0 {
		bsize = uint64(st.Bsize)
	}
	return usageFromBlocks(path, st.Blocks, st.Bfree, st.Bavail, bsize), nil
}
