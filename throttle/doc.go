// Package throttle is the resource side of cemaf: it reads the device's
// resource signals, decides when work must pause, and slows or sheds work so
// that an agent on a Raspberry Pi or a Jetson pauses rather than crashes
// when it runs hot, short of memory or short of disk.
//
// # Signals
//
// A Sampler reads one full Sample per call: CPU use of the system and of
// this process (from /proc/stat and /proc/self/stat deltas), memory used and
// available relative to the effective limit (the smaller of the host's
// MemTotal and the cgroup v1 or v2 memory limit), swap, this process's
// resident memory, load averages, Linux PSI (/proc/pressure) when present,
// file system usage of configured paths, and extra Signals such as the
// thermal package's "temperature_c". The procfs, sysfs and cgroup roots are
// options, for containers that mount the host's at /host/proc and for the
// fixture trees in testdata/. Sample.Value returns any signal by name (the
// Signal... constants).
//
// A Monitor owns the one background goroutine that samples a SampleSource
// (a *Sampler, or a scripted source in tests) every CheckInterval (5 s).
// Start takes the first sample synchronously; Close stops the goroutine and
// waits for it. Snapshot returns the latest sample with its age through one
// atomic load; Next returns a channel closed when the next sample lands;
// Subscribe calls a function with every sample on the monitor goroutine.
// The Monitor keeps a ring buffer of compact Points (History), appends them
// to a JSON Lines file (MetricsPath), and serves the latest values in the
// Prometheus text format (Handler).
//
// # Guards
//
// A Guard blocks work while a resource is over its limit (Wait) and says
// why without blocking (Check, returning a *LimitError). CPUGuard,
// DiskGuard and MemoryGuard read a SnapshotSource — never /proc on the hot
// path — and their Wait returns when a fresh sample says the resource is
// back under its limit. CompositeGuard combines named guards with the any,
// all or k-of-n strategy and reports which members tripped. Guards satisfy
// the executor's Gate and Checker interfaces, which is how a DAG run pauses
// before its next node.
//
// The Breaker is the resource circuit breaker: closed → open → half-open →
// closed. It opens when a signal is over its threshold for TripAfter
// consecutive fresh samples, stays open for a cooldown that grows on
// repeated trips, becomes half-open only when every signal is below its
// threshold minus a margin, admits HalfOpenProbes callers while half-open,
// and closes on the next healthy sample (or reopens on an unhealthy one).
// It is a pure state machine over samples (Observe uses Sample.Time as the
// current time); Attach drives it from a Monitor.
//
// MemoryGuard adds a soft limit in MB above which registered Evictables (the
// context pager) are asked to free memory, in LRU, LFU, PRIORITY or SIZE
// order, down to the soft limit minus a margin; above the hard limit, or
// above a percentage of the effective memory, Check fails and Wait blocks.
// The MB limits apply to the process's anonymous resident memory (see
// MemoryGuardOptions). Stream consults any Guard between the items of an
// iterator; Admit is the fast path for one admission (Check, then Wait only
// when Check fails).
//
// CPUThrottler holds this process's CPU use at or under a target over a
// sliding window by delaying operations (Do, Call).
//
// # Limits
//
// Every limit hit is a *LimitError (an alias of the module's one limit
// error type): errors.As extracts it and errors.Is(err, ErrLimitExceeded)
// matches it, including through CompositeError and BreakerOpenError.
// ApplyRlimits sets process rlimits and reports failures as warnings;
// NotifyCPULimit turns SIGXCPU into a cancelled context.
//
// # Goroutines and lifetimes
//
// Only Monitor (one goroutine, from Start to Close), NotifyCPULimit (one,
// until stop) and CompositeGuard.Wait (one per tripped member, for the
// duration of the call, for strategies other than any) start goroutines.
// Samplers, guards, breakers and throttlers own none and need no Close,
// except MemoryGuard, whose Close detaches it and restores the Go memory
// limit. Callbacks (subscribers, transition listeners, Evictables, extra
// Signals) are never called with a lock of this package held, and their
// panics are recovered.
//
// # Units
//
// Percentages are in [0, 100] (thresholds in (0, 100]); PSI figures are
// percent of wall time; CPU percentages are shares of all online CPUs, except
// CPUThrottler's target, which is a share of CPUThrottlerOptions.Cores cores.
// Byte counts are int64 bytes; "MB" is 2^20 bytes; temperatures are degrees
// Celsius; durations are time.Duration.
//
// # Caveats
//
//   - CPU percentages come from USER_HZ tick counters: over intervals
//     shorter than a few ticks (10 ms each) they are coarse, and an interval
//     with no tick repeats the previous value.
//   - The cgroup of the process is resolved once (again only if it
//     disappears); a process moved to another cgroup keeps the old limit
//     until then. Only the memory controller is read; the CPU quota is
//     seen through runtime.GOMAXPROCS.
//   - PSI is the host's /proc/pressure, not the cgroup's memory.pressure.
//   - MemoryGuard's figure lags the kernel's by up to one check interval,
//     and freed Go memory shows in RSS only after a garbage collection;
//     hence the debug.FreeOSMemory call after a reclaim (NoFreeOSMemory).
//   - Disk usage uses statfs; a path on a hung network file system blocks
//     the sample.
//   - Rlimits and SIGXCPU are process-wide: call ApplyRlimits and
//     NotifyCPULimit from main only. RLIMIT_AS counts virtual memory, which
//     Go reserves generously; a tight value makes allocation fail.
//   - On systems other than Linux, the Sampler falls back to gopsutil
//     (no cgroup, no PSI) and ApplyRlimits is a logged no-op.
package throttle
