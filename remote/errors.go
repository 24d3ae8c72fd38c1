package remote

import (
	"errors"
	"fmt"

	"github.com/cemaf-go/cemaf/limit"
)

// Sentinel errors. The typed errors below wrap them where they apply, so
// callers match either with errors.Is or extract the details with errors.As.
var (
	// ErrClosed is returned by the methods of a Coordinator or Worker that
	// has been closed, and by a Run called twice.
	ErrClosed = errors.New("remote: closed")
	// ErrDisconnected is what Coordinator.Check reports while the NATS
	// connection is down: the executor's Gate then starts no new node.
	ErrDisconnected = errors.New("remote: not connected to NATS")
	// ErrUnknownFunc is the permanent failure of a task whose function is
	// not registered on the worker that took it.
	ErrUnknownFunc = errors.New("remote: no function registered under that name")
	// ErrUndeclaredKey is returned by the worker-side State of a task when
	// the node reads a key not among its Spec.Reads or writes one not among
	// its Spec.Writes.
	ErrUndeclaredKey = errors.New("remote: key not declared in the node's Spec")
	// ErrNoNodeInfo is returned by a remote node called outside an
	// executor run (its context carries no executor.NodeInfo).
	ErrNoNodeInfo = errors.New("remote: no executor.NodeInfo in the context: remote nodes run under executor")
	// ErrMaxDeliver is wrapped by *DeliveryError.
	ErrMaxDeliver = errors.New("remote: task delivered MaxDeliver times without an answer")
)

// TaskError is the failure a worker reported for one attempt of a remote
// node: the node's function returned an error, panicked, or could not be run
// there. Unwrap returns the *limit.Error the function returned, if any, so
// errors.As(err, &limitErr) works across devices; or ErrUnknownFunc when
// the worker has no function under the task's name.
//
// The executor retries a TaskError like any node error, unless Permanent is
// set (the function returned a dag.Permanent error, panicked, or the task was
// not runnable there): the node's returned error is then wrapped with dag.Permanent.
type TaskError struct {
	Node       string
	Capability string
	Worker     string // the worker's ID
	Attempt    int    // the executor's attempt
	Message    string // the error text on the worker
	Permanent  bool
	Panic      bool
	Limit      *limit.Error
	sentinel   error
}

// Error names the node, the worker and the failure.
func (e *TaskError) Error() string {
	what := "failed"
	if e.Panic {
		what = "panicked"
	}
	return fmt.Sprintf("remote: node %q %s on worker %q (capability %q, attempt %d): %s",
		e.Node, what, e.Worker, e.Capability, e.Attempt, e.Message)
}

// Unwrap returns the limit error or sentinel the failure carries, or nil.
func (e *TaskError) Unwrap() error {
	if e.Limit != nil {
		return e.Limit
	}
	return e.sentinel
}

// DeliveryError is the failure of a task that JetStream delivered MaxDeliver
// times without any worker acknowledging it: each delivery ended with the
// worker killed, disconnected, drained or stuck past AckWait. Last is the
// last failure a worker recorded for it, or a description of the silence.
// It wraps ErrMaxDeliver; the executor retries it like any node error.
type DeliveryError struct {
	Node       string
	Capability string
	Deliveries int
	Last       string
}

// Error names the node, the number of deliveries and the last failure.
func (e *DeliveryError) Error() string {
	return fmt.Sprintf("remote: node %q (capability %q): no worker finished it in %d deliveries: last failure: %s",
		e.Node, e.Capability, e.Deliveries, e.Last)
}

// Unwrap returns ErrMaxDeliver.
func (e *DeliveryError) Unwrap() error { return ErrMaxDeliver }

// toError turns a failure result into the error a remote node returns.
func (r *result) toError(capability string, attempt int) error {
	if r.Flags&flagDelivery != 0 {
		return &DeliveryError{Node: r.Node, Capability: capability, Deliveries: r.Deliveries, Last: r.Message}
	}
	te := &TaskError{Node: r.Node, Capability: capability, Worker: r.Worker, Attempt: attempt, Message: r.Message,
		Permanent: r.Flags&(flagPermanent|flagPanic|flagUnknownFunc) != 0, Panic: r.Flags&flagPanic != 0, Limit: r.Limit}
	if r.Flags&flagUnknownFunc != 0 {
		te.sentinel = ErrUnknownFunc
	}
	return te
}
