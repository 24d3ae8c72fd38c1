package executor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/internal/panicerr"
)

// slot is the scheduler's per-node bookkeeping.
type slot struct {
	// token is run.tok(attempt) while that attempt runs; the node
	// goroutine and the abandon timer race to set the low bit, and only
	// the winner reports the attempt's end. Read without run.mu.
	token atomic.Uint64
	// The fields below are guarded by run.mu.
	attempt int32
	class   dag.Class // in attempt's padding: a slot stays 32 bytes
	timeout time.Duration
	retry   *dag.RetryPolicy
}

// nClasses is the number of node classes (dag.CPU, dag.IO).
const nClasses = int(dag.IO) + 1

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
//
// The per-node state lives in pooled buffers (runBufs); the run copies
// their slice headers and gives them back when it ends. A run object
// itself is never reused: node contexts of a finished run keep pointing to
// it.
type run struct {
	// mu guards the fields of runVars below its own mu comment, the
	// non-atomic fields of slots, and ref.ended. It is never reset: the
	// node context of an earlier run may still lock it (Emit) to learn that
	// its run has ended.
	mu sync.Mutex
	// wg counts the worker goroutines (each runs one attempt after
	// another); the coordinator counts an abandoned one out for it.
	wg sync.WaitGroup
	// runBufs are the per-node buffers, kept with the run in the pool.
	runBufs
	runVars
}

// runVars is the state of one run, zeroed as a whole when a run ends
// (releaseBufs), so that a pooled run object starts the next with zero
// values.
type runVars struct {
	e            *Executor
	g            *dag.Graph
	state        dag.State
	id           string
	observers    []Observer
	gate         Gate
	checker      Checker // gate's Checker, nil if it has none
	abandonAfter time.Duration
	// resume: RunOptions.Resume, the run must exist in the store.
	resume bool
	// inputs and ignoreInputs: RunOptions.Inputs and IgnoreInputs.
	inputs       map[string]string
	ignoreInputs bool
	// answers: RunOptions.Answers.
	answers map[string]string
	// ref is what the node contexts of this run point to; a new one is
	// made for every run.
	ref *runRef

	// Checkpointing (store nil: off). The committer goroutine makes
	// completions durable; commitWake (capacity 1) tells it to look.
	store      *CheckpointStore
	durable    DurableState // the State, when it keeps its own values durably
	policy     CommitPolicy
	commitWake chan struct{}
	commitDone chan struct{}

	// Guarded by run.mu:
	res *Result
	// running counts the attempts in flight per class (inflight is their
	// sum); unreleased counts per class the nodes never queued yet
	// (waiting for dependencies). The ready queues are in runBufs.
	running    [nClasses]int
	unreleased [nClasses]int
	nctx       []nodeCtx
	inflight   int
	remaining  int // nodes without a final status
	retries    int // retry timers pending
	delayUntil time.Time
	lastStart  time.Time
	stopping   bool // fail-fast or cancellation: start nothing more
	cancelled  bool // the caller's ctx ended
	failures   []error
	gateErr    error
	gs         gateState
	kick       bool
	// unwatched: the coordinator waits without watching for limit
	// changes (loop); a worker that leaves ready nodes then kicks it.
	unwatched bool
	// lastEnd is the latest end of an attempt a worker goroutine
	// reported: the run's end when its last node ended that way (loop).
	lastEnd time.Time
	// epoch counts takes of events, for the coalescing of node output
	// (output.go).
	epoch uint32
	// pendingSince is when the oldest completion waiting to be committed
	// (runBufs.pending) arrived.
	pendingSince time.Time
	committing   bool
	commitStop   bool
	ckptErr      error
	// choiceFaults are invalid Choose calls of non-branch nodes
	// (choose.go).
	choiceFaults []choiceFault
	preparing    bool // restoring a resume: settle queues nothing
	// interrupts are the errors of the nodes waiting for input
	// (interrupt.go; their questions are in res.Questions).
	interrupts []error
}

