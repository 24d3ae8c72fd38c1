package paging

import "golang.org/x/sys/unix"

// dropMapped advises the kernel that the size bytes mapped at addr are not
// needed: the mapping is shared, read-only and backed by the file, so the
// pages are dropped from the resident set, not lost. An error (nothing to
// drop) is ignored.
func dropMapped(addr uintptr, size int64) {
	if size > 0 {
		unix.Syscall(unix.SYS_MADVISE, addr, uintptr(size), unix.MADV_DONTNEED)
	}
}
