package executor_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/internal/hostlimits"
)

// peak tracks how many of something run at once, and the most seen.
type peak struct{ cur, max atomic.Int64 }

func (p *peak) enter() {
	c := p.cur.Add(1)
	for m := p.max.Load(); c > m && !p.max.CompareAndSwap(m, c); m = p.max.Load() {
	}
}

func (p *peak) leave() { p.cur.Add(-1) }

// A graph of 4 CPU nodes and 32 LLM calls on a 4-core board: the calls run
// 32 at once while at most 2 CPU nodes run, although the CPU nodes have the
// higher priority (a full CPU class does not hold back ready IO nodes).
func TestClassesBoundedSeparately(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		board := hostlimits.Derive(4, 1024)
		lim := executor.Limits{CPU: board.CPU, IO: board.IO}
		require.Equal(t, executor.Limits{CPU: 2, IO: 256}, lim)
		var cpu, io, all peak
		work := func(p *peak) dag.Func {
			return func(context.Context, dag.State) error {
				p.enter()
				all.enter()
				time.Sleep(time.Second)
				all.leave()
				p.leave()
				return nil
			}
		}
		var nodes []dag.Node
		for i := range 4 {
			nodes = append(nodes, dag.Node{ID: "chunk-" + strconv.Itoa(i), Priority: 10, Run: work(&cpu)})
		}
		for i := range 32 {
			nodes = append(nodes, dag.Node{ID: "llm-" + strconv.Itoa(i), Class: dag.IO, Run: work(&io)})
		}
		rec := &recorder{}
		e := mustExec(t, executor.Options{Limits: lim, Observers: []executor.Observer{rec}})
		start := time.Now()
		res, err := e.Run(context.Background(), mustGraph(t, nodes...), dag.NewMemoryState())
		require.NoError(t, err)
		assert.EqualValues(t, 2, cpu.max.Load(), "CPU nodes at once")
		assert.EqualValues(t, 32, io.max.Load(), "LLM calls at once")
		assert.EqualValues(t, 34, all.max.Load())
		assert.Equal(t, 2*time.Second, time.Since(start), "4 CPU nodes, 2 at a time; the calls overlap them")
		assert.Equal(t, 36, res.Count(executor.Succeeded))
		for _, nd := range nodes {
			assert.Equal(t, []executor.EventKind{executor.NodeStarted, executor.NodeSucceeded}, rec.kinds(nd.ID), nd.ID)
			nr, _ := res.Node(nd.ID)
			assert.Equal(t, time.Second, nr.Duration(), nd.ID)
		}
	})
}

// Among the ready nodes whose class has a free slot, the highest priority
// starts first; a full class does not block the other.
func TestClassPriorityAcrossClasses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sleep := func(context.Context, dag.State) error { time.Sleep(time.Second); return nil }
		long := func(context.Context, dag.State) error { time.Sleep(2 * time.Second); return nil }
		g := mustGraph(t,
			dag.Node{ID: "cpu-p3", Priority: 3, Run: long},
			dag.Node{ID: "cpu-p2", Priority: 2, Run: sleep},
			dag.Node{ID: "io-p1", Priority: 1, Class: dag.IO, Run: sleep},
			dag.Node{ID: "io-p4", Priority: 4, Class: dag.IO, Run: sleep},
			dag.Node{ID: "cpu-p5", Priority: 5, DependsOn: []string{"io-p4"}, Run: sleep},
		)
		rec := &recorder{}
		e := mustExec(t, executor.Options{Limits: executor.Limits{CPU: 1, IO: 1}, Observers: []executor.Observer{rec}})
		start := time.Now()
		_, err := e.Run(context.Background(), g, dag.NewMemoryState())
		require.NoError(t, err)
		var order []string
		at := map[string]time.Duration{}
		for _, ev := range rec.ofKind(executor.NodeStarted) {
			order = append(order, ev.Node)
			at[ev.Node] = ev.Time.Sub(start)
		}
		assert.Equal(t, []string{"io-p4", "cpu-p3"}, order[:2], "highest priority first; then the other class's best")
		assert.Equal(t, map[string]time.Duration{"io-p4": 0, "cpu-p3": 0, "io-p1": time.Second, "cpu-p5": 2 * time.Second, "cpu-p2": 3 * time.Second}, at,
			"io-p1 takes the IO slot at 1 s; at 2 s cpu-p5 (released by io-p4) outranks cpu-p2")
	})
}

func TestSetLimitsDuringRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var io peak
		var e *executor.Executor
		var nodes []dag.Node
		for i := range 8 {
			nodes = append(nodes, dag.Node{ID: "llm-" + strconv.Itoa(i), Class: dag.IO, Priority: -i, Run: func(context.Context, dag.State) error {
				io.enter()
				defer io.leave()
				if i == 0 {
					e.SetLimits(executor.Limits{CPU: 1, IO: 8})
				}
				time.Sleep(time.Second)
				return nil
			}})
		}
		e = mustExec(t, executor.Options{Limits: executor.Limits{CPU: 1, IO: 2}})
		start := time.Now()
		_, err := e.Run(context.Background(), mustGraph(t, nodes...), dag.NewMemoryState())
		require.NoError(t, err)
		assert.EqualValues(t, 8, io.max.Load(), "raising the IO limit starts the waiting calls at once")
		assert.Equal(t, time.Second, time.Since(start))
		assert.Equal(t, executor.Limits{CPU: 1, IO: 8}, e.Limits())
	})
}

