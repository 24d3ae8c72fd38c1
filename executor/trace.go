package executor

import (
	"context"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/internal/panicerr"
)

// Tracer follows runs and node attempts: set Options.Tracer to create
// spans (the otel module adapts it to OpenTelemetry) or to time them. It
// wraps a run's context and each attempt's, so that what a node does with
// its context (an HTTP call, a child span) happens inside what the tracer
// put there. Without a Tracer the executor pays one nil check per attempt.
//
// Both methods may be called concurrently (by concurrent runs, and by the
// attempts of one run); each end function is called exactly once, except
// for an abandoned attempt whose goroutine never returns. A panic in
// TraceRun or TraceNode fails the run or the attempt with a *PanicError; a
// panic in an end function is logged.
type Tracer interface {
	// TraceRun is called when a run starts, on the goroutine that called
	// RunWith, before anything is restored or runs. The context it returns
	// (derived from ctx) becomes the parent of the run's context and so of
	// every node's. end is called once when the run ends, on the same
	// goroutine, before RunWith returns.
	TraceRun(ctx context.Context, run RunTrace) (_ context.Context, end func(RunOutcome))
	// TraceNode is called on the node's goroutine before each attempt. The
	// node runs with the context it returns, which must be derived from
	// ctx (Emit, Choose and NodeInfoFrom need it); the node's timeout is
	// applied to it. end is called once the attempt's outcome is recorded,
	// on the same goroutine, before the run moves on to the node's
	// dependents on that goroutine and before RunWith returns (an abandoned
	// attempt's end is called when its goroutine returns, if ever).
	TraceNode(ctx context.Context, node NodeTrace) (_ context.Context, end func(NodeOutcome))
}

// RunTrace describes a run that starts.
type RunTrace struct {
	RunID string
	Nodes int
	// Resume is RunOptions.Resume: the run must exist in the store. (A run
	// resumed by ID alone is only known to be a resume once its record is
	// read, after TraceRun.)
	Resume bool
}

// RunOutcome is how a run ended.
type RunOutcome struct {
	// Status is "succeeded", "failed", "cancelled" or "waiting" (nodes
	// wait for input), as recorded in the checkpoint store.
	Status string
	Err    error
	// Start and End bound the run.
	Start, End time.Time
	// Pauses counts the times the Gate held the run, Paused their length.
	Pauses int
	Paused time.Duration
	// Restored counts the nodes restored from a checkpoint instead of run;
	// Abandoned the node goroutines left running.
	Restored, Abandoned int
}

// NodeTrace describes a node attempt that starts.
type NodeTrace struct {
	RunID   string
	Node    string
	Attempt int
	Class   dag.Class
	// Paused is how long the run's Gate held the run while this node was
	// ready to start: the part of its wait due to resource pressure.
	Paused time.Duration
}

// NodeOutcome is how a node attempt ended.
type NodeOutcome struct {
	// Status is the node's final status, or Pending when the attempt
	// failed and the node will be retried.
	Status Status
	Err    error
	// End is when the attempt returned (the tracer knows when it started).
	End time.Time
	// Abandoned is set when the attempt outlived its timeout (or the run's
	// stop) by AbandonAfter and its goroutine was left behind.
	Abandoned bool
}

// runStatus is the status a run is recorded with.
func (r *run) runStatus(err error) string {
	switch {
	case r.cancelled:
		return "cancelled"
	case err == nil:
		return "succeeded"
	case len(r.failures) == 0 && r.ckptErr == nil && r.gateErr == nil && len(r.res.Questions) > 0:
		return "waiting"
	}
	return "failed"
}

// traceNode calls the Tracer for attempt a; a panic becomes the attempt's
// error.
func (r *run) traceNode(tr Tracer, ctx context.Context, a attempt) (context.Context, func(NodeOutcome), error) {
	info := NodeTrace{RunID: r.id, Node: r.g.At(int(a.idx)).ID, Attempt: int(a.nc.attempt), Class: r.g.At(int(a.idx)).Class, Paused: a.paused}
	var tctx context.Context
	var end func(NodeOutcome)
	err := panicerr.Call("Tracer.TraceNode", func() error {
		tctx, end = tr.TraceNode(ctx, info)
		return nil
	})
	if err != nil || tctx == nil {
		return ctx, nil, err
	}
	return tctx, end, nil
}

// endTrace calls an end function, logging a panic.
func endTrace[T any](r *run, end func(T), v T) {
	if end == nil {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			r.e.logger.Error("executor: tracer end function panicked", "run", r.id, "panic", p)
		}
	}()
	end(v)
}
