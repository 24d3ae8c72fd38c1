package dag_test

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/cemaf-go/cemaf/dag"
)

// randomNodes returns n nodes, each depending on up to deg random earlier
// nodes (a random DAG whose edges are given in no particular order).
func randomNodes(n, deg int, seed uint64) []dag.Node {
	r := rand.New(rand.NewPCG(seed, seed))
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "node-" + strconv.Itoa(i)
	}
	nodes := make([]dag.Node, n)
	for i := range nodes {
		nodes[i] = dag.Node{ID: ids[i], Run: noop}
		if i == 0 {
			continue
		}
		deps := make([]string, deg)
		for k := range deps {
			deps[k] = ids[r.IntN(i)]
		}
		nodes[i].DependsOn = deps
	}
	r.Shuffle(n, func(a, b int) { nodes[a], nodes[b] = nodes[b], nodes[a] })
	return nodes
}

// BenchmarkBuild measures New (validation, linking, topological sort and
// levels) on random graphs of growing size with 3 dependencies per node;
// ns/elem (per node + edge) staying flat shows it is linear.
func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		nodes := randomNodes(n, 3, 1)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := dag.New(nodes...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n*4), "ns/elem")
		})
	}
}

// BenchmarkBuild100k is the headline figure: a random 100,000-node
// graph with 3 dependencies per node, built and validated.
func BenchmarkBuild100k(b *testing.B) {
	nodes := randomNodes(100_000, 3, 2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dag.New(nodes...); err != nil {
			b.Fatal(err)
		}
	}
}
