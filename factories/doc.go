// Package factories builds the resource-aware runtime of cemaf from one
// configuration: the values of the CEMAF_RESOURCE_* environment variables,
// a config file, explicit settings (flags) and host-derived defaults.
//
// # Configuration
//
// A ResourceConfig holds every setting; Variables documents them (the
// README's table is that list). Load reads them with the precedence
//
//	explicit setting (flag) > config file > environment > host-derived default
//
// and remembers where each value came from (ResourceConfig.Source,
// WriteTo, Effective). Host-derived defaults come from the usable CPUs and
// the effective memory, the smaller of the host's and the cgroup limit: on a
// 4 GB Raspberry Pi the memory guard's soft and hard limits are 3072 and
// 3584 MB, and MaxParallel is 4. Every bad value is reported at once
// (errors.Join): each error names the variable, the value, where it came
// from and the accepted range. Unknown CEMAF_RESOURCE_* variables are
// warnings that suggest the nearest known name.
//
// # Builders
//
// CreateResourceGuard builds and starts the composite guard: a
// throttle.Monitor sampling procfs, sysfs and the cgroup files under the
// configured roots; a thermal.Manager when the board has sensors; a
// throttle.Breaker with the CPU, memory, temperature and disk thresholds; a
// throttle.MemoryGuard with the MB limits; a disk.Guard on the pager's file
// system. Overrides replace members by name. CreateContextPager wraps a
// State in a paging.Pager. CreateAdaptiveExecutor builds the base executor,
// gated by the guard, and the adaptive executor attached to the guard's
// monitor. NewRuntime does all of it, plus the CPU and disk throttlers and
// an optional checkpoint store, and registers the pager with the memory
// guard so that memory pressure pages context out.
//
// # Goroutines
//
// A ResourceGuard owns the Monitor's sampling goroutine and the thermal
// Manager's polling goroutine; a Runtime owns its ResourceGuard and the
// pager's workers. Close stops and waits for all of them; it is idempotent.
//
// Units: percentages of 0–100, temperatures in °C, MB = 2^20 bytes for
// memory and the pager, MB/s = 10^6 bytes per second for disk rates, seconds
// for the *_SECONDS variables.
//
// # Caveats
//
// Load reads the host's memory through the configured procfs and cgroup
// roots: it does file I/O. The breaker counts this process's own CPU use in
// CPU_THRESHOLD; TRIP_AFTER_SAMPLES (default 2) keeps a short burst of the
// agent's own work from pausing it. On a machine without thermal zones the
// temperature is not watched (ResourceGuard.ThermalErr says so).
package factories
