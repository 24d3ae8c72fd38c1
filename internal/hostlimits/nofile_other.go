//go:build !unix

package hostlimits

// noFileSoftLimit returns 0: there is no RLIMIT_NOFILE here.
func noFileSoftLimit() uint64 { return 0 }
