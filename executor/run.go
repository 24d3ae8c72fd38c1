package executor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/internal/readyq"
)

// pauseThreshold is how long Wait of a Gate without Checker must block before
// the executor reports it as a pause.
const pauseThreshold = time.Millisecond

// slot is the scheduler's per-node bookkeeping.
type slot struct {
	// token is gen<<1 while attempt gen runs; the node goroutine and the
	// abandon timer race to set the low bit, and only the winner reports
	// the attempt's end. Read without run.mu.
	token atomic.Uint64
	// The fields below are guarded by run.mu.
	gen     uint64
	attempt int32
	timeout time.Duration
	retry   *dag.RetryPolicy
}

const (
	timerAbandon = iota
	timerRetry
)

type timerEntry struct {
	at   time.Time
	idx  int32
	kind uint8
	gen  uint64
}

// run is the state of one RunWith call.
//
// Scheduling is decentralised: the goroutine of a node that finishes takes
// mu, records the outcome and starts the dependents that became ready, so a
// chain of nodes needs no hand-off to another goroutine. The goroutine that
// called RunWith (the coordinator) does what needs waiting: timers (retries,
// abandoning stuck nodes, the inter-node delay), waiting on the gate,
// cancellation, and delivering events to observers in order, outside mu.
// Whoever changes something the coordinator must act on sets kick, and
// signals wake after unlocking.
type run struct {
	e            *Executor
	g            *dag.Graph
	state        dag.State
	id           string
	observers    []Observer
	gate         Gate
	checker      Checker // gate's Checker, nil if it has none
	abandonAfter time.Duration
	// ctx is the run's context (per call, never retained after RunWith).
	ctx    context.Context
	cancel context.CancelCauseFunc

	wg   sync.WaitGroup // node attempts that have not reported
	wake chan struct{}  // capacity 1: the coordinator has work

	// Checkpointing (store nil: off). The committer goroutine makes
	// completions durable; commitWake (capacity 1) tells it to look.
	store      *CheckpointStore
	durable    DurableState // the State, when it keeps its own values durably
	policy     CommitPolicy
	commitWake chan struct{}
	commitDone chan struct{}

	// mu guards every field below, and the non-atomic fields of slots.
	mu         sync.Mutex
	res        *Result
	indeg      []int32
	ready      *readyq.Queue
	slots      []slot
	nctx       []nodeCtx
	inflight   int
	remaining  int // nodes without a final status
	timers     timerHeap
	retries    int // retry timers pending
	delayUntil time.Time
	lastStart  time.Time
	stopping   bool // fail-fast or cancellation: start nothing more
	cancelled  bool // the caller's ctx ended
	failures   []error
	gateErr    error
	// Gate state: blocked means Check refused a start and the coordinator
	// must wait; waiting means its waiter goroutine is running; bypass lets
	// one node start right after a wait returned.
	gateBlocked bool
	gateReason  error
	gateWaiting bool
	gateBypass  bool
	events      []Event
	kick        bool
	// Completions of succeeded nodes waiting to be committed; their
	// dependents are released once the commit is durable.
	pending      []completionRecord
	pendingIdx   []int32
	pendingSince time.Time
	committing   bool
	commitStop   bool
	ckptErr      error
}

func newRun(ctx context.Context, e *Executor, g *dag.Graph, s dag.State, id string, observers []Observer, cancel context.CancelCauseFunc) *run {
	n := g.Len()
	r := &run{
		e: e, g: g, state: s, id: id, observers: observers, ctx: ctx, cancel: cancel,
		gate: e.opts.Gate, abandonAfter: e.opts.AbandonAfter,
		wake:      make(chan struct{}, 1),
		res:       &Result{RunID: id, Nodes: make([]NodeResult, n)},
		indeg:     make([]int32, n),
		slots:     make([]slot, n),
		nctx:      make([]nodeCtx, n),
		remaining: n,
	}
	if ck, ok := r.gate.(Checker); ok {
		r.checker = ck
	}
	if e.opts.Checkpoints != nil {
		r.store = e.opts.Checkpoints
		if ds, ok := s.(DurableState); ok && ds.Durable() {
			r.durable = ds
		}
		r.policy = r.store.opts.Commit
		r.commitWake = make(chan struct{}, 1)
		r.commitDone = make(chan struct{})
	}
	prio := make([]int, n)
	for i := range n {
		nd := g.At(i)
		prio[i] = nd.Priority
		r.indeg[i] = int32(len(g.Dependencies(i)))
		r.res.Nodes[i] = NodeResult{ID: nd.ID, Optional: nd.Optional}
		sl := &r.slots[i]
		sl.timeout = nd.Timeout
		if sl.timeout == 0 {
			sl.timeout = e.opts.NodeTimeout
		}
		sl.retry = nd.Retry
		if sl.retry == nil {
			sl.retry = e.opts.Retry
		}
	}
	r.ready = readyq.New(prio, n)
	return r
}