// runRef is a run's identity as its node contexts see it. It is allocated
// for every run and never reused, unlike the run object: a goroutine a
// node left behind keeps its context, which must keep describing (and
// ending with) its own run.
type runRef struct {
	r *run // the run object, which may serve a later run once ended
	// ctx is the run's context, made on first use.
	ctx      runContext
	t0       time.Time // the run's start, with its monotonic clock reading
	id       string
	g        *dag.Graph
	slots    []slot
	tokBase  uint64 // the buffers' generation, shifted into slot tokens
	observed bool   // the run has observers
	ended    bool   // guarded by r.mu: the run is over
	// answers are the answers to waiting nodes (InputFrom), set before
	// any node starts.
	answers map[string]string
}

// smallGraph is the size up to which a run's node contexts come from a
// chunk shared with later runs (runBufs.nctxs), saving an allocation per
// run.
const smallGraph = 4

// nctxChunk is how many node contexts runBufs.nctxs gets at once.
const nctxChunk = 32

// refChunk is how many runRefs are allocated at once (runBufs.refs).
const refChunk = 8

// takeFresh hands out the next n elements of *chunk, never handed out
// before, allocating a new chunk of size (≥ n) when fewer are left: one
// allocation for several runs of what a run must not share with a later
// one. The elements handed out keep the chunk reachable.
func takeFresh[T any](chunk *[]T, n, size int) []T {
	if len(*chunk) < n {
		*chunk = make([]T, size)
	}
	s := (*chunk)[:n:n]
	*chunk = (*chunk)[n:]
	return s
}

// now is the time: the run's start plus the monotonic time elapsed since,
// one clock read instead of time.Now's two (wall and monotonic), which
// costs about 50 ns on some VMs and is read once per node. The times of a
// run therefore follow its start's wall clock: a step of the system clock
// during the run does not show in them (their differences stay exact).
func (f *runRef) now() time.Time { return f.t0.Add(time.Since(f.t0)) }

// runCtx is the run's context (made on first use).
func (r *run) runCtx() context.Context { return r.ref.ctx.get() }

// cancel cancels the run's context with cause.
func (r *run) cancel(cause error) { r.ref.ctx.cancel(cause) }

// now is the run's clock (runRef.now).
func (r *run) now() time.Time { return r.ref.now() }

// tok is the token of a running attempt of this run.
func (r *run) tok(attempt int32) uint64 { return r.ref.tok(attempt) }

// tok is the token of a running attempt of the run.
func (f *runRef) tok(attempt int32) uint64 { return f.tokBase | uint64(attempt)<<1 }

func newRun(ctx context.Context, e *Executor, g *dag.Graph, s dag.State, id string, observers []Observer, reuse *Result, start time.Time) *run {
	n := g.Len()
	r, _ := e.runs.Get().(*run)
	if r == nil {
		r = &run{runBufs: runBufs{wake: make(chan struct{}, 1)}}
	}
	b := &r.runBufs
	b.reset(g, &e.opts)
	ref := &takeFresh(&b.refs, 1, refChunk)[0]
	ref.r, ref.ctx.parent, ref.t0, ref.id, ref.g, ref.slots = r, ctx, start, id, g, b.slots
	ref.tokBase, ref.observed = uint64(b.gen)<<32, len(observers) > 0
	var nctx []nodeCtx
	if n <= smallGraph {
		nctx = takeFresh(&b.nctxs, n, nctxChunk)
	} else {
		nctx = make([]nodeCtx, n)
	}
	// runVars is zero here (a new run object, or one reset by
	// releaseBufs): setting the fields one by one writes a dozen pointers
	// where assigning the struct would write all of them, each a write
	// barrier while the collector marks.
	v := &r.runVars
	v.e, v.g, v.state, v.id, v.observers = e, g, s, id, observers
	v.gate, v.abandonAfter = e.opts.Gate, e.opts.AbandonAfter
	v.ref = ref
	v.res = newResult(reuse, id, g)
	v.unreleased = b.unreleased0
	v.nctx = nctx
	v.remaining = n
	if ck, ok := r.gate.(Checker); ok {
		r.checker = ck
	}
	if e.opts.Checkpoints != nil {
		r.store = e.opts.Checkpoints
		r.policy = r.store.opts.Commit
		r.commitWake = make(chan struct{}, 1)
		r.commitDone = make(chan struct{})
	}
	return r
}

