package executor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

func noop(context.Context, dag.State) error { return nil }

func mustGraph(t testing.TB, nodes ...dag.Node) *dag.Graph {
	t.Helper()
	g, err := dag.New(nodes...)
	require.NoError(t, err)
	return g
}

func mustExec(t testing.TB, opts executor.Options) *executor.Executor {
	t.Helper()
	e, err := executor.New(opts)
	require.NoError(t, err)
	return e
}

// recorder collects events; safe for concurrent runs.
type recorder struct {
	mu     sync.Mutex
	events []executor.Event
}

func (r *recorder) OnEvent(ev executor.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) kinds(node string) []executor.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []executor.EventKind
	for _, ev := range r.events {
		if ev.Node == node {
			out = append(out, ev.Kind)
		}
	}
	return out
}

func (r *recorder) ofKind(k executor.EventKind) []executor.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []executor.Event
	for _, ev := range r.events {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

func TestRunPassesDataThroughState(t *testing.T) {
	put := func(key, val string, deps ...string) dag.Node {
		return dag.Node{ID: key, DependsOn: deps, Run: func(_ context.Context, s dag.State) error {
			in := ""
			for _, d := range deps {
				v, err := s.Get(d)
				if err != nil {
					return err
				}
				in += string(v)
			}
			return s.Put(key, []byte(in+val))
		}}
	}
	g := mustGraph(t, put("a", "A"), put("b", "B", "a"), put("c", "C", "a"), put("d", "D", "b", "c"))
	rec := &recorder{}
	e := mustExec(t, executor.Options{Limits: executor.Limits{CPU: 2}, Observers: []executor.Observer{rec}})
	s := dag.NewMemoryState()
	res, err := e.Run(context.Background(), g, s)
	require.NoError(t, err)
	v, err := s.Get("d")
	require.NoError(t, err)
	assert.Equal(t, "ABACD", string(v))
	for _, nr := range res.Nodes {
		assert.Equal(t, executor.Succeeded, nr.Status, nr.ID)
		assert.Equal(t, 1, nr.Attempts)
		assert.False(t, nr.Start.IsZero() || nr.End.Before(nr.Start))
	}
	assert.Equal(t, 4, res.Count(executor.Succeeded))
	assert.Equal(t, []executor.EventKind{executor.NodeStarted, executor.NodeSucceeded}, rec.kinds("d"))
	assert.Len(t, rec.ofKind(executor.RunStarted), 1)
	require.Len(t, rec.ofKind(executor.RunFinished), 1)
	assert.NoError(t, rec.ofKind(executor.RunFinished)[0].Err)
	assert.NotEmpty(t, res.RunID)
}

// TestRandomDAGProperties checks, over random DAGs and parallelism bounds,
// that no node starts before its dependencies finished, that concurrency
// never exceeds the CPU limit, and that every node runs exactly once.
func TestRandomDAGProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for trial := range 40 {
		n := 1 + r.IntN(120)
		maxPar := 1 + r.IntN(6)
		var running, peak atomic.Int64
		finished := make([]atomic.Bool, n)
		runs := make([]atomic.Int64, n)
		var violations atomic.Int64
		nodes := make([]dag.Node, n)
		for i := range nodes {
			var deps []int
			for d := range i {
				if r.IntN(i+1) < 3 && d != i {
					deps = append(deps, d)
				}
			}
			ids := make([]string, len(deps))
			for k, d := range deps {
				ids[k] = strconv.Itoa(d)
			}
			nodes[i] = dag.Node{ID: strconv.Itoa(i), DependsOn: ids, Priority: r.IntN(3), Run: func(context.Context, dag.State) error {
				cur := running.Add(1)
				for {
					p := peak.Load()
					if cur <= p || peak.CompareAndSwap(p, cur) {
						break
					}
				}
				for _, d := range deps {
					if !finished[d].Load() {
						violations.Add(1)
					}
				}
				runs[i].Add(1)
				if i%5 == 0 {
					for range 100 { // give other nodes a chance to overlap
						_ = fmt.Sprint(i)
					}
				}
				finished[i].Store(true)
				running.Add(-1)
				return nil
			}}
		}
		g := mustGraph(t, nodes...)
		e := mustExec(t, executor.Options{Limits: executor.Limits{CPU: maxPar}})
		res, err := e.Run(context.Background(), g, dag.NewMemoryState())
		require.NoError(t, err, "trial %d", trial)
		assert.Zero(t, violations.Load(), "trial %d: a node started before a dependency finished", trial)
		assert.LessOrEqual(t, peak.Load(), int64(maxPar), "trial %d: concurrency above Limits.CPU", trial)
		for i := range runs {
			assert.EqualValues(t, 1, runs[i].Load(), "trial %d node %d", trial, i)
		}
		assert.Equal(t, n, res.Count(executor.Succeeded))
	}
}

func TestPeakConcurrencyReachesLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var running, peak atomic.Int64
		var nodes []dag.Node
		for i := range 20 {
			nodes = append(nodes, dag.Node{ID: strconv.Itoa(i), Run: func(ctx context.Context, _ dag.State) error {
				cur := running.Add(1)
				peak.Store(max(peak.Load(), cur))
				time.Sleep(time.Second)
				running.Add(-1)
				return nil
			}})
		}
		e := mustExec(t, executor.Options{Limits: executor.Limits{CPU: 4}})
		start := time.Now()
		_, err := e.Run(context.Background(), mustGraph(t, nodes...), dag.NewMemoryState())
		require.NoError(t, err)
		assert.EqualValues(t, 4, peak.Load())
		assert.Equal(t, 5*time.Second, time.Since(start), "20 one-second nodes, 4 at a time")
	})
}

// The run's End is its last node's end when every node ended on its own,
// under a context that cannot be cancelled and one that can (the nodes then
// run off the caller's goroutine); it is when the run stopped waiting when
// a node is abandoned.
func TestRunEnd(t *testing.T) {
	sleep := func(d time.Duration) func(context.Context, dag.State) error {
		return func(context.Context, dag.State) error { time.Sleep(d); return nil }
	}
	g := mustGraph(t, dag.Node{ID: "a", Run: sleep(time.Second)}, dag.Node{ID: "b", Run: sleep(2 * time.Second)},
		dag.Node{ID: "c", DependsOn: []string{"a"}, Run: sleep(500 * time.Millisecond)})
	for _, cancellable := range []bool{false, true} {
		t.Run("cancellable="+strconv.FormatBool(cancellable), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				if cancellable {
					var cancel context.CancelFunc
					ctx, cancel = context.WithCancel(ctx)
					defer cancel()
				}
				e := mustExec(t, executor.Options{Limits: executor.Limits{CPU: 2}})
				res, err := e.Run(ctx, g, dag.NewMemoryState())
				require.NoError(t, err)
				assert.Equal(t, 2*time.Second, res.End.Sub(res.Start))
				nb, _ := res.Node("b")
				assert.True(t, res.End.Equal(nb.End), "the run ends with its last node")
			})
		})
	}
	t.Run("abandoned", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			release := make(chan struct{})
			stubborn := mustGraph(t, dag.Node{ID: "s", Timeout: time.Second, Run: func(context.Context, dag.State) error {
				<-release
				return nil
			}})
			e := mustExec(t, executor.Options{AbandonAfter: 3 * time.Second})
			res, err := e.Run(context.Background(), stubborn, dag.NewMemoryState())
			require.Error(t, err)
			assert.Equal(t, 1, res.Abandoned)
			assert.Equal(t, 4*time.Second, res.End.Sub(res.Start), "the timeout, then AbandonAfter")
			close(release)
		})
	})
}

func TestTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		g := mustGraph(t,
			dag.Node{ID: "polite", Timeout: time.Second, Run: func(ctx context.Context, _ dag.State) error {
				<-ctx.Done()
				return ctx.Err()
			}},
			dag.Node{ID: "stubborn", Timeout: 2 * time.Second, Run: func(context.Context, dag.State) error {
				<-release // ignores its context
				return nil
			}},
			dag.Node{ID: "default-timeout", Run: func(ctx context.Context, _ dag.State) error {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Hour):
					return nil
				}
			}},
			dag.Node{ID: "independent", Timeout: time.Minute, Run: func(context.Context, dag.State) error { time.Sleep(10 * time.Second); return nil }},
		)
		e := mustExec(t, executor.Options{FailurePolicy: executor.Continue, NodeTimeout: 3 * time.Second, AbandonAfter: 500 * time.Millisecond, Limits: executor.Limits{CPU: 4}})
		start := time.Now()
		res, err := e.Run(context.Background(), g, dag.NewMemoryState())
		require.Error(t, err)
		assert.Equal(t, 10*time.Second, time.Since(start), "the run goes on past the timeouts")

		polite, _ := res.Node("polite")
		assert.Equal(t, executor.TimedOut, polite.Status)
		assert.ErrorIs(t, polite.Err, executor.ErrTimeout)
		assert.ErrorIs(t, polite.Err, context.DeadlineExceeded)
		assert.False(t, polite.Abandoned)
		assert.Equal(t, time.Second, polite.Duration())

		stubborn, _ := res.Node("stubborn")
		assert.Equal(t, executor.TimedOut, stubborn.Status)
		assert.True(t, stubborn.Abandoned)
		assert.Equal(t, 2500*time.Millisecond, stubborn.Duration(), "timeout plus AbandonAfter")
		var te *executor.TimeoutError
		require.ErrorAs(t, stubborn.Err, &te)
		assert.True(t, te.Abandoned)
		assert.Equal(t, 1, res.Abandoned)

		def, _ := res.Node("default-timeout")
		assert.Equal(t, executor.TimedOut, def.Status)
		assert.Equal(t, 3*time.Second, def.Duration())

		ind, _ := res.Node("independent")
		assert.Equal(t, executor.Succeeded, ind.Status)
		close(release) // let the abandoned goroutine finish before the bubble ends
	})
}

func TestRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		var attemptStarts []time.Duration
		start := time.Now()
		flaky := dag.Node{ID: "flaky", Retry: &dag.RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Second, Multiplier: 2, Jitter: -1},
			Run: func(ctx context.Context, _ dag.State) error {
				attemptStarts = append(attemptStarts, time.Since(start))
				info, ok := executor.NodeInfoFrom(ctx)
				if !ok || info.Attempt != int(calls.Add(1)) {
					return dag.Permanent(errors.New("bad node info"))
				}
				if info.Attempt < 3 {
					return errors.New("transient")
				}
				return nil
			}}
		var permCalls atomic.Int32
		perm := dag.Node{ID: "perm", Run: func(context.Context, dag.State) error {
			permCalls.Add(1)
			return dag.Permanent(errors.New("bad request"))
		}}
		var predCalls atomic.Int32
		pred := dag.Node{ID: "pred", Retry: &dag.RetryPolicy{MaxAttempts: 5, Retryable: func(err error) bool { return err.Error() != "fatal" }},
			Run: func(context.Context, dag.State) error {
				if predCalls.Add(1) == 2 {
					return errors.New("fatal")
				}
				return errors.New("again")
			}}
		var elapsedCalls atomic.Int32
		elapsed := dag.Node{ID: "elapsed", Retry: &dag.RetryPolicy{MaxAttempts: 100, InitialBackoff: time.Second, Multiplier: 1, Jitter: -1, MaxElapsed: 3500 * time.Millisecond},
			Run: func(context.Context, dag.State) error { elapsedCalls.Add(1); return errors.New("down") }}

		rec := &recorder{}
		e := mustExec(t, executor.Options{FailurePolicy: executor.Continue, Limits: executor.Limits{CPU: 4},
			Retry: &dag.RetryPolicy{MaxAttempts: 3}, Observers: []executor.Observer{rec}})
		res, err := e.Run(context.Background(), mustGraph(t, flaky, perm, pred, elapsed), dag.NewMemoryState())
		require.Error(t, err)

		f, _ := res.Node("flaky")
		assert.Equal(t, executor.Succeeded, f.Status)
		assert.Equal(t, 3, f.Attempts)
		assert.Equal(t, []time.Duration{0, time.Second, 3 * time.Second}, attemptStarts, "backoff 1s then 2s")
		retrying := 0
		for _, ev := range rec.ofKind(executor.NodeRetrying) {
			if ev.Node == "flaky" {
				retrying++
			}
		}
		assert.Equal(t, 2, retrying)

		p, _ := res.Node("perm")
		assert.Equal(t, executor.Failed, p.Status)
		assert.EqualValues(t, 1, permCalls.Load(), "permanent errors are never retried")
		assert.Equal(t, 1, p.Attempts)

		pr, _ := res.Node("pred")
		assert.EqualValues(t, 2, predCalls.Load(), "the predicate stops retries")

		el, _ := res.Node("elapsed")
		assert.EqualValues(t, 4, elapsedCalls.Load(), "attempts at 0,1,2,3 s; the next would pass 3.5 s")
		assert.Equal(t, executor.Failed, el.Status)
		assert.Equal(t, executor.Failed, pr.Status)
	})
}

func TestFailFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		var lateRan atomic.Bool
		g := mustGraph(t,
			dag.Node{ID: "fails", Run: func(context.Context, dag.State) error { time.Sleep(time.Second); return boom }},
			dag.Node{ID: "long", Run: func(ctx context.Context, _ dag.State) error {
				select {
				case <-ctx.Done():
					return context.Cause(ctx)
				case <-time.After(time.Minute):
					return nil
				}
			}},
			dag.Node{ID: "after", DependsOn: []string{"fails"}, Run: noop},
			dag.Node{ID: "late", Priority: -1, Run: func(context.Context, dag.State) error { lateRan.Store(true); return nil }},
		)
		e := mustExec(t, executor.Options{Limits: executor.Limits{CPU: 2}})
		start := time.Now()
		res, err := e.Run(context.Background(), g, dag.NewMemoryState())
		assert.Equal(t, time.Second, time.Since(start), "in-flight nodes are cancelled at once")
		require.ErrorIs(t, err, boom)
		var ne *executor.NodeError
		require.ErrorAs(t, err, &ne)
		assert.Equal(t, "fails", ne.Node)

		long, _ := res.Node("long")
		assert.Equal(t, executor.Cancelled, long.Status)
		assert.ErrorIs(t, long.Err, boom, "the cancellation cause is the failure")
		after, _ := res.Node("after")
		assert.Equal(t, executor.Skipped, after.Status)
		late, _ := res.Node("late")
		assert.Equal(t, executor.Skipped, late.Status)
		assert.ErrorIs(t, late.Err, executor.ErrRunStopped)
		assert.False(t, lateRan.Load())
	})
}

func TestContinueAndOptional(t *testing.T) {
	boom := errors.New("boom")
	fail := func(context.Context, dag.State) error { return boom }
	var ran sync.Map
	mark := func(id string) dag.Func {
		return func(context.Context, dag.State) error { ran.Store(id, true); return nil }
	}
	g := mustGraph(t,
		dag.Node{ID: "root", Run: mark("root")},
		dag.Node{ID: "bad", DependsOn: []string{"root"}, Run: fail},
		dag.Node{ID: "child", DependsOn: []string{"bad"}, Run: mark("child")},
		dag.Node{ID: "grandchild", DependsOn: []string{"child", "root"}, Run: mark("grandchild")},
		dag.Node{ID: "branch", DependsOn: []string{"root"}, Run: mark("branch")},
		dag.Node{ID: "opt", Optional: true, Run: fail},
		dag.Node{ID: "uses-opt", DependsOn: []string{"opt"}, Run: mark("uses-opt")},
	)
	e := mustExec(t, executor.Options{FailurePolicy: executor.Continue})
	res, err := e.Run(context.Background(), g, dag.NewMemoryState())
	require.ErrorIs(t, err, boom)
	var ne *executor.NodeError
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, "bad", ne.Node, "only the non-optional failure fails the run")

	want := map[string]executor.Status{
		"root": executor.Succeeded, "bad": executor.Failed, "child": executor.Skipped,
		"grandchild": executor.Skipped, "branch": executor.Succeeded, "opt": executor.Failed, "uses-opt": executor.Succeeded,
	}
	for id, st := range want {
		nr, ok := res.Node(id)
		require.True(t, ok)
		assert.Equal(t, st, nr.Status, id)
	}
	child, _ := res.Node("child")
	assert.ErrorIs(t, child.Err, executor.ErrUpstream)
	assert.Contains(t, child.Err.Error(), `"bad"`)
	_, ranChild := ran.Load("child")
	assert.False(t, ranChild)

	// A run whose only failure is optional succeeds.
	g2 := mustGraph(t, dag.Node{ID: "opt", Optional: true, Run: fail}, dag.Node{ID: "next", DependsOn: []string{"opt"}, Run: noop})
	res, err = mustExec(t, executor.Options{}).Run(context.Background(), g2, dag.NewMemoryState())
	require.NoError(t, err)
	assert.Equal(t, executor.Succeeded, res.Nodes[1].Status)
}

func TestCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stop := errors.New("operator pressed ctrl-c")
		ctx, cancel := context.WithCancelCause(context.Background())
		started := make(chan struct{})
		g := mustGraph(t,
			dag.Node{ID: "running", Run: func(ctx context.Context, _ dag.State) error {
				close(started)
				<-ctx.Done()
				return ctx.Err()
			}},
			dag.Node{ID: "waiting", DependsOn: []string{"running"}, Run: noop},
		)
		go func() { <-started; time.Sleep(3 * time.Second); cancel(stop) }()
		e := mustExec(t, executor.Options{})
		start := time.Now()
		res, err := e.Run(ctx, g, dag.NewMemoryState())
		assert.Equal(t, 3*time.Second, time.Since(start), "Run returns promptly")
		require.ErrorIs(t, err, stop)
		assert.Equal(t, executor.Cancelled, res.Nodes[0].Status)
		assert.Equal(t, executor.Cancelled, res.Nodes[1].Status)
	})
}

func TestCancellationAbandonsStubbornNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		g := mustGraph(t, dag.Node{ID: "deaf", Run: func(context.Context, dag.State) error { <-release; return nil }})
		e := mustExec(t, executor.Options{AbandonAfter: 2 * time.Second})
		start := time.Now()
		res, err := e.Run(ctx, g, dag.NewMemoryState())
		assert.Equal(t, 3*time.Second, time.Since(start))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, executor.Cancelled, res.Nodes[0].Status)
		assert.True(t, res.Nodes[0].Abandoned)
		assert.Equal(t, 1, res.Abandoned)
		close(release)
	})
}

func TestPanicBecomesNodeError(t *testing.T) {
	g := mustGraph(t,
		dag.Node{ID: "panics", Retry: &dag.RetryPolicy{MaxAttempts: 5}, Run: func(context.Context, dag.State) error { panic("kaboom") }},
	)
	res, err := mustExec(t, executor.Options{}).Run(context.Background(), g, dag.NewMemoryState())
	var pe *executor.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "kaboom", pe.Value)
	assert.Contains(t, string(pe.Stack), "executor_test.go")
	assert.Equal(t, 1, res.Nodes[0].Attempts, "panics are not retried")
	assert.Equal(t, executor.Failed, res.Nodes[0].Status)
}

// testGate is a Gate with Checker whose openness the test controls.
type testGate struct {
	mu     sync.Mutex
	closed bool
	opened chan struct{}
}

func newTestGate() *testGate { return &testGate{opened: make(chan struct{})} }

func (g *testGate) set(closed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed && !closed {
		close(g.opened)
		g.opened = make(chan struct{})
	}
	g.closed = closed
}

func (g *testGate) Check() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("temperature 82 °C over 80 °C")
	}
	return nil
}

func (g *testGate) Wait(ctx context.Context) error {
	g.mu.Lock()
	closed, opened := g.closed, g.opened
	g.mu.Unlock()
	if !closed {
		return nil
	}
	select {
	case <-opened:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestGatePausesRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := newTestGate()
		var startTimes []time.Duration
		begin := time.Now()
		step := func(id string, deps ...string) dag.Node {
			return dag.Node{ID: id, DependsOn: deps, Run: func(context.Context, dag.State) error {
				startTimes = append(startTimes, time.Since(begin))
				if id == "a" {
					gate.set(true) // the device gets hot while a runs
					time.AfterFunc(30*time.Second, func() { gate.set(false) })
				}
				time.Sleep(time.Second)
				return nil
			}}
		}
		rec := &recorder{}
		e := mustExec(t, executor.Options{Gate: gate, Limits: executor.Limits{CPU: 1}, Observers: []executor.Observer{rec}})
		res, err := e.Run(context.Background(), mustGraph(t, step("a"), step("b", "a"), step("c", "b")), dag.NewMemoryState())
		require.NoError(t, err)
		assert.Equal(t, []time.Duration{0, 30 * time.Second, 31 * time.Second}, startTimes, "b waits for the gate")
		assert.Equal(t, 1, res.Pauses)
		assert.Equal(t, 29*time.Second, res.Paused)
		paused := rec.ofKind(executor.Paused)
		require.Len(t, paused, 1)
		assert.ErrorContains(t, paused[0].Err, "82 °C")
		resumed := rec.ofKind(executor.Resumed)
		require.Len(t, resumed, 1)
		assert.Equal(t, 29*time.Second, resumed[0].Duration)
	})
}