// prepare restores a resumed run from the checkpoint store and queues the
// nodes that can start.
func (r *run) prepare() error {
	if r.store != nil {
		if err := r.restore(); err != nil {
			return err
		}
	}
	var roots []int32
	for i := range r.indeg {
		if r.indeg[i] == 0 && r.res.Nodes[i].Status == Pending {
			roots = append(roots, int32(i))
		}
	}
	slices.SortFunc(roots, func(a, b int32) int {
		if r.ready.Less(a, b) {
			return -1
		}
		return 1
	})
	r.ready.SetBase(roots)
	return nil
}

// restore records a new run in the store, or brings back an unfinished
// one: its completed nodes are marked succeeded (and their dependents'
// in-degrees lowered) and the State keys they changed are written back.
func (r *run) restore() error {
	rest, err := r.store.begin(r.id, r.g, r.durable != nil, time.Now())
	if err != nil || rest == nil {
		return err
	}
	for _, k := range rest.deleted {
		if err := r.state.Delete(k); err != nil {
			return fmt.Errorf("executor: resume run %q: restore deletion of %q: %w", r.id, k, err)
		}
	}
	keys := make([]string, 0, len(rest.state))
	for k := range rest.state {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := r.state.Put(k, rest.state[k]); err != nil {
			return fmt.Errorf("executor: resume run %q: restore key %q: %w", r.id, k, err)
		}
	}
	for id, d := range rest.done {
		i, _ := r.g.IndexOf(id)
		nr := &r.res.Nodes[i]
		nr.Status, nr.Restored, nr.Checkpointed = Succeeded, true, true
		nr.Attempts, nr.End = d.Attempts, d.End
		r.remaining--
		for _, c := range r.g.Dependents(i) {
			r.indeg[c]--
		}
	}
	return nil
}

// check asks the gate's Checker whether a node may start (nil: yes). It is
// called without mu: Check is the gate's code.
func (r *run) check() error {
	if r.checker == nil {
		return nil
	}
	return r.checker.Check()
}

func (r *run) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// loop is the coordinator. It returns when every node has a final status,
// or when the run has stopped and nothing is in flight.
func (r *run) loop(parent context.Context) {
	if r.store != nil {
		go r.committer()
	}
	var timer *time.Timer
	var timerAt time.Time
	var gateDone chan error
	var gateCancel context.CancelFunc
	var gateStart time.Time
	var spare []Event
	for {
		var reason error
		if r.gate != nil {
			if r.checker == nil {
				r.waitPlainGate()
			} else {
				reason = r.check()
			}
		}
		now := time.Now()
		r.mu.Lock()
		r.dispatch(now, reason, false)
		finished := r.inflight == 0 && !r.gateWaiting && len(r.pending) == 0 && !r.committing &&
			(r.remaining == 0 || r.stopping || (r.ready.Len() == 0 && r.retries == 0))
		commitKick := len(r.pending) > 0
		startGate := r.gateBlocked && !r.gateWaiting && !r.stopping && !finished
		if startGate {
			r.gateBlocked, r.gateWaiting = false, true
			gateStart = now
			r.emit(Event{Kind: Paused, Time: now, Err: r.gateReason})
		}
		next := r.nextTimer()
		evs := r.events
		r.events, spare = spare[:0], evs
		r.kick = false
		r.mu.Unlock()
		r.deliver(evs)
		if finished {
			break
		}
		if commitKick {
			r.signalCommitter()
		}
		if startGate {
			gctx, cancel := context.WithCancel(r.ctx)
			gateCancel = cancel
			if gateDone == nil {
				gateDone = make(chan error, 1)
			}
			go func() { gateDone <- r.gate.Wait(gctx) }()
		}
		if !next.Equal(timerAt) {
			timerAt = next
			switch {
			case next.IsZero():
				if timer != nil {
					timer.Stop()
				}
			case timer == nil:
				timer = time.NewTimer(time.Until(next))
			default:
				timer.Reset(time.Until(next))
			}
		}
		var timerC <-chan time.Time
		if !timerAt.IsZero() {
			timerC = timer.C
		}
		var parentDone <-chan struct{}
		if !r.cancelled {
			parentDone = parent.Done()
		}
		var gateC <-chan error
		if r.gateWaitingNow() {
			gateC = gateDone
		}
		select {
		case <-r.wake:
		case now := <-timerC:
			timerAt = time.Time{}
			r.mu.Lock()
			r.fireTimers(now)
			r.mu.Unlock()
		case err := <-gateC:
			gateCancel()
			r.gateReturned(parent, time.Since(gateStart), err)
		case <-*r.e.changed.Load():
		case <-parentDone:
			r.mu.Lock()
			r.cancelled = true
			r.stop(context.Cause(parent))
			r.mu.Unlock()
		}
	}
	if timer != nil {
		timer.Stop()
	}
	r.wg.Wait() // the last node goroutines are past their report
	if r.store != nil {
		r.mu.Lock()
		r.commitStop = true
		r.mu.Unlock()
		r.signalCommitter()
		<-r.commitDone
	}
	r.mu.Lock()
	r.finishRemaining()
	evs := r.events
	r.events = nil
	r.mu.Unlock()
	r.deliver(evs)
}

