// Package metrics aggregates run and node metrics of the executor, the
// adaptive executor's mode changes and an LLM client's calls, and writes
// them in the Prometheus text exposition format (version 0.0.4) for a
// user's own program, next to the device signals it exports. It has no
// Prometheus dependency.
//
// # Model
//
// A *Metrics is an executor.Observer: give it to executor.Options.Observers
// (or RunOptions.Observers) and it counts runs by how they ended, nodes by
// status, retries, skipped nodes by reason and pauses (count and seconds),
// and keeps histograms of run and node durations. ModeChanged feeds it the
// adaptive executor's mode changes (wire it to adaptive.Executor's
// OnModeChange); ObserveLLMCall an LLM client's calls (tokens in and out,
// latency), through the small ModeSink and LLMSink interfaces, so that
// this package imports neither. WritePrometheus writes every series, in a
// stable order; ServeHTTP serves them.
//
// Units: durations in seconds (float), counters as totals since New.
// Histogram buckets (Options.Buckets, default DefaultBuckets) span 5 ms to
// 10 minutes, what nodes take on an edge device: a parse in milliseconds,
// an LLM call on a Raspberry Pi in tens of seconds to minutes.
//
// A Metrics is safe for concurrent use (observers of concurrent runs,
// scrapes); it starts no goroutine. Each event costs one lock and a few
// map lookups.
//
// # Caveats
//
// Node series carry no node label unless Options.NodeLabel gives one: node
// IDs can be unbounded (generated graphs), and each label value is a
// series kept for the life of the Metrics. Model names label the LLM
// series; keep them few. Counters are not persisted: a restart starts them
// at zero, which Prometheus' rate() handles.
package metrics
