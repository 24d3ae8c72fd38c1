// Package otel adapts the executor's Tracer hook to OpenTelemetry: one
// span per run and one per node attempt, with the node's span in the
// node's context, so that what a node does with its context (an HTTP call
// through an instrumented client, a span of its own) is a child of it.
//
// It is a module of its own (github.com/cemaf-go/cemaf/otel) so that the
// core module, and the binaries built from it, do not depend on
// OpenTelemetry: only programs that import this package do.
//
// # Model
//
// New returns a *Tracer; give it to executor.Options.Tracer. Spans come
// from Options.TracerProvider (the global provider when nil), with the
// instrumentation scope ScopeName. A run's span, "cemaf.run", has the
// attributes cemaf.run.id, cemaf.run.nodes, cemaf.run.resume and, when
// Options.Mode is set, cemaf.mode (the device mode when the run started);
// when the run ends, cemaf.run.status, cemaf.run.pauses,
// cemaf.run.paused_seconds, cemaf.run.restored and cemaf.run.abandoned. A
// node attempt's span, "cemaf.node <ID>", a child of the run's, has
// cemaf.run.id, cemaf.node.id, cemaf.node.attempt, cemaf.node.class,
// cemaf.node.paused_seconds (the time the resource gate held the run while
// the node was ready) and cemaf.mode; when it ends, cemaf.node.status
// ("pending" for an attempt that will be retried) and cemaf.node.abandoned.
// A failed run, a failed attempt and an attempt that will be retried have
// the Error status and the error recorded; a node waiting for input does
// not.
//
// Attributes are set once a span is known to record, so that a span that
// is not sampled (or the no-op provider's) costs no attribute: samplers
// therefore see none at the span's start. A node whose run's span is not
// recorded (not sampled, or the no-op provider's) gets no span of its own:
// it then costs an interface call and no allocation.
//
// A Tracer is safe for concurrent use and starts no goroutine.
//
// # Caveats
//
// Span names carry node IDs: keep them bounded (a generated graph with
// unbounded IDs makes unbounded span names). The span of an abandoned
// attempt ends only if its goroutine returns.
package otel