func (r *run) gateWaitingNow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gateWaiting
}

// gateReturned handles the end of a wait on a Checker gate.
func (r *run) gateReturned(parent context.Context, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gateWaiting = false
	r.res.Pauses++
	r.res.Paused += d
	r.emit(Event{Kind: Resumed, Time: time.Now(), Duration: d, Err: err})
	switch {
	case err == nil:
		r.gateBypass = true
	case parent.Err() != nil:
		// The wait ended because the caller's context did.
		if !r.cancelled {
			r.cancelled = true
			r.stop(context.Cause(parent))
		}
	case !r.stopping:
		r.gateErr = fmt.Errorf("executor: gate: %w", err)
		r.stop(r.gateErr)
	}
}

// waitPlainGate waits, on the coordinator, on a Gate without Checker before
// the next node start, when a node could start. Node goroutines never start
// nodes under such a gate; they kick the coordinator instead.
func (r *run) waitPlainGate() {
	r.mu.Lock()
	can := !r.stopping && !r.gateBypass && r.ready.Len() > 0 && r.inflight < r.e.MaxParallel() && r.delayPassed(time.Now())
	r.mu.Unlock()
	if !can {
		return
	}
	start := time.Now()
	err := r.gate.Wait(r.ctx)
	d := time.Since(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	if d >= pauseThreshold {
		r.res.Pauses++
		r.res.Paused += d
		r.emit(Event{Kind: Paused, Time: start})
		r.emit(Event{Kind: Resumed, Time: start.Add(d), Duration: d})
	}
	switch {
	case err == nil:
		r.gateBypass = true
	case r.ctx.Err() != nil:
		// Cancellation: the coordinator sees it next.
	case !r.stopping:
		r.gateErr = fmt.Errorf("executor: gate: %w", err)
		r.stop(r.gateErr)
	}
}

func (r *run) delayPassed(now time.Time) bool {
	delay := r.e.InterNodeDelay()
	return delay <= 0 || r.lastStart.IsZero() || !now.Before(r.lastStart.Add(delay))
}

// dispatch starts ready nodes while there are free slots, the inter-node
// delay has passed and the gate allows (reason == nil). With cont, the first
// node started is returned instead of given a goroutine: the calling worker
// goroutine runs it next. Called with mu held.
func (r *run) dispatch(now time.Time, reason error, cont bool) (next attempt, ok bool) {
	for r.ready.Len() > 0 && r.inflight < r.e.MaxParallel() && !r.stopping {
		if !r.delayPassed(now) {
			if at := r.lastStart.Add(r.e.InterNodeDelay()); !at.Equal(r.delayUntil) {
				r.delayUntil = at
				r.kick = true
			}
			return next, ok
		}
		if r.gate != nil {
			switch {
			case r.gateWaiting:
				return next, ok
			case r.gateBypass:
				// A wait on the gate just returned: start one node even if
				// Check has flipped back, so a flapping gate cannot starve
				// the run.
				r.gateBypass = false
			case r.checker == nil:
				r.kick = true // the coordinator waits on plain gates
				return next, ok
			case reason != nil:
				r.gateBlocked, r.gateReason = true, reason
				r.kick = true
				return next, ok
			}
		}
		a := r.start(now, r.ready.Pop())
		if cont && !ok {
			next, ok = a, true
		} else {
			go r.worker(a)
		}
	}
	return next, ok
}

// attempt identifies one attempt of a node, handed to a worker goroutine.
type attempt struct {
	nc      *nodeCtx
	idx     int32
	gen     uint64
	timeout time.Duration
}

// start books the next attempt of node i; the caller runs it on a worker.
// Called with mu held.
func (r *run) start(now time.Time, i int32) attempt {
	sl := &r.slots[i]
	sl.attempt++
	sl.gen++
	sl.token.Store(sl.gen << 1)
	r.lastStart = now
	r.delayUntil = time.Time{}
	nr := &r.res.Nodes[i]
	if sl.attempt == 1 {
		nr.Start = now
	}
	nr.Attempts = int(sl.attempt)
	nc := &r.nctx[i]
	if sl.attempt == 1 {
		*nc = nodeCtx{Context: r.ctx, run: r, idx: i, attempt: 1}
	} else {
		nc = &nodeCtx{Context: r.ctx, run: r, idx: i, attempt: sl.attempt}
	}
	if sl.timeout > 0 {
		r.pushTimer(timerEntry{at: now.Add(sl.timeout + r.abandonAfter), idx: i, kind: timerAbandon, gen: sl.gen})
	}
	r.inflight++
	if len(r.observers) > 0 {
		r.emit(Event{Kind: NodeStarted, Node: nr.ID, Attempt: nr.Attempts, Time: now})
	}
	r.wg.Add(1)
	return attempt{nc: nc, idx: i, gen: sl.gen, timeout: sl.timeout}
}

// worker runs node attempts: a, then, as long as finishing one makes
// another startable, that one too, so a chain of nodes runs on one
// goroutine without a hand-off. It records each outcome under mu.
func (r *run) worker(a attempt) {
	for {
		var ctx context.Context = a.nc
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
		err := r.call(ctx, a.idx, st)
		var changes []change
		if err == nil && tracked != nil {
			if changes, err = tracked.changes(); err != nil {
				err = fmt.Errorf("executor: read the keys the node changed, for its checkpoint: %w", err)
			}
		}
		timedOut := false
		if cancel != nil {
			timedOut = err != nil && ctx.Err() == context.DeadlineExceeded && a.nc.Err() == nil
			cancel()
		}
		runDone := a.nc.Err() != nil
		end := time.Now()
		if !r.slots[a.idx].token.CompareAndSwap(a.gen<<1, a.gen<<1|1) {
			return // abandoned: the coordinator has reported this attempt
		}
		var reason error
		if r.gate != nil {
			reason = r.check()
		}
		r.mu.Lock()
		r.complete(a.idx, err, timedOut, runDone, end, changes)
		next, ok := r.dispatch(end, reason, true)
		kick := r.kick || r.inflight == 0
		commitKick := len(r.pending) > 0
		r.mu.Unlock()
		if kick {
			r.signal()
		}
		if commitKick {
			r.signalCommitter()
		}
		r.wg.Done()
		if !ok {
			return
		}
		a = next
	}
}

func (r *run) call(ctx context.Context, i int32, s dag.State) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return r.g.At(int(i)).Run(ctx, s)
}

