package paging_test

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/cemaf-go/cemaf/paging"
)

// heapObjects is the Go heap in use by objects after a full collection.
func heapObjects() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// heapRun writes ten times the budget of a pager with the given options
// through it, in 1 MiB values, and after every Put checks that the
// accounted resident bytes are within the limit and that the Go heap
// (objects in use after a full collection) is within base + 1.10 × limit +
// 8 MiB, where base is the heap of the test process before Wrap. It
// returns the peak heap beyond base + limit. With enforce false (the
// page-size sweep) exceeding the bound is reported, not fatal.
func heapRun(t testing.TB, opts paging.Options, enforce bool) (overhead, lim int64) {
	src := corpus(42, 2<<20)
	val := make([]byte, 1<<20)
	runtime.GC() // a second collection empties the pools' victim caches
	base := heapObjects()
	p := open(t, opts)
	lim = p.MemoryLimit()
	bound := base + lim + lim/10 + 8<<20
	var peak int64
	for i, written := 0, int64(0); written < 10*lim; i++ {
		off := (i * 7919) % (len(src) - len(val))
		copy(val, src[off:])
		if err := p.Put(fmt.Sprintf("doc/%d", i%200), val); err != nil {
			t.Fatal(err)
		}
		written += int64(len(val))
		if res := p.ResidentBytes(); res > lim {
			t.Fatalf("Put %d: resident %d > limit %d", i, res, lim)
		}
		heap := heapObjects()
		peak = max(peak, heap)
		if heap > bound && enforce {
			t.Fatalf("Put %d: heap %.1f MiB > %.1f MiB (test baseline %.1f MiB + 1.1 × limit %.1f MiB + 8 MiB)",
				i, mib(heap), mib(bound), mib(base), mib(lim))
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return peak - base - lim, lim
}

// TestHeapBound is the memory bound of the package documentation, for the
// default page size at small budgets (where the fixed 8 MiB dominates).
func TestHeapBound(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("writes 10× the budget with a full GC after every Put: too slow with -short or -race")
	}
	for _, limitMB := range []float64{16, 32} {
		t.Run(fmt.Sprintf("%vMiB", limitMB), func(t *testing.T) {
			over, lim := heapRun(t, paging.Options{MemoryLimitMB: limitMB}, true)
			t.Logf("limit %.0f MiB: peak heap = baseline + limit + %.1f MiB (allowed %.1f MiB)", mib(lim), mib(over), mib(lim/10+8<<20))
		})
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
