//go:build unix

package factories

import (
	"os"
	"syscall"
)

// fileSystemID returns the device number of the file system holding p.
func fileSystemID(p string) (uint64, bool) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Dev), true //nolint:unconvert // Dev is not uint64 everywhere
}
