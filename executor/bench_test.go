package executor_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// baselineRun is the reference the executor is measured against: a minimal
// hand-written DAG scheduler with no features (no timeouts, retries, events,
// gate, results). A goroutine per ready node, a channel semaphore for the
// parallelism bound, atomic in-degree counters and a WaitGroup.
func baselineRun(ctx context.Context, g *dag.Graph, s dag.State, maxParallel int) {
	indeg := inDegrees(g)
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	var launch func(i int32)
	launch = func(i int32) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runBare(ctx, g, s, sem, indeg, i, launch)
		}()
	}
	launchRoots(indeg, launch)
	wg.Wait()
}

// inDegrees returns the number of dependencies of each node of g.
func inDegrees(g *dag.Graph) []atomic.Int32 {
	indeg := make([]atomic.Int32, g.Len())
	for i := range indeg {
		indeg[i].Store(int32(len(g.Dependencies(i))))
	}
	return indeg
}

// runBare runs node i under the semaphore and launches the dependents it
// leaves with no dependency to wait for.
func runBare(ctx context.Context, g *dag.Graph, s dag.State, sem chan struct{}, indeg []atomic.Int32, i int32, launch func(int32)) {
	sem <- struct{}{}
	_ = g.At(int(i)).Run(ctx, s)
	<-sem
	for _, c := range g.Dependents(int(i)) {
		if indeg[c].Add(-1) == 0 {
			launch(c)
		}
	}
}

// launchRoots launches the nodes that depend on none.
func launchRoots(indeg []atomic.Int32, launch func(int32)) {
	for i := range indeg {
		if indeg[i].Load() == 0 {
			launch(int32(i))
		}
	}
}

func wideGraph(b testing.TB, n int) *dag.Graph {
	nodes := make([]dag.Node, n)
	for i := range nodes {
		nodes[i] = dag.Node{ID: strconv.Itoa(i), Run: noop}
	}
	return mustGraph(b, nodes...)
}

func chainGraph(b testing.TB, n int) *dag.Graph {
	nodes := make([]dag.Node, n)
	for i := range nodes {
		nodes[i] = dag.Node{ID: strconv.Itoa(i), Run: noop}
		if i > 0 {
			nodes[i].DependsOn = []string{strconv.Itoa(i - 1)}
		}
	}
	return mustGraph(b, nodes...)
}

// diamondGraph has layers of width nodes; each node depends on 3 nodes of
// the layer before.
func diamondGraph(b *testing.B, layers, width int) *dag.Graph {
	id := func(l, k int) string { return strconv.Itoa(l) + "/" + strconv.Itoa(k) }
	var nodes []dag.Node
	for l := range layers {
		for k := range width {
			nd := dag.Node{ID: id(l, k), Run: noop}
			if l > 0 {
				nd.DependsOn = []string{id(l-1, k), id(l-1, (k+1)%width), id(l-1, (k+width-1)%width)}
			}
			nodes = append(nodes, nd)
		}
	}
	return mustGraph(b, nodes...)
}

// benchShape runs the cemaf and baseline sub-benchmarks on one graph and
// reports ns/node and allocs/node. The executor reuses its last Result
// (RunOptions.Reuse), as a program that runs a graph again and again would.
func benchShape(b *testing.B, g *dag.Graph) { benchShapeIn(b, context.Background(), g) }