// newResult returns the Result of a new run: reuse, reset, when given.
func newResult(reuse *Result, id string, g *dag.Graph) *Result {
	n := g.Len()
	var nodes []NodeResult
	res := reuse
	if res == nil {
		res = new(Result)
	} else {
		nodes = res.Nodes[:0]
	}
	nodes = slices.Grow(nodes, n)[:n]
	for i := range nodes {
		nd := g.At(i)
		nodes[i] = NodeResult{ID: nd.ID, Optional: nd.Optional}
	}
	*res = Result{RunID: id, Nodes: nodes, g: g}
	return res
}

// releaseBufs ends the run: its context is cancelled, its node contexts
// no longer reach the run object, which goes back to the executor's pool
// with its buffers, unless a goroutine of the run is still running a node
// (abandoned).
func (r *run) releaseBufs() {
	r.cancel(nil)
	r.mu.Lock()
	r.ref.ended = true
	b := &r.runBufs
	abandoned := r.res.Abandoned > 0
	r.mu.Unlock()
	if abandoned {
		return
	}
	e := r.e
	b.clear()
	r.runVars = runVars{} // let go of the State, the observers, the Result
	e.runs.Put(r)
}

// prepare restores a resumed run from the checkpoint store and queues the
// nodes that can start.
func (r *run) prepare() error {
	restored := false
	if r.store != nil {
		if ds, ok := r.state.(DurableState); ok {
			var durable bool
			if err := panicerr.Call("DurableState.Durable", func() error { durable = ds.Durable(); return nil }); err != nil {
				return fmt.Errorf("executor: run %s: %w", r.id, err)
			}
			if durable {
				r.durable = ds
			}
		}
		var err error
		if restored, err = r.restore(); err != nil {
			return err
		}
	}
	if !restored {
		// The graph's roots, sorted once for the buffers.
		for c := range r.ready {
			r.unreleased[c] -= len(r.roots[c])
			r.ready[c].SetBase(r.roots[c])
		}
		return nil
	}
	b := &r.runBufs
	b.rootBuf = sortRoots(b.rootBuf[:0], r.indeg, func(i int) bool { return r.res.Nodes[i].Status != Pending }, r.slots, b.prio)
	roots := b.rootBuf
	for _, i := range roots {
		r.unreleased[r.slots[i].class]--
	}
	for len(roots) > 0 {
		c := r.slots[roots[0]].class
		k := 1
		for k < len(roots) && r.slots[roots[k]].class == c {
			k++
		}
		r.ready[c].SetBase(roots[:k:k])
		roots = roots[k:]
	}
	return nil
}