func TestGateCancelledWhilePaused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := newTestGate()
		gate.set(true)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := mustExec(t, executor.Options{Gate: gate}).Run(ctx, mustGraph(t, dag.Node{ID: "a", Run: noop}), dag.NewMemoryState())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, executor.Cancelled, res.Nodes[0].Status)
		assert.Equal(t, 0, res.Nodes[0].Attempts)
	})
}

type plainGate struct{ delay time.Duration }

func (g plainGate) Wait(ctx context.Context) error {
	select {
	case <-time.After(g.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestGateWithoutChecker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustGraph(t, dag.Node{ID: "a", Run: noop}, dag.Node{ID: "b", Run: noop, DependsOn: []string{"a"}})
		res, err := mustExec(t, executor.Options{Gate: plainGate{delay: 2 * time.Second}}).Run(context.Background(), g, dag.NewMemoryState())
		require.NoError(t, err)
		assert.Equal(t, 2, res.Pauses)
		assert.Equal(t, 4*time.Second, res.Paused)
	})
}

func TestKnobsApplyToRunInProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var running atomic.Int64
		var mu sync.Mutex
		var starts []time.Duration
		var concurrency []int64 // nodes running when each node started, itself included
		begin := time.Now()
		var e *executor.Executor
		var nodes []dag.Node
		for i := range 12 {
			nodes = append(nodes, dag.Node{ID: strconv.Itoa(i), Priority: -i, Run: func(context.Context, dag.State) error {
				cur := running.Add(1)
				mu.Lock()
				starts = append(starts, time.Since(begin))
				concurrency = append(concurrency, cur)
				mu.Unlock()
				if i == 3 {
					e.SetLimits(executor.Limits{CPU: 1, IO: 1})
					e.SetInterNodeDelay(1500 * time.Millisecond)
				}
				time.Sleep(time.Second)
				running.Add(-1)
				return nil
			}})
		}
		e = mustExec(t, executor.Options{Limits: executor.Limits{CPU: 4}})
		_, err := e.Run(context.Background(), mustGraph(t, nodes...), dag.NewMemoryState())
		require.NoError(t, err)
		// Nodes 0-3 start together; node 3 turns the knobs. The four in
		// flight finish at 1 s, then one node at a time runs, each start
		// 1.5 s after the previous one (the delay now exceeds the node time).
		assert.Equal(t, []time.Duration{0, 0, 0, 0}, starts[:4])
		assert.Equal(t, 1500*time.Millisecond, starts[4], "the delay counts from the last start at 0 s")
		for k := 4; k < len(starts); k++ {
			assert.EqualValues(t, 1, concurrency[k], "node started %d-th ran alone", k)
			if k > 4 {
				assert.Equal(t, 1500*time.Millisecond, starts[k]-starts[k-1])
			}
		}
		assert.Equal(t, executor.Limits{CPU: 1, IO: 1}, e.Limits())
		assert.Equal(t, 1500*time.Millisecond, e.InterNodeDelay())
	})
}

func TestInterNodeDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var starts []time.Duration
		var mu sync.Mutex
		begin := time.Now()
		var nodes []dag.Node
		for i := range 5 {
			nodes = append(nodes, dag.Node{ID: strconv.Itoa(i), Run: func(context.Context, dag.State) error {
				mu.Lock()
				starts = append(starts, time.Since(begin))
				mu.Unlock()
				return nil
			}})
		}
		e := mustExec(t, executor.Options{Limits: executor.Limits{CPU: 4}, InterNodeDelay: 100 * time.Millisecond})
		_, err := e.Run(context.Background(), mustGraph(t, nodes...), dag.NewMemoryState())
		require.NoError(t, err)
		assert.Equal(t, []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond}, starts)
	})
}

