// Package adaptive runs agent graphs on an executor that changes how it runs
// when the device is short of memory, hot, or short of disk, instead of
// failing.
//
// # Model
//
// An Executor wraps a Runner (an *executor.Executor) and watches samples from
// a Source (a *throttle.Monitor, through Attach). Three pressures are tracked
// separately, each from its Triggers: low_memory (default memory_percent ≥
// 80), high_temp (temperature_c ≥ 70 °C) and low_disk (disk_percent ≥ 90). A
// pressure begins on the first fresh sample at or over a trigger's threshold
// and ends only when every trigger of that pressure is below its threshold
// minus a margin (5 % of it) and the last sample over the threshold is at
// least TransitionPeriod old (30 s, the kubelet's pressure-transition
// period). Samples no newer than the last one are ignored. Values wobbling
// around a threshold therefore cannot make the mode flap.
//
// The mode is the highest-priority pressure that holds (Priority, default
// high_temp, then low_memory, then low_disk), or normal. The adaptations of
// every pressure that holds apply together, the strictest value of each
// knob winning: low_memory runs one node at a time and shrinks the context
// pager to half its budget, high_temp waits 100 ms between node starts,
// low_disk lets only warnings and errors through the log level. They act on a
// run in progress through the executor's run-time knobs (the next node
// started sees them) and are undone when the pressure ends. Mode changes are
// logged and delivered to listeners (OnModeChange) with the reason and the
// pressures that hold.
//
// Guarded waits while the resource breaker is open before running a block
// of work, the counterpart of the blueprint's `with executor.guarded()`;
// within it, runs pause node by node at the executor's Gate.
//
// Units: thresholds are in the unit of their signal (percent, °C);
// durations are time.Duration; the pager limit is in bytes.
//
// # Goroutines
//
// The package starts none. Observe runs on the goroutine that delivers the
// sample (the Monitor's), applies the settings and calls the listeners there,
// outside locks. Close detaches and restores the normal settings.
//
// # Caveats
//
// While attached the Executor owns the wrapped executor's CPU limit and
// InterNodeDelay, the log level and the pager limit: changes made to them by
// others are overwritten at the next mode change and on Close. Shrinking the
// pager evicts pages on the sampling goroutine, which delays the next sample
// by the time it takes to write them.
package adaptive
