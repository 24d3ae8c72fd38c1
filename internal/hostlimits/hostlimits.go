// Package hostlimits derives the concurrency ceilings of this host: how
// many nodes of each class the executor runs at once unless told otherwise.
//
// Derive is pure: from a CPU count and the open-files limit it computes a
// ceiling for work that holds a thread (CPU-bound node functions, blocking
// system calls): max(2, cores − 2), leaving cores to the scheduler and the
// monitor; one for I/O-bound work that may each hold a file descriptor (an
// LLM or HTTP call): cores × 64, at least 64, then clamped to half the
// RLIMIT_NOFILE soft limit and to at least 1; and a worker pool size:
// cores × 2 in [8, 64]. Detect reads the CPU count and the limit of this
// process. Explicit settings (flags, files, CEMAF_RESOURCE_* variables) win
// over these values; that precedence is the caller's.
//
// # Caveats
//
// Detect does not cache: each call reads GOMAXPROCS and one rlimit. The CPU
// count is runtime.GOMAXPROCS(0), which honours the cgroup CPU quota and
// the affinity mask (see Detect); the open-files limit is the soft limit,
// which Go raises to the hard limit at startup on Unix.
package hostlimits

import "runtime"

// Limits are concurrency ceilings for one host. Every field is at least 1.
type Limits struct {
	// CPU bounds work that holds a thread while it runs: max(2, cores − 2).
	CPU int
	// IO bounds concurrent I/O-bound work: cores × 64, at least 64, then
	// clamped to half the RLIMIT_NOFILE soft limit (the other half is left
	// to the rest of the process) and to at least 1.
	IO int
	// Pool is the default worker pool size: cores × 2 clamped to [8, 64].
	Pool int
}

// Derive computes the limits for a host with cores usable CPUs (values
// < 1 count as 2) and an RLIMIT_NOFILE soft limit of noFileSoft (0 when
// unknown or unlimited: the I/O clamp is then skipped).
func Derive(cores int, noFileSoft uint64) Limits {
	if cores < 1 {
		cores = 2
	}
	l := Limits{CPU: max(2, cores-2), IO: max(64, cores*64), Pool: min(64, max(8, cores*2))}
	if noFileSoft > 0 {
		if half := noFileSoft / 2; half < uint64(l.IO) {
			l.IO = max(1, int(half))
		}
	}
	return l
}

// Detect returns the limits of this process's host: Derive of
// runtime.GOMAXPROCS(0) and the RLIMIT_NOFILE soft limit. GOMAXPROCS since
// Go 1.25 honours the cgroup CPU quota (cpu.max on v2,
// cpu.cfs_quota_us/cpu.cfs_period_us on v1, rounded up, never below 2
// unless fewer CPUs exist) and the CPU affinity mask, unless the GOMAXPROCS
// environment variable or GODEBUG=containermaxprocs=0 says otherwise.
func Detect() Limits {
	return Derive(runtime.GOMAXPROCS(0), noFileSoftLimit())
}

// NoFileSoft returns this process's RLIMIT_NOFILE soft limit, 0 when it is
// unknown or unlimited.
func NoFileSoft() uint64 { return noFileSoftLimit() }
