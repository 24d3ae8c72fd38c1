package executor

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// runContext is a run's cancellable context, made on first use: a run
// whose nodes never look at their context (pure transforms) does not
// pay for a context.WithCancelCause and its registration with a
// cancellable parent (about 0.1–0.2 µs and two allocations a run).
//
// The context it makes is the same as one made when the run starts:
// a child of the caller's context, cancelled with the first cause
// given to cancel (fail-fast, a gate failure, the run's end) or with the
// caller's own error and cause, whichever came first. Made after the
// run was cancelled, it is born cancelled with that cause; made after
// the caller's context ended, it carries the caller's error
// (context.DeadlineExceeded stays that).
//
// It lives in the runRef, which is never reused, so a goroutine a node
// left behind sees its own run's context.
type runContext struct {
	parent context.Context
	// ctx and cancelFn are set before made, once the context exists, and
	// never written again.
	ctx      context.Context
	cancelFn context.CancelCauseFunc
	// cause records a cancel that came before the context was made.
	cause error

	mu sync.Mutex // guards the making and ended, cause
	// made is set once the context exists.
	made atomic.Bool
	// ended records a cancel that came before the context was made.
	ended bool
}

// get returns the run's context, making it if it does not exist yet.
func (c *runContext) get() context.Context {
	if c.made.Load() {
		return c.ctx
	}
	return c.make()
}

func (c *runContext) make() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.made.Load() {
		ctx, cancel := context.WithCancelCause(c.parent)
		if c.ended {
			cancel(c.cause)
		}
		c.ctx, c.cancelFn = ctx, cancel
		c.made.Store(true)
	}
	return c.ctx
}

// err is what the run's context's Err returns, making the context only
// once the run or the caller's context has ended: a node that only checks
// Err (a loop that stops when the run does) costs no context while the run
// goes on. Once ended, the context is made, so that Err returns one error
// from then on: the one a context made at that moment has (runContext).
func (c *runContext) err() error {
	if c.made.Load() {
		return c.ctx.Err()
	}
	c.mu.Lock()
	ended := c.ended
	c.mu.Unlock()
	if ended || c.parent.Err() != nil {
		return c.get().Err()
	}
	return nil
}

// cancel cancels the run's context with cause (nil: context.Canceled);
// only the first call counts, as with a context.CancelCauseFunc.
func (c *runContext) cancel(cause error) {
	c.mu.Lock()
	made := c.made.Load()
	if !made && !c.ended {
		c.ended, c.cause = true, cause
	}
	c.mu.Unlock()
	if made {
		c.cancelFn(cause)
	}
}

// Deadline is the caller's: a context made by WithCancelCause has its
// parent's deadline, so this needs no context of the run's own.
func (c *runContext) Deadline() (time.Time, bool) { return c.parent.Deadline() }