// A node's end that leaves a node waiting for a slot, while the
// coordinator waited with nothing ready: a limit raised afterwards still
// starts the waiting node at once, not when the running one ends. The
// run's context can be cancelled, so the coordinator does not run the
// nodes itself.
func TestSetLimitsAfterAFanOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var e *executor.Executor
		var cStart time.Duration
		start := time.Now()
		g := mustGraph(t,
			dag.Node{ID: "a", Class: dag.IO, Run: noop},
			dag.Node{ID: "b", Class: dag.IO, Priority: 1, DependsOn: []string{"a"}, Run: func(context.Context, dag.State) error {
				go func() {
					time.Sleep(500 * time.Millisecond)
					e.SetLimits(executor.Limits{CPU: 1, IO: 2})
				}()
				time.Sleep(time.Second)
				return nil
			}},
			dag.Node{ID: "c", Class: dag.IO, DependsOn: []string{"a"}, Run: func(context.Context, dag.State) error {
				cStart = time.Since(start)
				time.Sleep(500 * time.Millisecond)
				return nil
			}},
		)
		e = mustExec(t, executor.Options{Limits: executor.Limits{CPU: 1, IO: 1}})
		_, err := e.Run(ctx, g, dag.NewMemoryState())
		require.NoError(t, err)
		assert.Equal(t, 500*time.Millisecond, cStart, "c starts when the limit is raised")
		assert.Equal(t, time.Second, time.Since(start))
	})
}

func TestDefaultLimitsAreHostDerived(t *testing.T) {
	host := hostlimits.Detect()
	assert.Equal(t, executor.Limits{CPU: host.CPU, IO: host.IO}, mustExec(t, executor.Options{}).Limits())
	assert.Equal(t, executor.Limits{CPU: 3, IO: host.IO}, mustExec(t, executor.Options{Limits: executor.Limits{CPU: 3}}).Limits(),
		"a zero field alone is host-derived")
}

// Random DAGs with random classes and limits: every node runs once, after
// its dependencies, and no class exceeds its limit.
func TestRandomDAGClassLimits(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for trial := range 30 {
		n := 1 + r.IntN(100)
		lim := executor.Limits{CPU: 1 + r.IntN(3), IO: 1 + r.IntN(8)}
		var peaks [2]peak
		finished := make([]atomic.Bool, n)
		runs := make([]atomic.Int32, n)
		var violations atomic.Int32
		nodes := make([]dag.Node, n)
		for i := range nodes {
			var deps []string
			var depIdx []int
			for d := range i {
				if r.IntN(i+1) < 2 {
					deps, depIdx = append(deps, strconv.Itoa(d)), append(depIdx, d)
				}
			}
			class := dag.Class(r.IntN(2))
			nodes[i] = dag.Node{ID: strconv.Itoa(i), DependsOn: deps, Class: class, Priority: r.IntN(3), Run: func(context.Context, dag.State) error {
				peaks[class].enter()
				defer peaks[class].leave()
				for _, d := range depIdx {
					if !finished[d].Load() {
						violations.Add(1)
					}
				}
				runs[i].Add(1)
				for range 50 {
					_ = strconv.Itoa(i) // let others overlap
				}
				finished[i].Store(true)
				return nil
			}}
		}
		res, err := mustExec(t, executor.Options{Limits: lim}).Run(context.Background(), mustGraph(t, nodes...), dag.NewMemoryState())
		require.NoError(t, err, "trial %d", trial)
		assert.Zero(t, violations.Load(), "trial %d", trial)
		assert.LessOrEqual(t, peaks[dag.CPU].max.Load(), int64(lim.CPU), "trial %d: CPU class over its limit", trial)
		assert.LessOrEqual(t, peaks[dag.IO].max.Load(), int64(lim.IO), "trial %d: IO class over its limit", trial)
		for i := range runs {
			assert.EqualValues(t, 1, runs[i].Load(), "trial %d node %d", trial, i)
		}
		assert.Equal(t, n, res.Count(executor.Succeeded))
	}
}

// Commit grouping never leaves a class idle: an IO node waiting on a CPU
// node's commit starts as soon as the CPU node ends, although the CPU class
// is busy with the next CPU node and the group is not full.
func TestCommitGroupingAcrossClasses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, err := executor.OpenCheckpoints(filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{})
		require.NoError(t, err)
		defer store.Close()
		var mu sync.Mutex
		at := map[string]time.Duration{}
		start := time.Now()
		step := func(id string) dag.Func {
			return func(context.Context, dag.State) error {
				mu.Lock()
				at[id] = time.Since(start)
				mu.Unlock()
				time.Sleep(time.Second)
				return nil
			}
		}
		g := mustGraph(t,
			dag.Node{ID: "parse", Priority: 1, Run: step("parse")},
			dag.Node{ID: "index", Run: step("index")},
			dag.Node{ID: "ask", Class: dag.IO, DependsOn: []string{"parse"}, Run: step("ask")},
		)
		e := mustExec(t, executor.Options{Checkpoints: store, Limits: executor.Limits{CPU: 1, IO: 4}})
		res, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
		require.NoError(t, err)
		assert.Equal(t, map[string]time.Duration{"parse": 0, "index": time.Second, "ask": time.Second}, at)
		for _, nr := range res.Nodes {
			assert.True(t, nr.Checkpointed, nr.ID)
		}
	})
}