// complete records the end of an attempt. Called with mu held.
func (r *run) complete(i int32, err error, timedOut, runDone bool, end time.Time, changes []change) {
	r.inflight--
	nr := &r.res.Nodes[i]
	nr.End = end
	switch {
	case err == nil:
		nr.Status, nr.Err = Succeeded, nil
		if len(r.observers) > 0 {
			r.emit(Event{Kind: NodeSucceeded, Node: nr.ID, Attempt: nr.Attempts, Time: end, Duration: end.Sub(nr.Start), Status: Succeeded})
		}
		if r.store == nil {
			r.release(i)
			return
		}
		// Dependents wait until the completion is durable.
		if len(r.pending) == 0 {
			r.pendingSince = end
		}
		r.pending = append(r.pending, completionRecord{node: nr.ID, attempts: nr.Attempts, end: end, changes: changes})
		r.pendingIdx = append(r.pendingIdx, i)
	case runDone && !timedOut:
		// Whatever it returned, the node stopped because the run did. If
		// no stop is recorded yet, the caller's context ended (fail-fast
		// and gate failures record the stop before cancelling).
		if !r.stopping {
			r.cancelled = true
			r.stop(context.Cause(r.ctx))
		}
		r.cancelNode(i, err)
	default:
		status := Failed
		if timedOut {
			err, status = &TimeoutError{Timeout: r.slots[i].timeout}, TimedOut
		}
		if delay, ok := r.retryDelay(i, err, end); ok {
			r.retries++
			r.pushTimer(timerEntry{at: end.Add(delay), idx: i, kind: timerRetry})
			r.emit(Event{Kind: NodeRetrying, Node: nr.ID, Attempt: nr.Attempts, Time: end, Duration: delay, Err: err})
			return
		}
		r.fail(i, status, err)
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
	r.emit(Event{Kind: NodeFailed, Node: nr.ID, Attempt: nr.Attempts, Time: nr.End, Status: status, Err: ne})
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
	r.skipDescendants(i, nr.ID)
}

// release marks node i finished and queues dependents that became ready.
func (r *run) release(i int32) {
	r.remaining--
	for _, c := range r.g.Dependents(int(i)) {
		if r.indeg[c]--; r.indeg[c] == 0 && r.res.Nodes[c].Status == Pending {
			r.ready.Push(c)
		}
	}
}

func (r *run) skipDescendants(i int32, failed string) {
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
			nr.Err = &UpstreamError{Dependency: failed}
			r.remaining--
			r.emit(Event{Kind: NodeSkipped, Node: nr.ID, Time: time.Now(), Status: Skipped, Err: nr.Err})
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
	deadline := time.Now().Add(r.abandonAfter)
	for i := range r.slots {
		sl := &r.slots[i]
		if sl.gen > 0 && sl.token.Load() == sl.gen<<1 {
			r.pushTimer(timerEntry{at: deadline, idx: int32(i), kind: timerAbandon, gen: sl.gen})
		}
	}
}

// pushTimer adds a timer entry, kicking the coordinator when it becomes the
// earliest. Called with mu held.
func (r *run) pushTimer(t timerEntry) {
	r.timers.push(t)
	if r.timers[0] == t {
		r.kick = true
	}
}

// nextTimer is the earliest deadline the coordinator must wake for. Called
// with mu held.
func (r *run) nextTimer() time.Time {
	var next time.Time
	if len(r.timers) > 0 {
		next = r.timers[0].at
	}
	if !r.delayUntil.IsZero() && r.ready.Len() > 0 && (next.IsZero() || r.delayUntil.Before(next)) {
		next = r.delayUntil
	}
	return next
}

// fireTimers handles the timer entries due at now. Called with mu held.
func (r *run) fireTimers(now time.Time) {
	if !r.delayUntil.IsZero() && !now.Before(r.delayUntil) {
		r.delayUntil = time.Time{}
	}
	for len(r.timers) > 0 && !now.Before(r.timers[0].at) {
		t := r.timers.pop()
		switch t.kind {
		case timerRetry:
			r.retries--
			if !r.stopping {
				r.ready.Push(t.idx)
			}
		case timerAbandon:
			sl := &r.slots[t.idx]
			if sl.gen != t.gen || !sl.token.CompareAndSwap(t.gen<<1, t.gen<<1|1) {
				continue // that attempt already reported
			}
			r.wg.Done() // on behalf of the goroutine, which will not report
			r.inflight--
			r.res.Abandoned++
			nr := &r.res.Nodes[t.idx]
			nr.Abandoned = true
			nr.End = now
			if r.stopping {
				r.cancelNode(t.idx, fmt.Errorf("executor: node ignored cancellation for %v; goroutine abandoned", r.abandonAfter))
				continue
			}
			r.fail(t.idx, TimedOut, &TimeoutError{Timeout: sl.timeout, Abandoned: true})
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
	now := time.Now()
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

// err is the error RunWith returns.
func (r *run) err(parent context.Context) error {
	switch {
	case r.cancelled:
		return fmt.Errorf("executor: run %s cancelled: %w", r.id, context.Cause(parent))
	case r.ckptErr != nil:
		return r.ckptErr
	case len(r.failures) == 1:
		return r.failures[0]
	case len(r.failures) > 1:
		return errors.Join(r.failures...)
	}
	return r.gateErr
}

func (r *run) signalCommitter() {
	select {
	case r.commitWake <- struct{}{}:
	default:
	}
}

// committer makes pending completions durable, in groups (see
// CommitPolicy), then releases their dependents. It is owned by the run and
// exits when the coordinator sets commitStop with nothing pending.
func (r *run) committer() {
	defer close(r.commitDone)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		now := time.Now()
		r.mu.Lock()
		batch, wait, exit := r.takeBatch(now)
		idx := r.pendingIdx
		if batch != nil {
			r.pendingIdx = nil
		}
		r.mu.Unlock()
		if batch != nil {
			var err error
			if r.durable != nil {
				// The values stay in the State: make them durable first,
				// then record the completions.
				if err = r.durable.Checkpoint(); err != nil {
					err = fmt.Errorf("checkpoint the State: %w", err)
				}
			}
			if err == nil {
				err = r.store.commit(r.id, batch, time.Now())
			}
			reason := r.check()
			r.mu.Lock()
			r.committing = false
			if err != nil && r.ckptErr == nil {
				r.ckptErr = fmt.Errorf("executor: checkpoint run %s: %w", r.id, err)
				r.stop(r.ckptErr)
			}
			for _, i := range idx {
				if err == nil {
					nr := &r.res.Nodes[i]
					nr.Checkpointed = true
					r.emit(Event{Kind: NodeCheckpointed, Node: nr.ID, Attempt: nr.Attempts, Time: time.Now(), Status: Succeeded})
				}
				r.release(i)
			}
			r.dispatch(time.Now(), reason, false)
			r.mu.Unlock()
			r.signal()
			continue
		}
		if exit {
			return
		}
		var timerC <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			timerC = timer.C
		}
		select {
		case <-r.commitWake:
		case <-timerC:
		}
	}
}

// takeBatch decides whether to commit now. It returns the batch to commit,
// or how long to wait (0: until signalled), or exit. Called with mu held.
func (r *run) takeBatch(now time.Time) (batch []completionRecord, wait time.Duration, exit bool) {
	if len(r.pending) == 0 {
		return nil, 0, r.commitStop
	}
	p := r.policy
	due := len(r.pending) >= max(p.MaxNodes, 1) ||
		(p.MaxDelay > 0 && now.Sub(r.pendingSince) >= p.MaxDelay) ||
		(r.inflight < r.e.MaxParallel() && r.ready.Len() == 0) ||
		r.stopping || r.commitStop
	if !due {
		if p.MaxDelay > 0 {
			wait = r.pendingSince.Add(p.MaxDelay).Sub(now)
		}
		return nil, wait, false
	}
	batch = r.pending
	r.pending = nil
	r.committing = true
	return batch, 0, false
}

// emit queues ev for the observers; the coordinator delivers it after
// releasing mu. Called with mu held.
func (r *run) emit(ev Event) {
	if len(r.observers) == 0 {
		return
	}
	ev.RunID = r.id
	r.events = append(r.events, ev)
	r.kick = true
}

// deliver calls the observers with evs, in order. Called without mu.
func (r *run) deliver(evs []Event) {
	for _, ev := range evs {
		for _, o := range r.observers {
			r.deliverOne(o, ev)
		}
	}
}

// notify delivers one event directly (RunStarted and RunFinished, which the
// coordinator emits outside the loop).
func (r *run) notify(ev Event) {
	if len(r.observers) == 0 {
		return
	}
	ev.RunID = r.id
	r.deliver([]Event{ev})
}

func (r *run) deliverOne(o Observer, ev Event) {
	defer func() {
		if v := recover(); v != nil {
			r.e.logger.Error("executor: observer panicked", "run", r.id, "event", ev.Kind.String(), "panic", v)
		}
	}()
	o.OnEvent(ev)
}

// timerHeap is a min-heap of timer entries by time.
type timerHeap []timerEntry

func (h *timerHeap) push(t timerEntry) {
	*h = append(*h, t)
	s := *h
	for j := len(s) - 1; j > 0; {
		p := (j - 1) / 2
		if !s[j].at.Before(s[p].at) {
			break
		}
		s[j], s[p] = s[p], s[j]
		j = p
	}
}

func (h *timerHeap) pop() timerEntry {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for j := 0; ; {
		l := 2*j + 1
		if l >= n {
			break
		}
		m := l
		if rr := l + 1; rr < n && s[rr].at.Before(s[l].at) {
			m = rr
		}
		if !s[m].at.Before(s[j].at) {
			break
		}
		s[j], s[m] = s[m], s[j]
		j = m
	}
	*h = s
	return top
}
