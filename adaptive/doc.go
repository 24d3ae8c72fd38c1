// Package adaptive runs agent graphs on an executor that changes how it runs
// when the device is hot, short of memory, short of disk or contended for
// CPU, instead of failing.
//
// # Model
//
// An Executor wraps a Runner (an *executor.Executor) and follows the
// ladders of a throttle.Breaker (Attach): a signal on its Adapt or Pause
// rung is a pressure, and each signal asks for one mode (Options.Modes):
// temperature for high_temp; memory, swap and this process's memory for
// low_memory; disk for low_disk; CPU used by other processes for
// cpu_contention. The levels, hysteresis and hold times that decide the
// rungs belong to the Breaker's ladders alone: this package adds no
// thresholds of its own, so each signal has one owner.
//
// The mode is the highest-priority pressure that holds (Priority, default
// high_temp, then low_memory, low_disk, cpu_contention), or normal. The
// adaptations of every pressure that holds apply together, the strictest
// value of each knob winning. By default every mode but low_disk narrows the
// CPU class of nodes to one at a time, so I/O-bound nodes (LLM calls) go on;
// low_memory also narrows the I/O class to 4 and halves the context pager's
// budget; high_temp waits 100 ms between node starts and halves the CPU
// throttler's target; cpu_contention halves the target; low_disk lets only
// warnings and errors through the log level. They act on a run in progress
// through the executor's run-time knobs (the next node started sees them)
// and are undone when the pressure ends. Mode changes are logged and
// delivered to listeners (OnModeChange) with the reason and the pressures
// that hold.
//
// Guarded waits while the resource guard holds work back before running a
// block of work; within it, runs pause node by node at the executor's Gate.
//
// Units: levels are in the unit of their signal (percent, °C, MB);
// durations are time.Duration; the pager limit is in bytes; the CPU target
// in percent.
//
// # Goroutines
//
// The package starts none. Observe runs on the goroutine that delivers the
// rung change (the Monitor's, through the Breaker), applies the settings and
// calls the listeners there, outside locks. Close detaches and restores the
// normal settings.
//
// # Caveats
//
// While attached the Executor owns the wrapped executor's Limits and
// InterNodeDelay, the log level, the pager limit and the throttler's target:
// changes made to them by others are overwritten at the next mode change and
// on Close. Shrinking the pager evicts pages on the sampling goroutine, which
// delays the next sample by the time it takes to write them.
package adaptive
