package executor

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	RunStarted       EventKind = iota + 1
	RunFinished                // Err is the error Run returns
	NodeStarted                // an attempt starts; Attempt counts from 1
	NodeSucceeded              // Duration is from the node's first start to its end
	NodeFailed                 // final failure (or timeout); Err says why, Duration is from the first start to the end
	NodeRetrying               // Err is the attempt's error, Duration the delay before the next one
	NodeSkipped                // Err says why (ErrUpstream, ErrNotChosen or ErrRunStopped)
	NodeCancelled              // the run was cancelled while the node ran
	Paused                     // the Gate holds the run; Err is the reason when the Gate reports one
	Resumed                    // the Gate let the run go on; Duration is the length of the pause
	NodeCheckpointed           // the node's completion is durable in the checkpoint store
	NodeOutput                 // partial output of a running attempt (Emit); Chunk holds it
	NodeWaiting                // the node returned Interrupt; Err is the *InterruptError with the question
)

var eventNames = [...]string{"", "run_started", "run_finished", "node_started", "node_succeeded",
	"node_failed", "node_retrying", "node_skipped", "node_cancelled", "paused", "resumed", "node_checkpointed", "node_output", "node_waiting"}

// String returns the kind in snake_case.
func (k EventKind) String() string {
	if int(k) < len(eventNames) && k != 0 {
		return eventNames[k]
	}
	return "unknown"
}

// Event is something that happened in a run. Fields that do not apply to the
// kind are zero.
type Event struct {
	Kind     EventKind
	RunID    string
	Node     string
	Attempt  int
	Time     time.Time
	Duration time.Duration
	Status   Status // for node events that end a node
	Err      error
	Chunk    Chunk // for NodeOutput
	// RunStatus is, for RunFinished, how the run ended: "succeeded",
	// "failed", "cancelled" or "waiting" (as the checkpoint store records
	// it).
	RunStatus string
}

// Observer receives the events of runs. OnEvent is called synchronously from
// the run's scheduler goroutine, never while the executor holds a lock, one
// event at a time per run, in order; events of concurrent runs may arrive
// concurrently. It must be quick and must not call back into the run. A panic
// in OnEvent is recovered and logged.
type Observer interface {
	OnEvent(Event)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Event)

// OnEvent calls f(ev).
func (f ObserverFunc) OnEvent(ev Event) { f(ev) }

// LogObserver logs events to a slog.Logger: run start and end, pauses and
// resumes at Info (pausing is the executor working as designed), retries,
// skips, waits and cancellations at Warn, failures at Error, node starts and
// successes at Debug.
// The logger's handler decides what is shown, so an adaptive executor can
// turn logging down through a slog.LevelVar.
type LogObserver struct {
	Logger *slog.Logger
}

// NewLogObserver returns an observer that logs to logger (slog.Default() if
// nil).
func NewLogObserver(logger *slog.Logger) *LogObserver {
	if logger == nil {
		logger = slog.Default()
	}
	return &LogObserver{Logger: logger}
}

// OnEvent logs ev.
func (o *LogObserver) OnEvent(ev Event) {
	level := slog.LevelDebug
	switch ev.Kind {
	case RunStarted, RunFinished, NodeCheckpointed:
		level = slog.LevelInfo
		if ev.Kind == RunFinished && ev.Err != nil {
			level = slog.LevelError
			if errors.Is(ev.Err, ErrInterrupted) {
				level = slog.LevelWarn // waiting for input is not a failure
			}
		}
		if ev.Kind == NodeCheckpointed {
			level = slog.LevelDebug
		}
	case Paused, Resumed:
		level = slog.LevelInfo
	case NodeRetrying, NodeSkipped, NodeCancelled, NodeWaiting:
		level = slog.LevelWarn
	case NodeFailed:
		level = slog.LevelError
	}
	ctx := context.Background()
	if !o.Logger.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("run", ev.RunID))
	if ev.Node != "" {
		attrs = append(attrs, slog.String("node", ev.Node))
	}
	if ev.Attempt > 0 {
		attrs = append(attrs, slog.Int("attempt", ev.Attempt))
	}
	if ev.Duration > 0 {
		attrs = append(attrs, slog.Duration("duration", ev.Duration))
	}
	if ev.Status != Pending {
		attrs = append(attrs, slog.String("status", ev.Status.String()))
	}
	if ev.Err != nil {
		attrs = append(attrs, slog.String("error", ev.Err.Error()))
	}
	if ev.Kind == NodeOutput {
		attrs = append(attrs, slog.String("chunk_kind", ev.Chunk.Kind), slog.String("text", ev.Chunk.Text))
	}
	o.Logger.LogAttrs(ctx, level, ev.Kind.String(), attrs...)
}
