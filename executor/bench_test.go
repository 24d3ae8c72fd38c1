package executor_test

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// baselineRun is the reference the executor is measured against: a minimal
// hand-written DAG scheduler with no features (no timeouts, retries, events,
// gate, results). A goroutine per ready node, a channel semaphore for the
// parallelism bound, atomic in-degree counters and a WaitGroup.
func baselineRun(ctx context.Context, g *dag.Graph, s dag.State, maxParallel int) {
	n := g.Len()
	indeg := make([]atomic.Int32, n)
	for i := range n {
		indeg[i].Store(int32(len(g.Dependencies(i))))
	}
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	var launch func(i int32)
	launch = func(i int32) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			_ = g.At(int(i)).Run(ctx, s)
			<-sem
			for _, c := range g.Dependents(int(i)) {
				if indeg[c].Add(-1) == 0 {
					launch(c)
				}
			}
		}()
	}
	for i := range n {
		if indeg[i].Load() == 0 {
			launch(int32(i))
		}
	}
	wg.Wait()
}

func wideGraph(b *testing.B, n int) *dag.Graph {
	nodes := make([]dag.Node, n)
	for i := range nodes {
		nodes[i] = dag.Node{ID: strconv.Itoa(i), Run: noop}
	}
	return mustGraph(b, nodes...)
}

func chainGraph(b *testing.B, n int) *dag.Graph {
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
// reports ns/node and allocs/node.
func benchShape(b *testing.B, g *dag.Graph) {
	ctx := context.Background()
	maxPar := runtime.GOMAXPROCS(0)
	run := func(b *testing.B, f func()) {
		b.ReportAllocs()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for b.Loop() {
			f()
		}
		runtime.ReadMemStats(&after)
		nodes := float64(b.N) * float64(g.Len())
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/nodes, "ns/node")
		b.ReportMetric(float64(after.Mallocs-before.Mallocs)/nodes, "allocs/node")
	}
	b.Run("cemaf", func(b *testing.B) {
		e := mustExec(b, executor.Options{MaxParallel: maxPar})
		s := dag.NewMemoryState()
		run(b, func() {
			if _, err := e.Run(ctx, g, s); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("baseline", func(b *testing.B) {
		s := dag.NewMemoryState()
		run(b, func() { baselineRun(ctx, g, s, maxPar) })
	})
}

// BenchmarkRunWide: 10,000 independent no-op nodes.
func BenchmarkRunWide(b *testing.B) { benchShape(b, wideGraph(b, 10_000)) }

// BenchmarkRunChain: a 10,000-node chain.
func BenchmarkRunChain(b *testing.B) { benchShape(b, chainGraph(b, 10_000)) }

// BenchmarkRunDiamond: 100 layers of 100 nodes, each depending on 3 nodes of
// the layer before.
func BenchmarkRunDiamond(b *testing.B) { benchShape(b, diamondGraph(b, 100, 100)) }
