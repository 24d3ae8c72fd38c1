package executor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/internal/panicerr"
	"github.com/cemaf-go/cemaf/internal/readyq"
)

// dispatch starts ready nodes while their class has free slots, the
// inter-node delay has passed and the gate allows (reason == nil). With
// cont, the first node started is returned instead of given a goroutine:
// the calling worker goroutine runs it next. Called with mu held.
func (r *run) dispatch(now time.Time, reason error, cont bool) (next attempt, ok bool) {
	lim := r.e.classLimits()
	for !r.stopping {
		q := r.pick(lim)
		if q == nil {
			break
		}
		if !r.delayPassed(now) {
			if at := r.lastStart.Add(r.e.InterNodeDelay()); !at.Equal(r.delayUntil) {
				r.delayUntil = at
				r.kick = true
			}
			return next, ok
		}
		if !r.gateAdmits(reason) {
			return next, ok
		}
		a := r.start(now, q.Pop())
		if cont && !ok {
			next, ok = a, true
		} else {
			r.wg.Add(1) // one per worker goroutine, not per attempt
			go r.worker(a, false)
		}
	}
	return next, ok
}

// pick returns the ready queue to start from: among the classes with a
// ready node and a free slot under lim, the one whose first node comes
// first (priority, then graph order); nil if there is none. Called with mu
// held.
func (r *run) pick(lim [nClasses]int) *readyq.Queue {
	var best *readyq.Queue
	for c := range r.ready {
		q := &r.ready[c]
		if q.Len() == 0 || r.running[c] >= lim[c] {
			continue
		}
		if best == nil || q.Less(q.Peek(), best.Peek()) {
			best = q
		}
	}
	return best
}

// readyLen is the number of nodes ready to start, all classes. Called with
// mu held.
func (r *run) readyLen() int {
	n := 0
	for c := range r.ready {
		n += r.ready[c].Len()
	}
	return n
}

// attempt identifies one attempt of a node, handed to a worker goroutine.
type attempt struct {
	nc      *nodeCtx
	idx     int32
	tok     uint64 // the slot's token while the attempt runs
	timeout time.Duration
	paused  time.Duration // gate pauses while the node was ready (NodeTrace)
}

// start books the next attempt of node i; the caller runs it on a worker.
// Called with mu held.
func (r *run) start(now time.Time, i int32) attempt {
	sl := &r.slots[i]
	sl.attempt++
	tok := r.tok(sl.attempt)
	sl.token.Store(tok)
	r.lastStart = now
	r.delayUntil = time.Time{}
	nr := &r.res.Nodes[i]
	if sl.attempt == 1 {
		nr.Start = now
	}
	nr.Attempts = int(sl.attempt)
	nc := &r.nctx[i]
	if sl.attempt == 1 {
		*nc = nodeCtx{ref: r.ref, idx: i, attempt: 1}
	} else {
		nc = &nodeCtx{ref: r.ref, idx: i, attempt: sl.attempt}
	}
	if sl.timeout > 0 {
		r.pushTimer(timerEntry{at: now.Add(sl.timeout + r.abandonAfter), idx: i, kind: timerAbandon, tok: tok})
	}
	if r.choices != nil && r.g.At(int(i)).Branch {
		r.beginChoice(i, sl.attempt)
	}
	r.inflight++
	r.running[sl.class]++
	if len(r.observers) > 0 {
		r.emit(Event{Kind: NodeStarted, Node: nr.ID, Attempt: nr.Attempts, Time: now})
	}
	a := attempt{nc: nc, idx: i, tok: tok, timeout: sl.timeout}
	if r.readyPaused != nil {
		a.paused = r.res.Paused - r.readyPaused[i]
	}
	return a
}

