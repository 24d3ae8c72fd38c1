package executor

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/internal/hostlimits"
	"github.com/cemaf-go/cemaf/internal/panicerr"
)

// FailurePolicy decides what a run does when a node fails.
type FailurePolicy uint8

const (
	// FailFast cancels the nodes in flight and skips every node not yet
	// started. It is the default.
	FailFast FailurePolicy = iota
	// Continue skips only the failed node's descendants; independent
	// branches run to completion.
	Continue
)

// String returns "fail_fast" or "continue".
func (p FailurePolicy) String() string {
	switch p {
	case FailFast:
		return "fail_fast"
	case Continue:
		return "continue"
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// DefaultAbandonAfter is the default grace period a node gets to return
// after its context ends (timeout or cancellation) before it is abandoned.
const DefaultAbandonAfter = time.Second

// Limits bound how many nodes of each class (dag.Class) a run executes at
// once. The classes are bounded independently: a full CPU class does not
// hold back a ready IO node, nor the reverse.
type Limits struct {
	// CPU bounds nodes of class dag.CPU, work that computes on this device.
	// The host-derived default is max(2, cores − 2) (2 on a Raspberry Pi
	// 4), cores being runtime.GOMAXPROCS(0), which honours CPU affinity and
	// the cgroup CPU quota.
	CPU int
	// IO bounds nodes of class dag.IO, work that waits on something else (an
	// LLM or HTTP call, a remote node, disk). The host-derived default is
	// cores × 64, at least 64, clamped to half the open-files limit (256
	// on a Raspberry Pi 4 with 1024 open files).
	IO int
}

// Options configures an Executor. The zero value is valid: host-derived
// concurrency limits, no timeouts, no retries, fail-fast, no gate.
type Options struct {
	// Limits bound the nodes running at once, per class. A zero field means
	// the host-derived default (see Limits).
	Limits Limits
	// NodeTimeout bounds each attempt of nodes that set no Timeout of their
	// own. 0 means no timeout.
	NodeTimeout time.Duration
	// AbandonAfter is how long a node may keep running after its context
	// ended (its timeout, or the run stopping) before the executor stops
	// waiting for it, reports it, and leaves its goroutine behind
	// (Result.Abandoned). 0 means DefaultAbandonAfter.
	AbandonAfter time.Duration
	// Retry is the retry policy of nodes that set none. nil means no retry.
	Retry *dag.RetryPolicy
	// FailurePolicy is FailFast (the default) or Continue.
	FailurePolicy FailurePolicy
	// Gate, if set, is consulted before every node starts; while it blocks
	// no new node starts. If it also implements Checker, the executor waits
	// for it without blocking its own bookkeeping and reports each pause
	// with its reason; otherwise Wait is called inline.
	Gate Gate
	// InterNodeDelay is the minimum time between two node starts of a run.
	InterNodeDelay time.Duration
	// Observers receive the events of every run.
	Observers []Observer
	// Logger receives the executor's own diagnostics (a panicking
	// observer). nil discards them. Use NewLogObserver to log events.
	Logger *slog.Logger
	// Tracer, if set, wraps each run and each node attempt (spans, timing);
	// see Tracer.
	Tracer Tracer
	// Checkpoints, if set, records every completed node durably, with the
	// State keys it changed, and lets a run interrupted by a crash or power
	// loss resume: run the same graph with the same RunOptions.ID. A node's
	// dependents start only after its completion is durable. The store is
	// not closed by the executor.
	Checkpoints *CheckpointStore
}

// Executor runs graphs. It is safe for concurrent use: several graphs may run
// at once, each with its own goroutines and state. Its run-time knobs
// (SetLimits, SetInterNodeDelay) apply to every run in progress from the
// next node they start.
type Executor struct {
	opts   Options
	logger *slog.Logger

	limits atomic.Uint64 // CPU limit in the low 32 bits, IO in the high ones
	delay  atomic.Int64  // time.Duration

	// mu serialises knob changes, which close and replace changed.
	mu      sync.Mutex
	changed atomic.Pointer[chan struct{}]

	// runs pools the state of finished runs (*run, see runBufs).
	runs sync.Pool
	// idBatch holds the run IDs of the latest second a run started in
	// (newRunID).
	idBatch atomic.Pointer[runIDBatch]
}

// New returns an Executor. It fails, naming the field, when an option is out
// of range.
func New(opts Options) (*Executor, error) {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, fmt.Errorf("executor: Options.%s = %v: %s", field, v, want))
	}
	if opts.Limits.CPU < 0 {
		bad("Limits.CPU", opts.Limits.CPU, "must be ≥ 0 (0 = host-derived)")
	}
	if opts.Limits.IO < 0 {
		bad("Limits.IO", opts.Limits.IO, "must be ≥ 0 (0 = host-derived)")
	}
	if opts.NodeTimeout < 0 {
		bad("NodeTimeout", opts.NodeTimeout, "must be ≥ 0 (0 = no timeout)")
	}
	if opts.AbandonAfter < 0 {
		bad("AbandonAfter", opts.AbandonAfter, "must be ≥ 0 (0 = 1s)")
	}
	if opts.InterNodeDelay < 0 {
		bad("InterNodeDelay", opts.InterNodeDelay, "must be ≥ 0")
	}
	if opts.FailurePolicy > Continue {
		bad("FailurePolicy", opts.FailurePolicy, "must be FailFast or Continue")
	}
	if opts.Retry != nil {
		if err := opts.Retry.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("executor: Options.%w", err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if opts.Limits.CPU == 0 || opts.Limits.IO == 0 {
		host := hostlimits.Detect()
		opts.Limits.CPU = cmp.Or(opts.Limits.CPU, host.CPU)
		opts.Limits.IO = cmp.Or(opts.Limits.IO, host.IO)
	}
	if opts.AbandonAfter == 0 {
		opts.AbandonAfter = DefaultAbandonAfter
	}
	e := &Executor{opts: opts, logger: opts.Logger}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	e.limits.Store(packLimits(opts.Limits))
	e.delay.Store(int64(opts.InterNodeDelay))
	ch := make(chan struct{})
	e.changed.Store(&ch)
	return e, nil
}

// Limits returns the current per-class bounds on concurrently running
// nodes.
func (e *Executor) Limits() Limits {
	c := e.classLimits()
	return Limits{CPU: c[dag.CPU], IO: c[dag.IO]}
}

// SetLimits changes the per-class bounds on concurrently running nodes, for
// runs in progress too: from the next node they start. Values below 1 mean
// 1. Nodes already running are not interrupted when a bound drops.
func (e *Executor) SetLimits(l Limits) {
	e.limits.Store(packLimits(l))
	e.notify()
}

// maxLimit is the largest bound Limits keeps (values above mean it).
const maxLimit = 1<<31 - 1

func packLimits(l Limits) uint64 {
	clamp := func(v int) uint64 { return uint64(min(max(v, 1), maxLimit)) }
	return clamp(l.CPU) | clamp(l.IO)<<32
}

// classLimits returns the bounds indexed by class, from one atomic load.
func (e *Executor) classLimits() [nClasses]int {
	v := e.limits.Load()
	return [nClasses]int{dag.CPU: int(v & maxLimit), dag.IO: int(v >> 32)}
}

// InterNodeDelay returns the current minimum time between node starts.
func (e *Executor) InterNodeDelay() time.Duration { return time.Duration(e.delay.Load()) }

// SetInterNodeDelay changes the minimum time between two node starts of a
// run, for runs in progress too. Negative values mean 0.
func (e *Executor) SetInterNodeDelay(d time.Duration) {
	e.delay.Store(int64(max(d, 0)))
	e.notify()
}

// notify wakes the schedulers of runs in progress so they apply new knobs.
func (e *Executor) notify() {
	e.mu.Lock()
	old := e.changed.Load()
	ch := make(chan struct{})
	e.changed.Store(&ch)
	e.mu.Unlock()
	close(*old)
}

// RunOptions are the per-run settings of RunWith.
type RunOptions struct {
	// ID names the run. Empty means a new, time-ordered unique ID. With a
	// checkpoint store, the ID of an unfinished run resumes it: completed
	// nodes are skipped and the State they produced is restored. An ID the
	// store does not know starts a new run, unless Resume is set.
	ID string
	// Resume requires ID to name a run in the checkpoint store: RunWith
	// fails with an error matching ErrRunNotFound (naming the ID and the
	// file) instead of starting a new run. It needs Options.Checkpoints
	// and a non-empty ID.
	Resume bool
	// Inputs are what the run's results depend on besides the graph: the
	// question, a fingerprint of the corpus's content (not its path), every
	// knob that changes results ("chunk_size" → "900"). Names must be
	// non-empty and values at most MaxInputBytes; the caller computes
	// fingerprints (hash the content of large inputs). Without
	// Options.Checkpoints they are not used.
	//
	// A new run records them in the checkpoint store (RunRecord.Inputs).
	// Resuming the run compares the inputs given now with the recorded
	// ones, exactly: a changed value, an input given now but not recorded,
	// or one recorded but not given now (including a resume that gives no
	// Inputs at all) fails with an *InputsChangedError naming each
	// difference, before anything runs or is restored; the run stays as it
	// was and can still be resumed with its recorded inputs. A run recorded
	// without inputs (an older checkpoint file, or a caller that gave none)
	// resumes only without inputs. To honour changed inputs, start a new
	// run (another ID), or set IgnoreInputs.
	Inputs map[string]string
	// IgnoreInputs resumes even when Inputs differ from the recorded ones:
	// the caller asserts that the differences do not affect the nodes
	// already completed (their results are kept). The given Inputs then
	// replace the recorded ones, and the differences are appended to
	// RunRecord.AcceptedChanges and logged at Warn. With IgnoreInputs and
	// no Inputs, the recorded inputs are kept unchecked.
	IgnoreInputs bool
	// Observers receive this run's events in addition to the executor's.
	Observers []Observer
	// Answers are answers to nodes waiting for input (see Interrupt), by
	// node ID; the node reads its answer with InputFrom. With a checkpoint
	// store, each must name a node the resumed run recorded as waiting
	// (RunRecord.Questions), else RunWith fails naming it; the answers are
	// recorded with the run, so a resume after a crash still has them.
	// Without a store they are given to the nodes as they are. Values are
	// at most MaxInputBytes.
	Answers map[string]string
	// Reuse, if set, is a Result of an earlier run that the caller no
	// longer uses (nor any NodeResult pointer into it): RunWith resets it
	// and returns it instead of allocating a new one, so that running a
	// graph again allocates nothing per node for its result.
	Reuse *Result
}

// Run runs g over s with a new run ID; see RunWith.
func (e *Executor) Run(ctx context.Context, g *dag.Graph, s dag.State) (*Result, error) {
	return e.RunWith(ctx, g, s, RunOptions{})
}

// RunWith runs g over s and returns when every node has finished, been
// skipped or been abandoned, or promptly after ctx ends.
//
// With Options.Checkpoints, a run whose ID the store knows as unfinished is
// resumed: its completed nodes are not run again (their NodeResult has
// Restored set) and the State keys they changed are restored into s before
// anything starts. Each node runs at least once; NodeInfo.IdempotencyKey
// lets node code make side effects exactly-once. Resuming with a changed
// graph fails with a *GraphChangedError; with changed inputs
// (RunOptions.Inputs) with an *InputsChangedError; resuming a run that succeeded fails
// with ErrRunFinished; with RunOptions.Resume, an ID the store does not know
// fails with ErrRunNotFound.
//
// Each node starts once all its dependencies have finished (succeeded, or
// failed while optional), within the limit of its class (Limits): among the
// ready nodes whose class has a free slot, the highest priority starts
// first, then graph order. The Result is always returned, with the outcome
// of every node. The error is nil when every non-optional node succeeded;
// otherwise it is the *NodeError of the failure (errors.Join of all of them
// under the Continue policy), or, when ctx ended, an error wrapping
// context.Cause(ctx).
//
// No goroutine started by RunWith outlives it, except the goroutines of nodes
// that ignored their context past AbandonAfter (counted in
// Result.Abandoned).
func (e *Executor) RunWith(ctx context.Context, g *dag.Graph, s dag.State, ro RunOptions) (*Result, error) {
	if g == nil {
		return nil, errors.New("executor: nil graph")
	}
	if s == nil {
		return nil, errors.New("executor: nil state")
	}
	if ro.Resume && ro.ID == "" {
		return nil, errors.New("executor: RunOptions.Resume needs RunOptions.ID: the run to resume")
	}
	if err := validateInputs(ro.Inputs); err != nil {
		return nil, err
	}
	if ro.Resume && e.opts.Checkpoints == nil {
		return nil, fmt.Errorf("executor: resume run %q: RunOptions.Resume needs Options.Checkpoints (no checkpoint store to resume from)", ro.ID)
	}
	start := time.Now()
	id := ro.ID
	if id == "" {
		id = e.newRunID(start)
	}
	observers := e.opts.Observers
	if len(ro.Observers) > 0 {
		observers = append(append([]Observer(nil), e.opts.Observers...), ro.Observers...)
	}
	var endRun func(RunOutcome)
	if tr := e.opts.Tracer; tr != nil {
		var tctx context.Context
		err := panicerr.Call("Tracer.TraceRun", func() error {
			tctx, endRun = tr.TraceRun(ctx, RunTrace{RunID: id, Nodes: g.Len(), Resume: ro.Resume})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("executor: run %s: %w", id, err)
		}
		if tctx != nil {
			ctx = tctx
		}
	}
	return e.run(ctx, g, s, ro, id, observers, endRun, start)
}

// run is RunWith once its arguments are checked. It is a function of its
// own so that its two defers are open-coded (few returns), which saves
// their cost on every run.
func (e *Executor) run(ctx context.Context, g *dag.Graph, s dag.State, ro RunOptions, id string, observers []Observer,
	endRun func(RunOutcome), start time.Time) (*Result, error) {
	r := newRun(ctx, e, g, s, id, observers, ro.Reuse, start)
	defer r.releaseBufs()
	r.resume = ro.Resume
	r.inputs, r.ignoreInputs = ro.Inputs, ro.IgnoreInputs
	r.answers, r.ref.answers = ro.Answers, ro.Answers
	if err := r.validateAnswers(ro.Answers); err != nil {
		return r.res, err
	}
	r.res.Start = start
	if err := r.prepare(); err != nil {
		r.res.End = r.now()
		if endRun != nil {
			endTrace(r, endRun, r.outcome("failed", err))
		}
		return r.res, err
	}
	r.notify(Event{Kind: RunStarted, Time: r.res.Start})
	if r.res.End = r.loop(ctx, start); r.res.End.IsZero() {
		r.res.End = r.now()
	}
	err := r.err(ctx)
	if r.store != nil {
		if ferr := r.store.finish(id, r.runStatus(err), err, r.res.Questions, r.res.End); ferr != nil {
			err = errors.Join(err, fmt.Errorf("executor: checkpoint run %s: record its end: %w", id, ferr))
		}
	}
	r.notify(Event{Kind: RunFinished, Time: r.res.End, Duration: r.res.End.Sub(r.res.Start), Err: err, RunStatus: r.runStatus(err)})
	if endRun != nil {
		endTrace(r, endRun, r.outcome(r.runStatus(err), err))
	}
	return r.res, err
}

// outcome is the RunOutcome of the run, for the Tracer.
func (r *run) outcome(status string, err error) RunOutcome {
	return RunOutcome{Status: status, Err: err, Start: r.res.Start, End: r.res.End, Pauses: r.res.Pauses, Paused: r.res.Paused,
		Restored: r.res.countRestored(), Abandoned: r.res.Abandoned}
}

// NewRunID returns a unique run ID that sorts by its start time, such as
// "20261122T142530Z-3f9a1c0b": the UTC time in seconds and 32 random bits
// (from math/rand/v2's generator, which the runtime seeds from the system's
// entropy). Cost: one allocation, no system call.
func NewRunID(now time.Time) string {
	s := runIDSecondOf(now)
	return s.id()
}

// runIDSecond is the time part of the run IDs of one second.
type runIDSecond struct {
	prefix [len("20060102T150405Z-")]byte
}

// runIDLen is the length of a run ID.
const runIDLen = len("20060102T150405Z-") + 8

func runIDSecondOf(now time.Time) runIDSecond {
	now = now.UTC()
	var s runIDSecond
	y, mo, d := now.Date()
	h, mi, sec := now.Clock()
	b := strconv.AppendInt(s.prefix[:0], int64(y), 10)
	for _, v := range [...]int{int(mo), d, -1, h, mi, sec} {
		if v < 0 {
			b = append(b, 'T')
			continue
		}
		b = append(b, byte('0'+v/10), byte('0'+v%10))
	}
	_ = append(b, 'Z', '-')
	return s
}

// appendID appends a run ID of this second, with fresh random bits.
func (s *runIDSecond) appendID(b []byte) []byte {
	var r [4]byte
	binary.LittleEndian.PutUint32(r[:], rand.Uint32())
	return hex.AppendEncode(append(b, s.prefix[:]...), r[:])
}

// id returns a run ID of this second, with fresh random bits.
func (s *runIDSecond) id() string {
	var buf [runIDLen]byte
	return string(s.appendID(buf[:0]))
}

// runIDBatch is idBatch run IDs of one second, made at once in one string:
// the IDs the executor hands out are substrings of it (newRunID), one
// allocation for idBatch runs. A kept ID keeps the batch's string
// reachable (idBatch × 25 bytes).
type runIDBatch struct {
	unix int64
	ids  string
	next atomic.Int32 // the index of the next ID to hand out
}

// idBatch is how many run IDs a runIDBatch holds.
const idBatch = 8

// newRunID is NewRunID, the IDs of a second made idBatch at a time (the
// calendar conversion and the allocation are shared). Concurrent runs
// that find the batch used up may each make one; the IDs stay distinct
// in their random bits, as NewRunID's do.
func (e *Executor) newRunID(now time.Time) string {
	unix := now.Unix()
	if b := e.idBatch.Load(); b != nil && b.unix == unix {
		if k := int(b.next.Add(1)) - 1; k < idBatch {
			return b.ids[k*runIDLen : (k+1)*runIDLen]
		}
	}
	s := runIDSecondOf(now)
	var buf [idBatch * runIDLen]byte
	out := buf[:0]
	for range idBatch {
		out = s.appendID(out)
	}
	b := &runIDBatch{unix: unix, ids: string(out)}
	b.next.Store(1)
	e.idBatch.Store(b)
	return b.ids[:runIDLen]
}
