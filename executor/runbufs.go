package executor

import (
	"cmp"
	"slices"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/internal/readyq"
)

// runBufs is the per-node scheduling state of a run: slot bookkeeping,
// in-degrees, ready queues, timers and event queues. An Executor keeps the
// run objects of finished runs, with their buffers, in a pool, so that
// running a graph again allocates nothing per node: what depends only on
// the graph (priorities, classes, roots, the nodes' timeouts and retry
// policies) is computed when the buffers first run that graph, the rest is
// reset.
//
// A run whose node goroutines may outlive it (an abandoned node) does not
// go back to the pool. Goroutines of an earlier run that merely kept a
// node's context (Emit from a goroutine the node left behind) reach the
// run through its runRef: they lock run.mu to see that the run ended, and
// otherwise only load a slot's token atomically, which carries the
// buffers' generation and so cannot match an attempt of a later run.
type runBufs struct {
	// Computed for graph filledFor (and the executor's defaults).
	filledFor *dag.Graph
	prio      []int
	// queuePrio is prio for the ready queues: nil when every node has
	// the same priority (readyq.Uniform).
	queuePrio   []int
	indeg0      []int32
	unreleased0 [nClasses]int     // nodes per class
	roots       [nClasses][]int32 // the roots of each class, in queue order

	// gen counts the runs the buffers served; a slot token carries it.
	gen uint32
	// Reset for every run; guarded by run.mu while a run uses them (but
	// for slots' tokens, see slot, and spare, the coordinator's).
	slots []slot
	indeg []int32
	// ready holds the nodes that may start, one queue per class.
	ready   [nClasses]readyq.Queue
	rootBuf []int32
	timers  timerHeap
	// events queue for the observers; spare is the coordinator's other
	// buffer; out (allocated on the first chunk) and coalesced are the
	// coalescing of node output (output.go).
	events    []Event
	spare     []Event
	out       []outState
	coalesced []int32
	// pending are the completions of succeeded nodes waiting to be
	// committed (pendingIdx their nodes); their dependents are released
	// once the commit is durable.
	pending    []completionRecord
	pendingIdx []int32
	wake       chan struct{} // capacity 1: the coordinator has work
	// refs are runRefs not handed out yet, allocated refChunk at a time
	// (one allocation for several runs): each serves one run only and is
	// never reused, so a node context a run left behind keeps its own.
	// The chunk keeps the used ones (their parent contexts and graphs)
	// reachable until its last is handed out.
	refs []runRef
	// nctxs are node contexts not handed out yet, for graphs of up to
	// smallGraph nodes, allocated nctxChunk at a time on the same terms.
	nctxs []nodeCtx
	// For a graph with branch nodes (else nil): their choices, and the
	// incoming edges taken per node.
	choices []choice
	taken   []int32
	// With a Tracer (else nil): per node, Result.Paused when it last
	// became ready, so that NodeTrace.Paused is the gate's pauses since.
	readyPaused []time.Duration
}

// reset readies b for a run of g.
func (b *runBufs) reset(g *dag.Graph, opts *Options) {
	if b.filledFor != g {
		b.fill(g, opts)
	}
	b.gen++
	for i := range b.slots {
		b.slots[i].attempt = 0
	}
	b.indeg = append(b.indeg[:0], b.indeg0...)
	if opts.Tracer != nil {
		b.readyPaused = slices.Grow(b.readyPaused[:0], len(b.slots))[:len(b.slots)]
		clear(b.readyPaused)
	}
	if b.taken != nil {
		clear(b.taken)
		for i := range b.choices {
			b.choices[i] = choice{ids: b.choices[i].ids[:0]}
		}
	}
	for c := range b.ready {
		b.ready[c].Reset(b.queuePrio, b.unreleased0[c])
	}
	if b.out != nil && len(b.out) != g.Len() {
		b.out = nil
	}
	if len(b.wake) > 0 {
		// A signal left by the last run. Only the run's coordinator
		// receives, so the receive cannot block.
		<-b.wake
	}
}

// clear drops what the last run left in b (events, completions), keeping
// the storage.
func (b *runBufs) clear() {
	clear(b.events)
	clear(b.spare)
	clear(b.pending)
	b.events, b.spare, b.pending = b.events[:0], b.spare[:0], b.pending[:0]
	b.timers, b.coalesced, b.pendingIdx = b.timers[:0], b.coalesced[:0], b.pendingIdx[:0]
	for i := range b.out {
		b.out[i] = outState{}
	}
}

// fill computes what depends only on g and the executor's defaults.
func (b *runBufs) fill(g *dag.Graph, opts *Options) {
	n := g.Len()
	b.filledFor = g
	b.prio = slices.Grow(b.prio[:0], n)[:n]
	b.indeg0 = slices.Grow(b.indeg0[:0], n)[:n]
	b.slots = slices.Grow(b.slots[:0], n)[:n]
	b.unreleased0 = [nClasses]int{}
	b.choices, b.taken = b.choices[:0], b.taken[:0]
	branches := false
	for i := range n {
		nd := g.At(i)
		b.prio[i] = nd.Priority
		b.indeg0[i] = int32(len(g.Dependencies(i)))
		b.unreleased0[nd.Class]++
		sl := &b.slots[i]
		sl.class = nd.Class
		sl.timeout = nd.Timeout
		if sl.timeout == 0 {
			sl.timeout = opts.NodeTimeout
		}
		sl.retry = nd.Retry
		if sl.retry == nil {
			sl.retry = opts.Retry
		}
		branches = branches || nd.Branch
	}
	if branches {
		b.choices = slices.Grow(b.choices, n)[:n]
		b.taken = slices.Grow(b.taken, n)[:n]
	} else {
		b.choices, b.taken = nil, nil
	}
	b.queuePrio = readyq.Uniform(b.prio)
	for c := range b.roots {
		b.roots[c] = b.roots[c][:0]
	}
	b.rootBuf = sortRoots(b.rootBuf[:0], b.indeg0, nil, b.slots, b.prio)
	for _, i := range b.rootBuf {
		c := b.slots[i].class
		b.roots[c] = append(b.roots[c], i)
	}
}

// sortRoots appends to dst the nodes with no dependency left (indeg 0) and
// no final status yet (done nil or done[i] false), sorted by class and then
// in queue order (priority, then graph order).
func sortRoots(dst []int32, indeg []int32, done func(int) bool, slots []slot, prio []int) []int32 {
	for i := range indeg {
		if indeg[i] == 0 && (done == nil || !done(i)) {
			dst = append(dst, int32(i))
		}
	}
	slices.SortFunc(dst, func(a, c int32) int {
		if ca, cc := slots[a].class, slots[c].class; ca != cc {
			return int(ca) - int(cc)
		}
		if prio[a] != prio[c] {
			return cmp.Compare(prio[c], prio[a])
		}
		return cmp.Compare(a, c)
	})
	return dst
}
