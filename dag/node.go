package dag

import (
	"context"
	"errors"
	"time"
)

// Func is the work of a node: it reads its inputs from s and writes its
// outputs to s. It must return when ctx ends (the executor cancels ctx on a
// timeout, on a fail-fast failure elsewhere, and when the run is cancelled).
type Func func(ctx context.Context, s State) error

// Node is one unit of work in a Graph. ID and Run are required; every other
// field is optional and its zero value means "use the executor's default".
type Node struct {
	// ID names the node. It must be non-empty and unique within the graph.
	ID string
	// Run does the node's work.
	Run Func
	// DependsOn lists the IDs of the nodes that must finish before this one
	// starts.
	DependsOn []string
	// Timeout bounds one attempt of the node; zero means the executor's
	// default node timeout.
	Timeout time.Duration
	// Retry is the node's retry policy; nil means the executor's default.
	Retry *RetryPolicy
	// Priority orders nodes that are ready at the same time: higher first.
	// Ties are broken by the order in which nodes were given to New.
	Priority int
	// Optional marks a node whose failure does not fail the run. Its
	// dependents still run (they must tolerate its missing output).
	Optional bool
	// Class says which of the executor's concurrency limits bounds the
	// node: CPU (the zero value) for work that computes on this device, IO
	// for work that mostly waits on something else (an LLM or HTTP call, a
	// remote node, disk).
	Class Class
	// Branch makes the edges to the node's dependents conditional: when the
	// node succeeds, only the dependents it chose (executor.Choose, called
	// from Run) may run. The rule for every node with dependencies: it runs
	// once all its dependencies have finished if at least one of its
	// incoming edges was taken; an edge d -> n is taken when d succeeded
	// (or failed while Optional) and, if d is a Branch, chose n. A node no
	// edge reaches is skipped as not chosen, and so passes nothing on: its
	// dependents are skipped as well unless another of their dependencies
	// takes its edge to them. A join that depends on both arms of an
	// if/else therefore runs after the arm that ran. A Branch that fails,
	// even an Optional one, chooses nothing.
	Branch bool
}

// RetryPolicy says whether and when a failed node attempt is tried again.
// The delay before attempt n+1 is InitialBackoff × Multiplier^(n−1), capped at
// MaxBackoff, then spread by ±Jitter (a fraction of the delay). Zero fields
// take the defaults documented on each field.
type RetryPolicy struct {
	// MaxAttempts is the total number of attempts, the first included.
	// 0 or 1 means no retry.
	MaxAttempts int
	// InitialBackoff is the delay before the second attempt (default 100ms).
	InitialBackoff time.Duration
	// MaxBackoff caps the delay between attempts (default 30s).
	MaxBackoff time.Duration
	// Multiplier grows the delay after each attempt (default 2; must be ≥ 1).
	Multiplier float64
	// Jitter spreads each delay uniformly by ±Jitter×delay, in [0, 1]
	// (default 0.2). Set a negative value for no jitter.
	Jitter float64
	// MaxElapsed stops retrying once this much time has passed since the
	// first attempt started, counting the next delay (0 = no bound).
	MaxElapsed time.Duration
	// Retryable decides whether an error is worth another attempt. Nil means
	// every error is, except permanent ones (see Permanent), panics, and
	// cancellation of the run. Permanent errors are never retried, whatever
	// Retryable says.
	Retryable func(error) bool
}

// Defaults applied to zero RetryPolicy fields.
const (
	DefaultInitialBackoff = 100 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultMultiplier     = 2.0
	DefaultJitter         = 0.2
)

// WithDefaults returns a copy of p with zero fields replaced by defaults.
func (p RetryPolicy) WithDefaults() RetryPolicy {
	if p.InitialBackoff == 0 {
		p.InitialBackoff = DefaultInitialBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = DefaultMaxBackoff
	}
	if p.Multiplier == 0 {
		p.Multiplier = DefaultMultiplier
	}
	if p.Jitter == 0 {
		p.Jitter = DefaultJitter
	} else if p.Jitter < 0 {
		p.Jitter = 0
	}
	return p
}

// Backoff returns the delay before attempt+1, given that attempt (≥ 1)
// attempts have been made, and a uniform random number r in [0, 1) used
// for jitter.
func (p RetryPolicy) Backoff(attempt int, r float64) time.Duration {
	p = p.WithDefaults()
	d := float64(p.InitialBackoff)
	for i := 1; i < attempt && d < float64(p.MaxBackoff); i++ {
		d *= p.Multiplier
	}
	d = min(d, float64(p.MaxBackoff))
	d += d * p.Jitter * (2*r - 1)
	return time.Duration(max(d, 0))
}

// Validate checks the policy's fields; the error names the field and the
// accepted range.
func (p *RetryPolicy) Validate() error {
	switch {
	case p.MaxAttempts < 0:
		return fieldError("Retry.MaxAttempts", p.MaxAttempts, "must be ≥ 0")
	case p.InitialBackoff < 0:
		return fieldError("Retry.InitialBackoff", p.InitialBackoff, "must be ≥ 0")
	case p.MaxBackoff < 0:
		return fieldError("Retry.MaxBackoff", p.MaxBackoff, "must be ≥ 0")
	case p.Multiplier != 0 && p.Multiplier < 1:
		return fieldError("Retry.Multiplier", p.Multiplier, "must be ≥ 1 (or 0 for the default 2)")
	case p.Jitter > 1:
		return fieldError("Retry.Jitter", p.Jitter, "must be ≤ 1")
	case p.MaxElapsed < 0:
		return fieldError("Retry.MaxElapsed", p.MaxElapsed, "must be ≥ 0")
	}
	return nil
}

// PermanentError marks an error that must not be retried.
type PermanentError struct{ Err error }

// Error returns the wrapped error's message.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that the executor never retries it, whatever the
// node's retry policy. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