// worker runs node attempts: a, then, as long as finishing one makes
// another startable, that one too, so a chain of nodes runs on one
// goroutine without a hand-off. It records each outcome under mu. inline
// is set when the coordinator runs it on its own goroutine (loop): it goes
// on only while the run needs no coordinator (soloNext). It returns when
// its last attempt ended.
func (r *run) worker(a attempt, inline bool) time.Time {
	for {
		var ctx context.Context = a.nc
		var endNode func(NodeOutcome)
		var traceErr error
		if tr := r.e.opts.Tracer; tr != nil {
			ctx, endNode, traceErr = r.traceNode(tr, ctx, a)
		}
		var cancel context.CancelFunc
		if a.timeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, a.timeout)
		}
		var st dag.State = r.state
		var tracked *trackedState
		if r.store != nil && r.durable == nil {
			tracked = &trackedState{State: r.state}
			st = tracked
		}
		err := traceErr
		if err == nil {
			err = r.call(ctx, a.idx, st)
		}
		var changes []change
		if err == nil && tracked != nil {
			if err = panicerr.Call("State.Get", func() (err error) { changes, err = tracked.changes(); return err }); err != nil {
				err = fmt.Errorf("executor: read the keys the node changed, for its checkpoint: %w", err)
			}
		}
		timedOut := false
		if cancel != nil {
			timedOut = err != nil && ctx.Err() == context.DeadlineExceeded && a.nc.Err() == nil
			cancel()
		}
		runDone := err != nil && a.nc.Err() != nil
		end := r.now()
		if !r.slots[a.idx].token.CompareAndSwap(a.tok, a.tok|1) {
			// Abandoned: the coordinator has reported this attempt.
			endTrace(r, endNode, NodeOutcome{Err: err, End: end, Abandoned: true})
			return end
		}
		var reason, fault error
		if r.gate != nil {
			reason, fault = r.check()
		}
		r.mu.Lock()
		status, recorded := r.complete(a.idx, err, timedOut, runDone, end, changes)
		if fault != nil {
			r.gateFailed(fault)
		}
		next, ok := r.dispatch(end, reason, true)
		if ok && inline && !r.soloNext(next) {
			r.wg.Add(1)
			go r.worker(next, false)
			ok = false
		}
		kick := r.kick || r.inflight == 0 || (r.unwatched && r.readyLen() > 0)
		commitKick := len(r.pending) > 0
		r.mu.Unlock()
		if commitKick {
			r.signalCommitter()
		}
		if endNode != nil {
			endTrace(r, endNode, NodeOutcome{Status: status, Err: recorded, End: end})
		}
		if !ok {
			// Done before the signal: the coordinator it wakes then finds
			// no worker to wait for, instead of parking once more. The
			// signal touches only the run object's wake channel, which a
			// later run of the object may take as a spurious wake-up.
			r.wg.Done()
			if kick && !inline {
				r.signal()
			}
			return end
		}
		if kick && !inline {
			r.signal()
		}
		a = next
	}
}

func (r *run) call(ctx context.Context, i int32, s dag.State) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Op: "Node.Run", Value: v, Stack: debug.Stack()}
		}
	}()
	return r.g.At(int(i)).Run(ctx, s)
}

// complete records the end of an attempt and returns the node's status
// (Pending when it will be retried) and the attempt's error as recorded.
// Called with mu held.
func (r *run) complete(i int32, err error, timedOut, runDone bool, end time.Time, changes []change) (Status, error) {
	r.inflight--
	r.running[r.slots[i].class]--
	nr := &r.res.Nodes[i]
	nr.End = end
	if end.After(r.lastEnd) {
		r.lastEnd = end
	}
	if err == nil && (r.choices != nil || len(r.choiceFaults) > 0) {
		err = r.choiceError(i, r.slots[i].attempt)
	}
	switch {
	case err == nil:
		nr.Status, nr.Err = Succeeded, nil
		var chosen []string
		if r.choices != nil && r.g.At(int(i)).Branch {
			chosen = r.chosenIDs(i)
			r.res.choose(nr.ID, chosen)
		}
		if len(r.observers) > 0 {
			r.emit(Event{Kind: NodeSucceeded, Node: nr.ID, Attempt: nr.Attempts, Time: end, Duration: end.Sub(nr.Start), Status: Succeeded})
		}
		if r.store == nil {
			r.release(i)
			return Succeeded, nil
		}
		// Dependents wait until the completion is durable.
		if len(r.pending) == 0 {
			r.pendingSince = end
		}
		r.pending = append(r.pending, completionRecord{node: nr.ID, attempts: nr.Attempts, end: end, changes: changes, chosen: chosen})
		r.pendingIdx = append(r.pendingIdx, i)
		return Succeeded, nil
	case runDone && !timedOut:
		// Whatever it returned, the node stopped because the run did. If
		// no stop is recorded yet, the caller's context ended (fail-fast
		// and gate failures record the stop before cancelling).
		if !r.stopping {
			r.cancelled = true
			r.stop(context.Cause(r.runCtx()))
		}
		r.cancelNode(i, err)
		return Cancelled, err
	default:
		if ie := (*InterruptError)(nil); !timedOut && errors.As(err, &ie) {
			r.interrupt(i, ie, end)
			return Waiting, err
		}
		status := Failed
		if timedOut {
			err, status = &TimeoutError{Timeout: r.slots[i].timeout}, TimedOut
		}
		if delay, ok := r.retryDelay(i, err, end); ok {
			r.retries++
			r.pushTimer(timerEntry{at: end.Add(delay), idx: i, kind: timerRetry})
			r.emit(Event{Kind: NodeRetrying, Node: nr.ID, Attempt: nr.Attempts, Time: end, Duration: delay, Err: err})
			return Pending, err
		}
		r.fail(i, status, err)
		return status, err
	}
}

