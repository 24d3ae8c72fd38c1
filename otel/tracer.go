package otel

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/cemaf-go/cemaf/executor"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/cemaf-go/cemaf/otel"

// Options configures New. The zero value is valid.
type Options struct {
	// TracerProvider makes the tracer. nil means the global provider
	// (otel.GetTracerProvider()).
	TracerProvider trace.TracerProvider
	// Mode, if set, returns the device mode in force, recorded as
	// cemaf.mode on every span: wire it to the adaptive executor,
	// func() string { return string(ad.CurrentMode()) }. It must be quick
	// and safe for concurrent use.
	Mode func() string
}

// Tracer makes OpenTelemetry spans for runs and node attempts. It
// implements executor.Tracer.
type Tracer struct {
	tracer trace.Tracer
	mode   func() string
}

var _ executor.Tracer = (*Tracer)(nil)

// New returns a Tracer.
func New(opts Options) *Tracer {
	tp := opts.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return &Tracer{tracer: tp.Tracer(ScopeName), mode: opts.Mode}
}

// TraceRun starts the run's span; the run's context carries it.
func (t *Tracer) TraceRun(ctx context.Context, run executor.RunTrace) (context.Context, func(executor.RunOutcome)) {
	ctx, span := t.tracer.Start(ctx, "cemaf.run")
	if !span.IsRecording() {
		return ctx, nil
	}
	span.SetAttributes(
		attribute.String("cemaf.run.id", run.RunID),
		attribute.Int("cemaf.run.nodes", run.Nodes),
		attribute.Bool("cemaf.run.resume", run.Resume),
	)
	if t.mode != nil {
		span.SetAttributes(attribute.String("cemaf.mode", t.mode()))
	}
	return ctx, func(o executor.RunOutcome) {
		span.SetAttributes(
			attribute.String("cemaf.run.status", o.Status),
			attribute.Int("cemaf.run.pauses", o.Pauses),
			attribute.Float64("cemaf.run.paused_seconds", o.Paused.Seconds()),
			attribute.Int("cemaf.run.restored", o.Restored),
			attribute.Int("cemaf.run.abandoned", o.Abandoned),
		)
		if o.Err != nil && o.Status != "waiting" {
			span.RecordError(o.Err)
			span.SetStatus(codes.Error, o.Status)
		}
		span.End(trace.WithTimestamp(o.End))
	}
}

// TraceNode starts the attempt's span, a child of the run's; the node runs
// with it in its context.
func (t *Tracer) TraceNode(ctx context.Context, node executor.NodeTrace) (context.Context, func(executor.NodeOutcome)) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		// The run's span is not recorded (not sampled, or a no-op
		// provider): neither are its nodes'.
		return ctx, nil
	}
	ctx, span := t.tracer.Start(ctx, "cemaf.node "+node.Node)
	if !span.IsRecording() {
		return ctx, nil
	}
	span.SetAttributes(
		attribute.String("cemaf.run.id", node.RunID),
		attribute.String("cemaf.node.id", node.Node),
		attribute.Int("cemaf.node.attempt", node.Attempt),
		attribute.String("cemaf.node.class", node.Class.String()),
		attribute.Float64("cemaf.node.paused_seconds", node.Paused.Seconds()),
	)
	if t.mode != nil {
		span.SetAttributes(attribute.String("cemaf.mode", t.mode()))
	}
	return ctx, func(o executor.NodeOutcome) {
		span.SetAttributes(
			attribute.String("cemaf.node.status", o.Status.String()),
			attribute.Bool("cemaf.node.abandoned", o.Abandoned),
		)
		switch o.Status {
		case executor.Succeeded, executor.Waiting:
		default:
			if o.Err != nil {
				span.RecordError(o.Err)
				span.SetStatus(codes.Error, o.Err.Error())
			}
		}
		span.End(trace.WithTimestamp(o.End))
	}
}
