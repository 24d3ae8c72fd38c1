package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/internal/panicerr"
)

// Status is the outcome of one node in a run.
type Status uint8

// Node statuses. Pending is only seen while a run is in progress.
const (
	Pending   Status = iota
	Succeeded        // the node returned nil
	Failed           // the node returned an error (or panicked) and will not be retried
	Skipped          // the node never ran: a dependency failed, no branch chose it, or the run stopped first
	Cancelled        // the run was cancelled while the node was running or waiting
	TimedOut         // the node's last attempt exceeded its timeout
	Waiting          // the node returned Interrupt: it waits for input (Result.Questions)
)

var statusNames = [...]string{"pending", "succeeded", "failed", "skipped", "cancelled", "timed_out", "waiting"}

// String returns the status in snake_case, as used in logs and JSON.
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// MarshalText encodes the status as its name.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a status name written by MarshalText.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if n == string(b) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("executor: unknown status %q", b)
}

// NodeResult is the record of one node in a run.
type NodeResult struct {
	ID       string    `json:"id"`
	Status   Status    `json:"status"`
	Attempts int       `json:"attempts"`
	Start    time.Time `json:"start,omitzero"` // first attempt started
	End      time.Time `json:"end,omitzero"`   // last attempt ended
	Err      error     `json:"-"`
	// Optional copies the node's setting: its failure did not fail the run.
	Optional bool `json:"optional,omitempty"`
	// Restored is set when the node's completion came from a checkpoint of
	// an earlier, interrupted run instead of running now.
	Restored bool `json:"restored,omitempty"`
	// Checkpointed is set once the node's completion is durable in the
	// checkpoint store.
	Checkpointed bool `json:"checkpointed,omitempty"`
	// Abandoned is set when the node ignored its context past its timeout
	// (or past the run's cancellation) and its goroutine was left running.
	Abandoned bool `json:"abandoned,omitempty"`
}

// Duration is End − Start (zero if the node never ran).
func (r *NodeResult) Duration() time.Duration {
	if r.Start.IsZero() || r.End.IsZero() {
		return 0
	}
	return r.End.Sub(r.Start)
}

// Result is the record of a run. It is returned by Run even when Run also
// returns an error.
type Result struct {
	RunID string `json:"run_id"`
	// Start is when Run was called; End when the run was over: when its
	// last node ended, or when it stopped waiting (cancellation, a
	// checkpoint, abandonment).
	Start time.Time    `json:"start"`
	End   time.Time    `json:"end"`
	Nodes []NodeResult `json:"nodes"` // in the order the graph's nodes were given
	// Abandoned counts node goroutines that ignored their context past a
	// timeout or cancellation and were left running when Run returned.
	Abandoned int `json:"abandoned"`
	// Pauses counts the times the Gate held the run; Paused is their total
	// duration.
	Pauses int           `json:"pauses"`
	Paused time.Duration `json:"paused_ns"`
	// Choices maps each branch node (dag.Node.Branch) that succeeded, or
	// was restored from a checkpoint, to the dependents it chose (Choose),
	// in the order chosen. Nil when the graph has no branch that ran.
	Choices map[string][]string `json:"choices,omitempty"`
	// Questions are the questions of the nodes waiting for input
	// (Interrupt), in the order they were asked.
	Questions []Question `json:"questions,omitempty"`

	// g is the graph of the run that made the Result (nil for a Result
	// built or decoded by the caller): its ID index serves Node.
	g *dag.Graph
}

// Node returns the result of the node with the given ID. It only reads the
// Result, so it is safe to call from several goroutines at once. On a
// Result returned by Run it costs one lookup in the graph's index; on one
// built otherwise (decoded from JSON) it scans Nodes.
func (r *Result) Node(id string) (*NodeResult, bool) {
	if r.g != nil {
		if i, ok := r.g.IndexOf(id); ok && i < len(r.Nodes) && r.Nodes[i].ID == id {
			return &r.Nodes[i], true
		}
	}
	for i := range r.Nodes {
		if r.Nodes[i].ID == id {
			return &r.Nodes[i], true
		}
	}
	return nil, false
}

// choose records a branch node's choice. Called with the run's mu held.
func (r *Result) choose(node string, chosen []string) {
	if r.Choices == nil {
		r.Choices = map[string][]string{}
	}
	r.Choices[node] = chosen
}

func (r *Result) countRestored() int {
	n := 0
	for i := range r.Nodes {
		if r.Nodes[i].Restored {
			n++
		}
	}
	return n
}

// Count returns how many nodes ended with status s.
func (r *Result) Count(s Status) int {
	n := 0
	for i := range r.Nodes {
		if r.Nodes[i].Status == s {
			n++
		}
	}
	return n
}

// Errors returned by Run and recorded in NodeResult.Err.
var (
	// ErrTimeout is matched (errors.Is) by the error of a node whose attempt
	// exceeded its timeout.
	ErrTimeout = errors.New("node timed out")
	// ErrUpstream is the error of a node skipped because a dependency failed.
	ErrUpstream = errors.New("dependency failed")
	// ErrRunStopped is the error of a node skipped because the run stopped
	// (fail-fast or cancellation) before it could start.
	ErrRunStopped = errors.New("run stopped before the node started")
)

// NodeError is the error of a node that failed, timed out or panicked.
type NodeError struct {
	Node     string
	Attempts int
	Err      error
}

// Error names the node, its attempts and the cause.
func (e *NodeError) Error() string {
	if e.Attempts == 1 {
		return fmt.Sprintf("executor: node %q failed after 1 attempt: %v", e.Node, e.Err)
	}
	return fmt.Sprintf("executor: node %q failed after %d attempts: %v", e.Node, e.Attempts, e.Err)
}

// Unwrap returns the cause.
func (e *NodeError) Unwrap() error { return e.Err }

// PanicError is the error of user code that panicked on a goroutine the
// executor runs it on: a node function (Op "Node.Run"), a Gate's Wait or
// Checker's Check, a DurableState's Checkpoint or Durable, a State read or
// write the executor makes for a checkpoint. Value is the value passed to
// panic, Stack where it was raised; Unwrap returns Value when it is an
// error. Panics are never retried. It is the module's one panic error type:
// throttle.PanicError is the same type.
type PanicError = panicerr.Error

// TimeoutError is the error of an attempt that exceeded its timeout. It
// matches ErrTimeout and context.DeadlineExceeded with errors.Is.
type TimeoutError struct {
	Timeout time.Duration
	// Abandoned is set when the node did not return within the executor's
	// AbandonAfter grace period and its goroutine was left running.
	Abandoned bool
}

// Error says how long the node had and whether it was abandoned.
func (e *TimeoutError) Error() string {
	if e.Abandoned {
		return fmt.Sprintf("node timed out after %v and ignored its context; goroutine abandoned", e.Timeout)
	}
	return fmt.Sprintf("node timed out after %v", e.Timeout)
}

// Is matches ErrTimeout.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// Unwrap returns context.DeadlineExceeded.
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// UpstreamError is the error of a node skipped because a dependency failed.
type UpstreamError struct {
	Dependency string
}

// Error names the dependency that failed.
func (e *UpstreamError) Error() string {
	return fmt.Sprintf("dependency %q failed", e.Dependency)
}

// Is matches ErrUpstream.
func (e *UpstreamError) Is(target error) bool { return target == ErrUpstream }
