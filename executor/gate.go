package executor

import "context"

// Gate is consulted before each node starts. While Wait blocks, the executor
// starts no new node; nodes already running continue. Wait returns nil when
// work may proceed, or an error (normally ctx's) when it may not.
//
// Resource guards and the circuit breaker in package throttle, and the guards
// in packages thermal and disk, satisfy Gate: this is how a run pauses,
// rather than crashes, when the device runs hot or short of memory.
type Gate interface {
	Wait(ctx context.Context) error
}

// Checker is an optional interface a Gate may implement. Check reports,
// without blocking, why Wait would block now (nil when it would not). The
// executor uses it to emit Paused events that carry the reason, and to skip
// Wait on the fast path; it must be cheap (the guards in this module check an
// atomic snapshot).
type Checker interface {
	Check() error
}