// restore records a new run in the store, or brings back an unfinished
// one: its completed nodes are marked succeeded (and their dependents'
// in-degrees lowered) and the State keys they changed are written back. It
// reports whether any node was restored.
func (r *run) restore() (bool, error) {
	rest, err := r.store.begin(beginArgs{id: r.id, g: r.g, durable: r.durable != nil, resume: r.resume,
		inputs: r.inputs, ignoreInputs: r.ignoreInputs, answers: r.answers, now: time.Now()})
	if err != nil || rest == nil {
		return false, err
	}
	r.ref.answers = rest.answers
	if len(rest.accepted) > 0 {
		r.e.logger.Warn("executor: resuming with changed inputs (RunOptions.IgnoreInputs)", "run", r.id,
			"changed", (&InputsChangedError{RunID: r.id, Changed: rest.accepted}).changes())
	}
	for _, k := range rest.deleted {
		if err := panicerr.Call("State.Delete", func() error { return r.state.Delete(k) }); err != nil {
			return false, fmt.Errorf("executor: resume run %q: restore deletion of %q: %w", r.id, k, err)
		}
	}
	keys := make([]string, 0, len(rest.state))
	for k := range rest.state {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := panicerr.Call("State.Put", func() error { return r.state.Put(k, rest.state[k]) }); err != nil {
			return false, fmt.Errorf("executor: resume run %q: restore key %q: %w", r.id, k, err)
		}
	}
	for id, d := range rest.done {
		i, _ := r.g.IndexOf(id)
		nr := &r.res.Nodes[i]
		nr.Status, nr.Restored, nr.Checkpointed = Succeeded, true, true
		nr.Attempts, nr.End = d.Attempts, d.End
		r.remaining--
		r.unreleased[r.slots[i].class]--
		if r.g.At(i).Branch {
			// The recorded choice stands: the branch is not asked again.
			ch := &r.choices[i]
			ch.made = true
			for _, c := range d.Chosen {
				j, _ := r.g.IndexOf(c) // checked by begin
				ch.ids = append(ch.ids, int32(j))
			}
			r.res.choose(nr.ID, d.Chosen)
		}
	}
	for id := range rest.done {
		i, _ := r.g.IndexOf(id)
		for _, c := range r.g.Dependents(i) {
			r.indeg[c]--
			if r.taken != nil && r.takes(int32(i), c) {
				r.taken[c]++
			}
		}
	}
	if r.taken != nil {
		// Nodes that no restored edge reaches are skipped as before the
		// crash; settle passes that on.
		r.preparing = true
		for i := range r.indeg {
			if r.indeg[i] == 0 && r.res.Nodes[i].Status == Pending && len(r.g.Dependencies(i)) > 0 && r.taken[i] == 0 {
				r.skipNotChosen(int32(i))
			}
		}
		r.preparing = false
	}
	return len(rest.done) > 0, nil
}