// retryDelay decides whether node i gets another attempt after err, and
// after how long. Called with mu held; it calls the policy's Retryable
// predicate, which must not call back into the run.
func (r *run) retryDelay(i int32, err error, now time.Time) (time.Duration, bool) {
	sl := &r.slots[i]
	p := sl.retry
	if r.stopping || p == nil || int(sl.attempt) >= p.MaxAttempts || dag.IsPermanent(err) {
		return 0, false
	}
	var pe *PanicError
	if errors.As(err, &pe) {
		return 0, false
	}
	if p.Retryable != nil && !r.safePredicate(p.Retryable, err) {
		return 0, false
	}
	delay := p.Backoff(int(sl.attempt), rand.Float64())
	if p.MaxElapsed > 0 && now.Add(delay).Sub(r.res.Nodes[i].Start) > p.MaxElapsed {
		return 0, false
	}
	return delay, true
}

func (r *run) safePredicate(f func(error) bool, err error) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			r.e.logger.Error("executor: retry predicate panicked", "run", r.id, "panic", v)
			ok = false
		}
	}()
	return f(err)
}

// fail gives node i its final failed or timed-out status and applies the
// failure policy. Called with mu held.
func (r *run) fail(i int32, status Status, err error) {
	nr := &r.res.Nodes[i]
	nr.Status = status
	ne := &NodeError{Node: nr.ID, Attempts: nr.Attempts, Err: err}
	nr.Err = ne
	r.emit(Event{Kind: NodeFailed, Node: nr.ID, Attempt: nr.Attempts, Time: nr.End, Duration: nr.Duration(), Status: status, Err: ne})
	if nr.Optional {
		r.release(i) // an optional node's failure does not hold back its dependents
		return
	}
	r.remaining--
	r.failures = append(r.failures, ne)
	if r.e.opts.FailurePolicy == FailFast {
		r.stop(ne)
		return
	}
	r.skipDescendants(i, &UpstreamError{Dependency: nr.ID})
}

// release marks node i finished and queues dependents that became ready
// (or, with branch nodes, skips those no edge reached: see settle).
func (r *run) release(i int32) {
	r.remaining--
	for _, c := range r.g.Dependents(int(i)) {
		if r.taken != nil && r.takes(i, c) {
			r.taken[c]++
		}
		if r.indeg[c]--; r.indeg[c] == 0 && r.res.Nodes[c].Status == Pending {
			if r.taken == nil {
				r.queue(c) // no branch in the graph: every edge is taken
			} else {
				r.settle(c)
			}
		}
	}
}

// skipDescendants skips every descendant of node i still pending, with
// error why. Called with mu held.
func (r *run) skipDescendants(i int32, why error) {
	stack := []int32{i}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range r.g.Dependents(int(v)) {
			nr := &r.res.Nodes[c]
			if nr.Status != Pending {
				continue
			}
			nr.Status = Skipped
			nr.Err = why
			r.remaining--
			r.unreleased[r.slots[c].class]--
			r.emit(Event{Kind: NodeSkipped, Node: nr.ID, Time: r.now(), Status: Skipped, Err: nr.Err})
			stack = append(stack, c)
		}
	}
}

func (r *run) cancelNode(i int32, err error) {
	nr := &r.res.Nodes[i]
	nr.Status, nr.Err = Cancelled, err
	r.remaining--
	r.emit(Event{Kind: NodeCancelled, Node: nr.ID, Attempt: nr.Attempts, Time: nr.End, Status: Cancelled, Err: err})
}

// stop makes the run start nothing more: it cancels the nodes in flight
// (with cause) and gives them AbandonAfter to return. Called with mu held.
func (r *run) stop(cause error) {
	if r.stopping {
		return
	}
	r.stopping = true
	r.kick = true
	r.cancel(cause)
	deadline := r.now().Add(r.abandonAfter)
	for i := range r.slots {
		sl := &r.slots[i]
		if tok := r.tok(sl.attempt); sl.attempt > 0 && sl.token.Load() == tok {
			r.pushTimer(timerEntry{at: deadline, idx: int32(i), kind: timerAbandon, tok: tok})
		}
	}
}

// finishRemaining gives every node still pending its final status once the
// loop has ended: cancelled if the run was cancelled, skipped otherwise.
// Called with mu held.
func (r *run) finishRemaining() {
	if r.remaining == 0 {
		return
	}
	now := r.now()
	for i := range r.res.Nodes {
		nr := &r.res.Nodes[i]
		if nr.Status != Pending {
			continue
		}
		if r.cancelled {
			nr.Status, nr.Err = Cancelled, ErrRunStopped
			r.emit(Event{Kind: NodeCancelled, Node: nr.ID, Time: now, Status: Cancelled, Err: ErrRunStopped})
		} else {
			nr.Status, nr.Err = Skipped, ErrRunStopped
			r.emit(Event{Kind: NodeSkipped, Node: nr.ID, Time: now, Status: Skipped, Err: ErrRunStopped})
		}
	}
	r.remaining = 0
}
