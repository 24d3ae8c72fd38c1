// Package throttle is the resource side of cemaf: it reads the device's
// resource signals, decides when work must adapt and when it must pause, and
// paces CPU-heavy calls, so that an agent on a Raspberry Pi or a Jetson
// pauses rather than crashes when the device is in danger — and only then.
//
// # Signals
//
// A Sampler reads one full Sample per call: CPU use of the machine, of this
// process and of its helpers (from /proc/stat and /proc/<pid>/stat deltas),
// CPU contention (what everything else uses), memory used and available
// relative to the effective limit (the smaller of the host's MemTotal and the
// cgroup v1 or v2 memory limit), swap, this process's resident memory, load
// averages, Linux PSI (/proc/pressure) when present, file system usage of
// configured paths (statfs), and extra Signals such as the thermal package's
// "temperature_c". The procfs, sysfs and cgroup roots are options, for
// containers that mount the host's at /host/proc and for the fixture trees in
// testdata/. Every file is read with a bound, and FIFOs and devices planted
// where a procfs file should be are refused without blocking.
// Sample.Value returns any signal by name (the Signal... constants).
//
// Helpers are the processes that do the agent's work elsewhere, most often a
// local LLM server (llama.cpp's server, Ollama): named by PID, process name
// or cgroup, or found from the listening socket of a local endpoint. Their
// CPU use, and that of this process's children, is the agent's own: it never
// counts as contention.
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
// # Ladders
//
// Each signal has one Ladder and one owner, the Breaker: a level at which
// the adaptive executor adapts (slows, narrows, pages) and a higher level at
// which work pauses, with hysteresis on the way down, a hold time against
// flapping, and a cooldown after a pause that doubles on repeated trips and
// decays after a quiet period (see Ladder for the exact rules). The default
// ladders watch temperature, memory, swap, disk and CPU contention; the
// thermal package derives temperature levels from a board's trip points, and
// the factories package builds every ladder from one configuration. While a
// signal is on its Pause rung the Breaker's Check fails with a *PauseError
// naming that signal and no other, and Wait blocks: that is how a DAG run
// pauses before its next node and how a service refuses new work. OnChange
// reports every rung change; Status shows where each signal stands.
//
// A Guard is anything that can hold work back (Wait blocks, Check says why
// without blocking): the Breaker, and guards of the application's own.
// CompositeGuard combines them. Stream consults a Guard between the items of
// an iterator; Admit is the fast path for one admission.
//
// The Reclaimer asks Evictables (the context pager) to free memory when this
// process's anonymous memory goes over a soft limit: the adaptation of the
// process memory ladder, whose pause level is the hard limit.
//
// CPUThrottler paces operations (an LLM call) by delaying them so that the
// CPU they cause stays at or under a target over a sliding window. It
// measures this process by default; Sampler.AgentCPUTime adds the helpers
// (so a local LLM server is what gets paced), Sampler.BoardCPUTime the whole
// board. Its Stats count the delays it added.
//
// # Limits
//
// Every limit hit is a *limit.Error: errors.As extracts it and
// errors.Is(err, limit.ErrExceeded) matches it, including through
// CompositeError and PauseError. ApplyRlimits sets process rlimits and
// reports failures as warnings; NotifyCPULimit turns SIGXCPU into a
// cancelled context; WriteOOMScoreAdj makes the process the OOM killer's
// first choice.
//
// # Goroutines and lifetimes
//
// Only Monitor (one goroutine, from Start to Close) and NotifyCPULimit (one,
// until stop) start goroutines. Samplers, breakers, guards, throttlers own
// none and need no Close, except Reclaimer, whose Close detaches it.
// Callbacks (subscribers, change listeners, Evictables, extra Signals) are
// never called with a lock of this package held, and their panics are
// recovered.
//
// # Units
//
// Percentages are in [0, 100]; PSI figures are percent of wall time; CPU
// percentages are shares of all online CPUs, except CPUThrottler's target,
// which is a share of CPUThrottlerOptions.Cores cores. Byte counts are int64
// bytes; "MB" is 2^20 bytes; temperatures are degrees Celsius; durations are
// time.Duration.
//
// # Caveats
//
//   - CPU percentages come from USER_HZ tick counters: over intervals
//     shorter than a few ticks (10 ms each) they are coarse, and an interval
//     with no tick repeats the previous value.
//   - A helper found from an endpoint needs its /proc/<pid>/fd readable: the
//     same user, or root. A server run by another user is found by name or
//     cgroup instead (declare it). An endpoint's host is local only when it
//     is a literal address of this machine, "localhost" or its host name: no
//     DNS lookup is made.
//   - The cgroup of the process is resolved once (again only if it
//     disappears); a process moved to another cgroup keeps the old limit
//     until then. Only the memory controller is read for limits.
//   - PSI is the host's /proc/pressure, not the cgroup's memory.pressure.
//   - The Reclaimer's figure lags the kernel's by up to one check interval,
//     and freed Go memory shows in RSS only after a garbage collection;
//     hence the debug.FreeOSMemory call after a reclaim (NoFreeOSMemory).
//   - Disk usage uses statfs; a path on a hung network file system blocks
//     the sample.
//   - Rlimits and SIGXCPU are process-wide: call ApplyRlimits and
//     NotifyCPULimit from main only. RLIMIT_AS counts virtual memory, which
//     Go reserves generously; a tight value makes allocation fail.
//   - On systems other than Linux, the Sampler falls back to gopsutil (no
//     cgroup, no PSI, no helpers) and ApplyRlimits is a logged no-op.
package throttle