func TestObserverPanicIsContained(t *testing.T) {
	bad := executor.ObserverFunc(func(executor.Event) { panic("observer bug") })
	rec := &recorder{}
	e := mustExec(t, executor.Options{Observers: []executor.Observer{bad, rec}})
	_, err := e.Run(context.Background(), mustGraph(t, dag.Node{ID: "a", Run: noop}), dag.NewMemoryState())
	require.NoError(t, err)
	assert.Len(t, rec.ofKind(executor.NodeSucceeded), 1, "later observers still get events")
}

func TestConcurrentRuns(t *testing.T) {
	e := mustExec(t, executor.Options{Limits: executor.Limits{CPU: 3}})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			var nodes []dag.Node
			for i := range 50 {
				var deps []string
				if i > 0 {
					deps = []string{strconv.Itoa(i / 2)}
				}
				nodes = append(nodes, dag.Node{ID: strconv.Itoa(i), DependsOn: deps, Run: func(_ context.Context, s dag.State) error {
					return s.Put(strconv.Itoa(i), []byte{byte(w)})
				}})
			}
			s := dag.NewMemoryState()
			res, err := e.Run(context.Background(), mustGraph(t, nodes...), s)
			assert.NoError(t, err)
			assert.Equal(t, 50, res.Count(executor.Succeeded))
			assert.Len(t, s.Keys(), 50)
		})
	}
	wg.Wait()
}

func TestNodeInfoAndRunID(t *testing.T) {
	var key string
	g := mustGraph(t, dag.Node{ID: "call-llm", Run: func(ctx context.Context, _ dag.State) error {
		info, ok := executor.NodeInfoFrom(ctx)
		if !ok {
			return errors.New("no node info")
		}
		key = info.IdempotencyKey()
		return nil
	}})
	res, err := mustExec(t, executor.Options{}).RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "run-42"})
	require.NoError(t, err)
	assert.Equal(t, "run-42", res.RunID)
	assert.Equal(t, "run-42/call-llm", key)
	_, ok := executor.NodeInfoFrom(context.Background())
	assert.False(t, ok)

	id1 := executor.NewRunID(time.Date(2026, 11, 22, 14, 25, 30, 0, time.UTC))
	assert.Regexp(t, `^20261122T142530Z-[0-9a-f]{8}$`, id1)
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name string
		opts executor.Options
		want string
	}{
		{"negative CPU limit", executor.Options{Limits: executor.Limits{CPU: -1}}, "Options.Limits.CPU = -1: must be ≥ 0"},
		{"negative IO limit", executor.Options{Limits: executor.Limits{IO: -2}}, "Options.Limits.IO = -2: must be ≥ 0"},
		{"negative timeout", executor.Options{NodeTimeout: -time.Second}, "Options.NodeTimeout = -1s"},
		{"negative abandon", executor.Options{AbandonAfter: -1}, "Options.AbandonAfter"},
		{"negative delay", executor.Options{InterNodeDelay: -1}, "Options.InterNodeDelay"},
		{"bad policy", executor.Options{FailurePolicy: 9}, "Options.FailurePolicy"},
		{"bad retry", executor.Options{Retry: &dag.RetryPolicy{Jitter: 2}}, "Options.Retry.Jitter = 2: must be ≤ 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := executor.New(tt.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := executor.New(executor.Options{Limits: executor.Limits{CPU: -1}, NodeTimeout: -1})
	assert.ErrorContains(t, err, "Limits.CPU")
	assert.ErrorContains(t, err, "NodeTimeout", "all bad options are reported at once")

	e := mustExec(t, executor.Options{})
	_, err = e.Run(context.Background(), nil, dag.NewMemoryState())
	assert.Error(t, err)
	e.SetLimits(executor.Limits{CPU: 0, IO: -5})
	assert.Equal(t, executor.Limits{CPU: 1, IO: 1}, e.Limits(), "values below 1 mean 1")
}

func TestStatusStrings(t *testing.T) {
	assert.Equal(t, "timed_out", executor.TimedOut.String())
	b, _ := executor.Skipped.MarshalText()
	assert.Equal(t, "skipped", string(b))
	assert.Equal(t, "resumed", executor.Resumed.String())
	assert.Equal(t, "continue", executor.Continue.String())
	var st executor.Status
	require.NoError(t, st.UnmarshalText([]byte("timed_out")))
	assert.Equal(t, executor.TimedOut, st)
	assert.Error(t, st.UnmarshalText([]byte("exploded")))
}

func TestLogObserver(t *testing.T) {
	var buf syncBuffer
	level := new(slog.LevelVar)
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))
	g := mustGraph(t,
		dag.Node{ID: "ok", Run: noop},
		dag.Node{ID: "bad", Optional: true, Run: func(context.Context, dag.State) error { return errors.New("disk full") }},
	)
	e := mustExec(t, executor.Options{Observers: []executor.Observer{executor.NewLogObserver(logger)}})
	_, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r1"})
	require.NoError(t, err)
	out := buf.String()
	assert.Contains(t, out, "level=INFO msg=run_started run=r1")
	assert.Regexp(t, `level=ERROR msg=node_failed run=r1 node=bad attempt=1 duration=\S+ status=failed error="executor: node \\"bad\\" failed after 1 attempt: disk full"`, out)
	assert.NotContains(t, out, "node_succeeded", "debug events are off at the default level")

	// Raising the level (as the adaptive executor does in low_disk mode)
	// keeps only warnings and errors.
	buf.Reset()
	level.Set(slog.LevelWarn)
	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r2"})
	require.NoError(t, err)
	out = buf.String()
	assert.NotContains(t, out, "run_started")
	assert.Contains(t, out, "node_failed")
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

