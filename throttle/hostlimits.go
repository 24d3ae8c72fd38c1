package throttle

import "runtime"

// HostInfo is what host-derived concurrency limits are computed from.
type HostInfo struct {
	// Cores is the number of CPUs the process may use. DetectHostInfo
	// takes runtime.GOMAXPROCS(0), which since Go 1.25 honours the
	// cgroup CPU quota (cpu.max on v2, cpu.cfs_quota_us/cpu.cfs_period_us
	// on v1, rounded up, never below 2 unless fewer CPUs exist) and the
	// CPU affinity mask, unless the GOMAXPROCS environment variable or
	// GODEBUG=containermaxprocs=0 says otherwise. Values < 1 count as 2.
	Cores int
	// NoFileSoft is the RLIMIT_NOFILE soft limit; 0 when unknown or
	// unlimited (the I/O clamp is then skipped). Go raises the soft limit
	// to the hard limit at startup on Unix, so this is normally the hard
	// limit.
	NoFileSoft uint64
}

// DetectHostInfo reads the CPU count and the open-files limit of this
// process.
func DetectHostInfo() HostInfo {
	return HostInfo{Cores: runtime.GOMAXPROCS(0), NoFileSoft: noFileSoftLimit()}
}

// HostLimitOverrides holds explicit values that win over the host-derived
// defaults. A nil field means "derive from the host"; an explicit value
// below 1 is raised to 1, so that no class of work is wedged.
type HostLimitOverrides struct {
	Blocking *int // HostLimits.Blocking
	IO       *int // HostLimits.IO
	Pool     *int // HostLimits.Pool
}

// HostLimits are concurrency ceilings derived from the host (seed 004).
type HostLimits struct {
	// Cores is the CPU count the defaults were derived from.
	Cores int
	// Blocking bounds work that holds a thread while it waits (blocking
	// system calls, cgo, CPU-bound node functions): max(2, cores − 2),
	// leaving cores for the scheduler and the monitor.
	Blocking int
	// IO bounds concurrent I/O-bound work that may each hold a file
	// descriptor: cores × 64, at least 64, then clamped to half the
	// RLIMIT_NOFILE soft limit (the other half is left to the rest of the
	// process) and to at least 1.
	IO int
	// Pool is the default worker pool size: cores × 2 clamped to [8, 64].
	Pool int
}

// ResolveHostLimits returns the limits for this host, with overrides
// applied. It reads the CPU count and one rlimit; it does not cache them.
func ResolveHostLimits(o HostLimitOverrides) HostLimits {
	return DetectHostInfo().Resolve(o)
}

// Resolve computes the limits for h with overrides applied. It is pure.
func (h HostInfo) Resolve(o HostLimitOverrides) HostLimits {
	cores := h.Cores
	if cores < 1 {
		cores = 2
	}
	l := HostLimits{Cores: cores}
	l.Blocking = max(2, cores-2)
	l.IO = max(64, cores*64)
	if h.NoFileSoft > 0 {
		half := h.NoFileSoft / 2
		if half < uint64(l.IO) {
			l.IO = int(half)
		}
		l.IO = max(1, l.IO)
	}
	l.Pool = min(64, max(8, cores*2))
	override := func(dst *int, v *int) {
		if v != nil {
			*dst = max(1, *v)
		}
	}
	override(&l.Blocking, o.Blocking)
	override(&l.IO, o.IO)
	override(&l.Pool, o.Pool)
	return l
}