// benchShapeIn is benchShape with the runs under ctx.
func benchShapeIn(b *testing.B, ctx context.Context, g *dag.Graph) {
	maxPar := runtime.GOMAXPROCS(0)
	b.Run("cemaf", func(b *testing.B) {
		e := mustExec(b, executor.Options{Limits: executor.Limits{CPU: maxPar}})
		s := dag.NewMemoryState()
		var res *executor.Result
		measure(b, g, func() {
			var err error
			if res, err = e.RunWith(ctx, g, s, executor.RunOptions{Reuse: res}); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("baseline", func(b *testing.B) {
		s := dag.NewMemoryState()
		measure(b, g, func() { baselineRun(ctx, g, s, maxPar) })
	})
}

// measure runs f in b's loop and reports, beside ns/op, ns/node,
// allocs/node and cpu-ns/node for the graph g.
func measure(b *testing.B, g *dag.Graph, f func()) {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := processCPU()
	for b.Loop() {
		f()
	}
	cpu := processCPU() - cpu0
	runtime.ReadMemStats(&after)
	nodes := float64(b.N) * float64(g.Len())
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/nodes, "ns/node")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/nodes, "allocs/node")
	if cpu >= 0 {
		// CPU time of the whole process (every thread, the GC's
		// included): less sensitive than wall time to other processes
		// sharing the machine.
		b.ReportMetric(float64(cpu.Nanoseconds())/nodes, "cpu-ns/node")
	}
}

// baselineReturnsRun is baselineRun that, like the executor, returns when
// ctx is cancelled instead of waiting for nodes that ignore it: the bare
// scheduler with the one feature that keeps a node off the caller's
// goroutine under a cancellable context.
func baselineReturnsRun(ctx context.Context, g *dag.Graph, s dag.State, maxParallel int) {
	indeg := inDegrees(g)
	var left atomic.Int32
	left.Store(int32(g.Len()))
	done := make(chan struct{})
	sem := make(chan struct{}, maxParallel)
	var launch func(i int32)
	launch = func(i int32) {
		go func() {
			runBare(ctx, g, s, sem, indeg, i, launch)
			if left.Add(-1) == 0 {
				close(done)
			}
		}()
	}
	launchRoots(indeg, launch)
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// benchCancellable is benchShapeIn under a context that can be cancelled,
// with a second baseline that returns on cancellation as the executor
// does (baselineReturnsRun).
func benchCancellable(b *testing.B, g *dag.Graph) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	benchShapeIn(b, ctx, g)
	b.Run("baseline-returns", func(b *testing.B) {
		s := dag.NewMemoryState()
		measure(b, g, func() { baselineReturnsRun(ctx, g, s, runtime.GOMAXPROCS(0)) })
	})
}

// BenchmarkRunWide: 10,000 independent no-op nodes.
func BenchmarkRunWide(b *testing.B) { benchShape(b, wideGraph(b, 10_000)) }

// BenchmarkRunChain: a 10,000-node chain.
func BenchmarkRunChain(b *testing.B) { benchShape(b, chainGraph(b, 10_000)) }

// BenchmarkRunDiamond: 100 layers of 100 nodes, each depending on 3 nodes of
// the layer before.
func BenchmarkRunDiamond(b *testing.B) { benchShape(b, diamondGraph(b, 100, 100)) }

// layersGraph has layers of width no-op nodes; node k of a layer depends
// on nodes k and k+width/2 of the layer before.
func layersGraph(b *testing.B, layers, width int) *dag.Graph {
	id := func(l, k int) string { return strconv.Itoa(l) + "/" + strconv.Itoa(k) }
	var nodes []dag.Node
	for l := range layers {
		for k := range width {
			nd := dag.Node{ID: id(l, k), Run: noop}
			if l > 0 {
				nd.DependsOn = []string{id(l-1, k), id(l-1, (k+width/2)%width)}
			}
			nodes = append(nodes, nd)
		}
	}
	return mustGraph(b, nodes...)
}

// BenchmarkRunLayered: 20 layers of 500 nodes, each depending on 2 nodes of
// the layer before.
func BenchmarkRunLayered(b *testing.B) { benchShape(b, layersGraph(b, 20, 500)) }

// BenchmarkRunShort measures the fixed cost of a run: a single node, and a
// chain of 8; and the node under a context that can be cancelled, which
// keeps it off the coordinator's goroutine (a stubborn node may have to be
// abandoned).
func BenchmarkRunShort(b *testing.B) {
	b.Run("1", func(b *testing.B) { benchShape(b, chainGraph(b, 1)) })
	b.Run("chain-8", func(b *testing.B) { benchShape(b, chainGraph(b, 8)) })
	b.Run("1-cancellable", func(b *testing.B) { benchCancellable(b, chainGraph(b, 1)) })
	// A node that looks at its context, as an LLM or tool call does: the
	// run's context is then made (it is made on first use).
	looks := mustGraph(b, dag.Node{ID: "0", Run: func(ctx context.Context, _ dag.State) error { return ctx.Err() }})
	b.Run("1-looks-at-ctx", func(b *testing.B) { benchShape(b, looks) })
	b.Run("1-looks-at-ctx-cancellable", func(b *testing.B) { benchCancellable(b, looks) })
}

// layeredGraph is 10 layers of 100 nodes of work d, each depending on 3 nodes
// of the layer before and writing a 64-byte value to the State.
func layeredGraph(b *testing.B, d time.Duration) *dag.Graph {
	id := func(l, k int) string { return strconv.Itoa(l) + "/" + strconv.Itoa(k) }
	val := make([]byte, 64)
	var nodes []dag.Node
	for l := range 10 {
		for k := range 100 {
			nd := dag.Node{ID: id(l, k), Run: func(_ context.Context, s dag.State) error {
				time.Sleep(d)
				return s.Put(id(l, k), val)
			}}
			if l > 0 {
				nd.DependsOn = []string{id(l-1, k), id(l-1, (k+1)%100), id(l-1, (k+99)%100)}
			}
			nodes = append(nodes, nd)
		}
	}
	return mustGraph(b, nodes...)
}

// processCPU returns the user and system CPU time this process has used
// (getrusage), or -1.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processWriteBytes returns the bytes this process has written with write
// calls so far (Linux /proc/self/io wchar), or -1.
func processWriteBytes() int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// BenchmarkCheckpoint runs a 1,000-node DAG of 1 ms nodes without
// checkpoints and with each commit policy, reporting ms/run and, with
// checkpoints, the bytes written per node.
func BenchmarkCheckpoint(b *testing.B) {
	g := layeredGraph(b, time.Millisecond)
	ctx := context.Background()
	b.Run("without", func(b *testing.B) {
		e := mustExec(b, executor.Options{})
		for b.Loop() {
			if _, err := e.Run(ctx, g, dag.NewMemoryState()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/run")
	})
	policies := []struct {
		name string
		p    executor.CommitPolicy
	}{
		{"every-node", executor.CommitPolicy{MaxNodes: 1}},
		{"default-16-nodes-or-250ms", executor.CommitPolicy{}},
		{"every-100ms", executor.CommitPolicy{MaxNodes: 1 << 30, MaxDelay: 100 * time.Millisecond}},
	}
	for _, pc := range policies {
		b.Run(pc.name, func(b *testing.B) {
			store, err := executor.OpenCheckpoints(filepath.Join(b.TempDir(), "ckpt.db"), executor.CheckpointOptions{Commit: pc.p, KeepFinished: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			e := mustExec(b, executor.Options{Checkpoints: store})
			w0 := processWriteBytes()
			for b.Loop() {
				if _, err := e.Run(ctx, g, dag.NewMemoryState()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/run")
			if w0 >= 0 {
				b.ReportMetric(float64(processWriteBytes()-w0)/float64(b.N*g.Len()), "B-written/node")
			}
		})
	}
}

// BenchmarkEmit measures Emit from inside a running node: with no
// observer, with an observer that does nothing (the coordinator delivers
// concurrently), and against a baseline of the obvious alternative, a send
// on a buffered channel drained by another goroutine.
func BenchmarkEmit(b *testing.B) {
	c := executor.Chunk{Kind: executor.ChunkToken, Text: "tok"}
	emitting := func(b *testing.B) *dag.Graph {
		return mustGraph(b, dag.Node{ID: "llm", Run: func(ctx context.Context, _ dag.State) error {
			b.ResetTimer()
			for range b.N {
				executor.Emit(ctx, c)
			}
			b.StopTimer()
			return nil
		}})
	}
	b.Run("no-observer", func(b *testing.B) {
		b.ReportAllocs()
		e := mustExec(b, executor.Options{})
		if _, err := e.Run(context.Background(), emitting(b), dag.NewMemoryState()); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("observer", func(b *testing.B) {
		b.ReportAllocs()
		var n atomic.Int64
		obs := executor.ObserverFunc(func(ev executor.Event) {
			if ev.Kind == executor.NodeOutput {
				n.Add(1)
			}
		})
		e := mustExec(b, executor.Options{Observers: []executor.Observer{obs}})
		if _, err := e.Run(context.Background(), emitting(b), dag.NewMemoryState()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/float64(max(n.Load(), 1)), "chunks/event")
	})
	b.Run("baseline-channel", func(b *testing.B) {
		b.ReportAllocs()
		ch := make(chan executor.Chunk, 1024)
		done := make(chan struct{})
		go func() {
			for range ch {
			}
			close(done)
		}()
		b.ResetTimer()
		for range b.N {
			ch <- c
		}
		close(ch)
		<-done
	})
}

// noopTracer is the cheapest Tracer: it returns the context it is given
// and no end function.
type noopTracer struct{}

func (noopTracer) TraceRun(ctx context.Context, _ executor.RunTrace) (context.Context, func(executor.RunOutcome)) {
	return ctx, nil
}

func (noopTracer) TraceNode(ctx context.Context, _ executor.NodeTrace) (context.Context, func(executor.NodeOutcome)) {
	return ctx, nil
}

// BenchmarkTracer measures the Tracer hook on a 10,000-node chain: without
// a Tracer (the cost of the unset hook is one nil check per attempt), with
// a no-op one, and the bare baseline.
func BenchmarkTracer(b *testing.B) {
	g := chainGraph(b, 10_000)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		tr   executor.Tracer
	}{{"none", nil}, {"noop", noopTracer{}}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			e := mustExec(b, executor.Options{Tracer: tc.tr, Limits: executor.Limits{CPU: runtime.GOMAXPROCS(0)}})
			s := dag.NewMemoryState()
			var res *executor.Result
			for b.Loop() {
				var err error
				if res, err = e.RunWith(ctx, g, s, executor.RunOptions{Reuse: res}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*g.Len()), "ns/node")
		})
	}
	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		s := dag.NewMemoryState()
		for b.Loop() {
			baselineRun(ctx, g, s, runtime.GOMAXPROCS(0))
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*g.Len()), "ns/node")
	})
}

// BenchmarkHandoff measures what a run under a cancellable context adds to
// the fixed cost: a worker goroutine that wakes the coordinator parked in a
// select on its wake channel, the executor's limit changes and the caller's
// context; against a goroutine that a WaitGroup waits for (the baseline's
// hand-off).
func BenchmarkHandoff(b *testing.B) {
	b.Run("select", func(b *testing.B) {
		wake := make(chan struct{}, 1)
		changed := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for b.Loop() {
			go func() { wake <- struct{}{} }()
			select {
			case <-wake:
			case <-changed:
			case <-ctx.Done():
			}
		}
	})
	b.Run("waitgroup", func(b *testing.B) {
		for b.Loop() {
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { wg.Done() }()
			wg.Wait()
		}
	})
}
