package paging_test

import (
	"testing"

	"github.com/cemaf-go/cemaf/paging"
)

// TestMemoryBound is the memory bound of the package documentation: with
// a 32 MiB budget, writing 10 × the budget of 64 KiB text-like values and
// reading them back in random order, with no GOMEMLIMIT (the pager advises
// the Go memory limit itself):
//
//   - the heap in use (live and garbage) peaks at ≤ 1.5 × budget + 8 MiB,
//   - the process allocates ≤ 1.1 bytes per byte moved (written + read),
//   - the live heap peaks at ≤ budget + 8 MiB, reading with AppendValue
//     into a reused buffer and with Get (which allocates a buffer per
//     miss: the live heap the runtime reports then includes the buffers
//     allocated while each collection marks).
func TestMemoryBound(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("moves 640 MiB through the pager; the race detector's own memory would be measured")
	}
	if _, ok := lookupGoMemLimit(); ok {
		t.Skip("GOMEMLIMIT is set: the pager leaves the Go memory limit to it")
	}
	const budget = 32 << 20
	w := newHeapWorkload(budget, 64<<10)
	for _, mode := range []readMode{readAppendValue, readGet} {
		t.Run(mode.String(), func(t *testing.T) {
			pk := w.runPager(t, paging.Options{}, mode)
			perByte := float64(pk.allocated) / float64(w.moved())
			t.Logf("%v; %.2f bytes allocated per byte moved", pk, perByte)
			if limit := uint64(budget + budget/2 + 8<<20); pk.inUse > limit {
				t.Errorf("peak heap in use %.1f MiB > 1.5 × budget + 8 MiB = %.1f MiB", mib(int64(pk.inUse)), mib(int64(limit)))
			}
			if perByte > 1.1 {
				t.Errorf("%.2f bytes allocated per byte moved, want ≤ 1.1", perByte)
			}
			if limit := uint64(budget + 8<<20); pk.live > limit {
				t.Errorf("peak live heap %.1f MiB > budget + 8 MiB = %.1f MiB", mib(int64(pk.live)), mib(int64(limit)))
			}
		})
	}
}
