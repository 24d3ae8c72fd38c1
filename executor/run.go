package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/internal/panicerr"
	"github.com/cemaf-go/cemaf/internal/readyq"
)

// slot is the scheduler's per-node bookkeeping.
type slot struct {
	// token is gen<<1 while attempt gen runs; the node goroutine and the
	// abandon timer race to set the low bit, and only the winner reports
	// the attempt's end. Read without run.mu.
	token atomic.Uint64
	// The fields below are guarded by run.mu.
	gen     uint64
	attempt int32
	class   dag.Class // in attempt's padding: a slot stays 40 bytes
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
type run struct {
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
	mu    sync.Mutex
	res   *Result
	indeg []int32
	// ready holds the nodes that may start, one queue per class; running
	// counts the attempts in flight per class (inflight is their sum);
	// unreleased counts per class the nodes never queued yet (waiting for
	// dependencies).
	ready      [nClasses]readyq.Queue
	running    [nClasses]int
	unreleased [nClasses]int
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
	gs         gateState
	events     []Event
	kick       bool
	// Coalescing of node output (output.go): out is allocated on the
	// first chunk; epoch counts takes of events.
	out       []outState
	coalesced []int32
	epoch     uint32
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
		res:       &Result{RunID: id, Nodes: make([]NodeResult, n), g: g},
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
		r.policy = r.store.opts.Commit
		r.commitWake = make(chan struct{}, 1)
		r.commitDone = make(chan struct{})
	}
	prio := make([]int, n)
	for i := range n {
		nd := g.At(i)
		prio[i] = nd.Priority
		r.unreleased[nd.Class]++
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
		sl.class = nd.Class
	}
	for c := range r.ready {
		r.ready[c] = *readyq.New(prio, r.unreleased[c])
	}
	return r
}

// prepare restores a resumed run from the checkpoint store and queues the
// nodes that can start.
func (r *run) prepare() error {
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
		if err := r.restore(); err != nil {
			return err
		}
	}
	var roots []int32
	for i := range r.indeg {
		if r.indeg[i] == 0 && r.res.Nodes[i].Status == Pending {
			roots = append(roots, int32(i))
			r.unreleased[r.slots[i].class]--
		}
	}
	// By class, then in queue order: each class's roots are one sorted run.
	slices.SortFunc(roots, func(a, b int32) int {
		if ca, cb := r.slots[a].class, r.slots[b].class; ca != cb {
			return int(ca) - int(cb)
		}
		if r.ready[0].Less(a, b) {
			return -1
		}
		return 1
	})
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
// in-degrees lowered) and the State keys they changed are written back.
func (r *run) restore() error {
	rest, err := r.store.begin(beginArgs{id: r.id, g: r.g, durable: r.durable != nil, resume: r.resume,
		inputs: r.inputs, ignoreInputs: r.ignoreInputs, now: time.Now()})
	if err != nil || rest == nil {
		return err
	}
	if len(rest.accepted) > 0 {
		r.e.logger.Warn("executor: resuming with changed inputs (RunOptions.IgnoreInputs)", "run", r.id,
			"changed", (&InputsChangedError{RunID: r.id, Changed: rest.accepted}).changes())
	}
	for _, k := range rest.deleted {
		if err := panicerr.Call("State.Delete", func() error { return r.state.Delete(k) }); err != nil {
			return fmt.Errorf("executor: resume run %q: restore deletion of %q: %w", r.id, k, err)
		}
	}
	keys := make([]string, 0, len(rest.state))
	for k := range rest.state {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := panicerr.Call("State.Put", func() error { return r.state.Put(k, rest.state[k]) }); err != nil {
			return fmt.Errorf("executor: resume run %q: restore key %q: %w", r.id, k, err)
		}
	}
	for id, d := range rest.done {
		i, _ := r.g.IndexOf(id)
		nr := &r.res.Nodes[i]
		nr.Status, nr.Restored, nr.Checkpointed = Succeeded, true, true
		nr.Attempts, nr.End = d.Attempts, d.End
		r.remaining--
		r.unreleased[r.slots[i].class]--
		for _, c := range r.g.Dependents(i) {
			r.indeg[c]--
		}
	}
	return nil
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
		var reason, fault error
		if r.gate != nil {
			if r.checker == nil {
				r.waitPlainGate()
			} else {
				reason, fault = r.check()
			}
		}
		now := time.Now()
		r.mu.Lock()
		if fault != nil {
			r.gateFailed(fault)
		}
		r.dispatch(now, reason, false)
		finished := r.inflight == 0 && !r.gs.waiting() && len(r.pending) == 0 && !r.committing &&
			(r.remaining == 0 || r.stopping || (r.readyLen() == 0 && r.retries == 0))
		commitKick := len(r.pending) > 0
		startGate := r.gs.blocked() && !r.stopping && !finished
		if startGate {
			gateStart = now
			r.emit(Event{Kind: Paused, Time: now, Err: r.gs.beginWait()})
		}
		next := r.nextTimer()
		evs := r.takeEvents(spare)
		r.kick = false
		r.mu.Unlock()
		r.deliver(evs)
		clear(evs) // let delivered chunks' Text go
		spare = evs
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
			go func() { gateDone <- r.waitGate(gctx) }()
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
	evs := r.takeEvents(nil)
	r.mu.Unlock()
	r.deliver(evs)
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
