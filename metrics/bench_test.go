package metrics_test

import (
	"sync"
	"testing"
	"time"

	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/metrics"
)

// BenchmarkOnEvent measures counting a node's success (a counter and a
// histogram observation) against a baseline of a mutex-guarded map
// increment, the least a labelled counter costs.
func BenchmarkOnEvent(b *testing.B) {
	ev := executor.Event{Kind: executor.NodeSucceeded, Node: "answer", Status: executor.Succeeded, Duration: 1200 * time.Millisecond}
	b.Run("metrics", func(b *testing.B) {
		b.ReportAllocs()
		m, _ := metrics.New(metrics.Options{})
		for b.Loop() {
			m.OnEvent(ev)
		}
	})
	b.Run("baseline-map-counter", func(b *testing.B) {
		b.ReportAllocs()
		var mu sync.Mutex
		counts := map[string]float64{}
		for b.Loop() {
			mu.Lock()
			counts[ev.Status.String()]++
			mu.Unlock()
		}
	})
}