// goroutineID is the number runtime.Stack prints for the calling goroutine.
func goroutineID() string {
	var buf [64]byte
	f := strings.Fields(string(buf[:runtime.Stack(buf[:], false)]))
	return f[1]
}

// When nothing but its own nodes can stop a run (a context that cannot be
// cancelled, no gate, store or observer) and a node is all there is to do,
// the goroutine that called Run runs it. Anything that may have to abandon
// a node (a cancellable context, a timeout, a sibling that fails fast)
// keeps nodes on goroutines of their own.
func TestSoloNodeRunsOnTheCallersGoroutineOnlyWhenNothingCanAbandonIt(t *testing.T) {
	caller := goroutineID()
	var ids []string
	node := func(id string, deps ...string) dag.Node {
		return dag.Node{ID: id, DependsOn: deps, Run: func(context.Context, dag.State) error { ids = append(ids, goroutineID()); return nil }}
	}
	e := mustExec(t, executor.Options{})
	_, err := e.Run(context.Background(), mustGraph(t, node("a"), node("b", "a"), node("c", "b")), dag.NewMemoryState())
	require.NoError(t, err)
	assert.Equal(t, []string{caller, caller, caller}, ids, "a chain with nothing to wait for runs on the caller")

	ids = nil
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = e.Run(ctx, mustGraph(t, node("a")), dag.NewMemoryState())
	require.NoError(t, err)
	assert.NotEqual(t, caller, ids[0], "a cancellable run must be able to abandon its node")

	ids = nil
	timed := node("a")
	timed.Timeout = time.Minute
	_, err = e.Run(context.Background(), mustGraph(t, timed), dag.NewMemoryState())
	require.NoError(t, err)
	assert.NotEqual(t, caller, ids[0], "a node with a timeout may have to be abandoned")
}

func TestFailFastAbandonsAStubbornSiblingOfAnUncancellableRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		g := mustGraph(t,
			dag.Node{ID: "deaf", Run: func(context.Context, dag.State) error { <-release; return nil }},
			dag.Node{ID: "fails", Run: func(context.Context, dag.State) error { return errors.New("broken") }},
		)
		e := mustExec(t, executor.Options{AbandonAfter: 2 * time.Second})
		start := time.Now()
		res, err := e.Run(context.Background(), g, dag.NewMemoryState())
		assert.Equal(t, 2*time.Second, time.Since(start))
		require.ErrorContains(t, err, "broken")
		deaf, _ := res.Node("deaf")
		assert.True(t, deaf.Abandoned)
		close(release)
	})
}
