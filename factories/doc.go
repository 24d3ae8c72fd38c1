// Package factories builds the resource-aware runtime of cemaf from one
// configuration: the values of the CEMAF_RESOURCE_* environment variables,
// a config file, explicit settings (flags), the board's trip points and
// host-derived defaults.
//
// # Configuration
//
// A ResourceConfig holds every setting; Variables documents them (the
// README's table is that list). Load reads them with the precedence
//
//	explicit setting (flag) > config file > environment > board or host default
//
// and remembers where each value came from (ResourceConfig.Source, Note,
// WriteTo, Effective). The ladder of every signal — temperature, memory,
// this process's memory, swap, disk and CPU contention — comes from here
// and nowhere else (Ladders): an adapt level and a pause level (the
// *_THRESHOLD variables), with the hysteresis, trip count, cooldown and hold
// time the throttle Breaker applies. Temperature levels come from the
// board's trip points when it has them; the memory limits and the
// concurrency classes from the effective memory (the smaller of the host's
// and the cgroup limit), the usable CPUs and the open-files limit: on a
// 4 GB, 4-core Raspberry Pi the process memory ladder adapts at 3072 MB and
// pauses above 3584 MB, two CPU-bound nodes run at once and 256 I/O-bound
// ones. Every bad value is reported at once (errors.Join): each error names
// the variable, the value, where it came from and the accepted range, and
// relations between values (an adapt level above its pause level) are
// checked when the configuration is loaded. An adapt level left at its
// default follows a pause level set below it. Unknown CEMAF_RESOURCE_*
// variables are warnings that suggest the nearest known name.
//
// # Builders
//
// CreateResourceGuard builds and starts the resource guard: a
// throttle.Monitor sampling procfs, sysfs and the cgroup files under the
// configured roots, with the board's temperature (thermal.Manager), the file
// systems that hold the storage directories, and the CPU of this process's
// helpers (declared in CPU_HELPERS, and the server of a local LLM endpoint,
// found from its socket); the throttle.Breaker that owns every ladder; the
// throttle.Reclaimer that pages memory out above the soft limit; and the
// application's own guards. NewCPUThrottler paces calls against the CPU of
// the agent and its helpers, or the whole board's. CreateContextPager wraps
// a State in a paging.Pager. CreateAdaptiveExecutor builds the base
// executor, gated by the guard, with the configured concurrency classes, and
// the adaptive executor following the Breaker. NewRuntime does all of it,
// plus the disk throttler, an optional checkpoint store and the run metrics;
// it refuses options it would otherwise overwrite, naming them.
//
// # The agent layer
//
// A Runtime wires what an agent needs around its graphs. Runtime.Mode is
// the device mode, in the form llm.Options.Mode reads, so that an LLM
// client's model, answer length and concurrency follow the device;
// NewLLMClient makes a client with the mode, the resource guard and the CPU
// throttler wired in. Runtime.Metrics (a *metrics.Metrics) observes every
// run of the base executor and the adaptive executor's mode changes;
// ObserveLLM adds an LLM client's calls (their Records) to it.
// WritePrometheus and MetricsHandler write one Prometheus page with the
// device signals (Monitor), the ladders (Breaker) and the run metrics.
//
// # Goroutines
//
// A ResourceGuard owns the Monitor's sampling goroutine; a Runtime owns its
// ResourceGuard and the pager's workers. Close stops and waits for all of
// them; it is idempotent.
//
// Units: percentages of 0–100, temperatures in °C, MB = 2^20 bytes for
// memory and the pager, MB/s = 10^6 bytes per second for disk rates, seconds
// for the *_SECONDS variables.
//
// # Caveats
//
// Load reads the host's memory and the board's thermal zones through the
// configured roots: it does file I/O. On a machine without thermal zones
// the temperature is not watched (ResourceGuard.ThermalErr says so). A
// helper server run by another user is found only by name or cgroup, since
// its sockets cannot be read: declare it in CPU_HELPERS. LLM calls reach
// the metrics only through ObserveLLM: a call whose Record is not passed
// there is not counted.
package factories
