//go:build unix

package hostlimits

import "golang.org/x/sys/unix"

// noFileSoftLimit returns the RLIMIT_NOFILE soft limit, or 0 when it cannot
// be read or is unlimited.
func noFileSoftLimit() uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY {
		return 0
	}
	return uint64(rl.Cur)
}