func (r *run) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// loop is the coordinator. It returns when every node has a final status,
// or when the run has stopped and nothing is in flight. first is the time
// the run started, the start time of the nodes it starts first. It returns
// the run's end when that is the end of its last attempt (every node ended
// on a worker, nothing abandoned and no checkpoint to make durable), read
// without another clock read; else the zero time.
func (r *run) loop(parent context.Context, first time.Time) (end time.Time) {
	if r.store != nil {
		go r.committer()
	}
	var timer *time.Timer
	var timerAt time.Time
	var gateDone chan error
	var gateCancel context.CancelFunc
	var gateStart time.Time
	spare := r.spare
	// solo: nothing but the run's own nodes can stop it (no cancellable
	// parent, gate or checkpoint store) and no observer waits for events
	// while a node runs, so the coordinator may run a node itself when
	// that node is all there is to do (soloNext).
	solo := parent.Done() == nil && r.gate == nil && r.store == nil && len(r.observers) == 0
	for {
		// Loaded before dispatch reads the limits: a change after that
		// read closes this channel.
		changed := *r.e.changed.Load()
		var reason, fault error
		if r.gate != nil {
			if r.checker == nil {
				r.waitPlainGate()
			} else {
				reason, fault = r.check()
			}
		}
		r.mu.Lock()
		// Read the clock only when needed: it costs ~100 ns on some VMs.
		now := first
		first = time.Time{}
		if now.IsZero() && r.readyLen() > 0 {
			now = r.now()
		}
		if fault != nil {
			r.gateFailed(fault)
		}
		var mine attempt
		inline, started := false, false
		if solo && r.inflight == 0 {
			if mine, inline = r.dispatch(now, reason, true); inline && !r.soloNext(mine) {
				r.wg.Add(1)
				go r.worker(mine, false)
				inline = false
			}
		} else {
			before := r.inflight
			r.dispatch(now, reason, false)
			started = r.inflight > before
		}
		finished := r.inflight == 0 && !r.gs.waiting() && len(r.pending) == 0 && !r.committing &&
			(r.remaining == 0 || r.stopping || (r.readyLen() == 0 && r.retries == 0))
		commitKick := len(r.pending) > 0
		startGate := r.gs.blocked() && !r.stopping && !finished
		if startGate {
			if now.IsZero() {
				now = r.now()
			}
			gateStart = now
			r.emit(Event{Kind: Paused, Time: now, Err: r.gs.beginWait()})
		}
		next := r.nextTimer()
		evs := r.takeEvents(spare)
		r.kick = false
		// Only the coordinator begins and ends gate waits: this holds until
		// the select below.
		gateWaiting, cancelled := r.gs.waiting(), r.cancelled
		// With nothing ready and at most one attempt in flight, a change
		// of the limits has nothing to start: the wait leaves out its
		// channel (one channel fewer for the select to lock and queue
		// on), and a worker that leaves ready nodes behind kicks
		// (unwatched).
		r.unwatched = r.readyLen() == 0 && r.inflight <= 1
		if r.unwatched {
			changed = nil
		}
		// yield: this pass started the only attempt in flight and there
		// is nothing else to wait for. The coordinator gives up its
		// processor once before it waits: a short node may end
		// meanwhile, and its wake-up is then found without a park and a
		// wake of this goroutine. A long node costs one yield more.
		yield := started && r.unwatched && next.IsZero() && !startGate && !commitKick
		r.mu.Unlock()
		r.deliver(evs)
		clear(evs) // let delivered chunks' Text go
		spare = evs
		if finished {
			break
		}
		end = time.Time{}
		if inline {
			// The coordinator has nothing to wait for while this node
			// runs: it runs it itself, saving a goroutine and two
			// hand-offs; the worker does not signal it, the loop looks
			// again when it returns.
			r.wg.Add(1)
			end = r.worker(mine, true)
			continue
		}
		if commitKick {
			r.signalCommitter()
		}
		if startGate {
			gctx, cancel := context.WithCancel(r.runCtx())
			gateCancel = cancel
			if gateDone == nil {
				gateDone = make(chan error, 1)
			}
			done := gateDone // the variable itself stays on the stack
			go func() { done <- r.waitGate(gctx) }()
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
		if !cancelled {
			parentDone = parent.Done()
		}
		var gateC <-chan error
		if gateWaiting {
			gateC = gateDone
		}
		if yield {
			runtime.Gosched()
			if len(r.wake) > 0 {
				<-r.wake
				continue
			}
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
		case <-changed:
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
	r.wg.Wait() // the worker goroutines are past their last report
	if r.store != nil {
		r.mu.Lock()
		r.commitStop = true
		r.mu.Unlock()
		r.signalCommitter()
		<-r.commitDone
	}
	r.mu.Lock()
	if end.IsZero() && r.remaining == 0 && r.store == nil && r.res.Abandoned == 0 {
		// Every node ended on a worker: the run was over when the last
		// one did (Result.End), read without another clock read.
		end = r.lastEnd
	}
	r.finishRemaining()
	evs := r.takeEvents(spare)
	r.mu.Unlock()
	r.deliver(evs)
	clear(evs)
	r.spare = evs
	return end
}

// soloNext reports whether the attempt a, just started, may run on the
// coordinator's goroutine: it is the only attempt in flight, no other node
// is ready, and it has no timeout and no timer is pending, so no timer,
// limit change or abandonment needs the coordinator until it returns. It
// applies only to a solo run (loop). Called with mu held.
func (r *run) soloNext(a attempt) bool {
	return r.inflight == 1 && a.timeout == 0 && r.readyLen() == 0 && len(r.timers) == 0 && r.delayUntil.IsZero()
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
	case r.gateErr != nil:
		return r.gateErr
	case len(r.interrupts) == 1:
		return r.interrupts[0]
	case len(r.interrupts) > 1:
		return errors.Join(r.interrupts...)
	}
	return nil
}
