package paging

import (
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// The Go memory limit (runtime/debug.SetMemoryLimit) is what bounds the
// process's heap, garbage included: without one, the garbage collector
// lets the heap grow to twice the live heap (GOGC=100) before collecting.
// A pager advises it so that its budget bounds the process, not only its
// cache. The limit is process-wide, so the pagers of a process coordinate
// through goLimits, the package's only process-wide state (it mirrors the
// runtime's own). The rule:
//
//   - Each open pager advises a heap of 1.3 × its budget + 8 MiB
//     (goLimitAdvice). The limit set is the sum of the advice of the open
//     pagers, plus the live heap outside them beyond 8 MiB (measured when
//     the first one opened), plus the runtime's memory that is not heap
//     objects (metadata, stacks, span fragmentation; measured at each
//     change), which the Go limit counts and the heap bound does not.
//   - The pagers never touch a limit they did not set: if GOMEMLIMIT is in
//     the environment (any value, "off" included), or a limit is in force
//     when the first pager opens, or the limit changes from the one they
//     set, whoever set it is in charge and the pagers leave it alone for
//     the rest of the process's life.
//   - The limit follows the pagers: it is raised when one opens or its
//     budget grows, lowered when one closes or its budget shrinks, and
//     restored to what it was before the first pager set it when the last
//     one closes.
//   - Options.LeaveGoMemoryLimit opts a pager out.

// goLimitAdvice is the heap a pager with the given budget advises: the
// budget, a fixed working set, and headroom for garbage. It stays below
// the 1.5 × budget + 8 MiB the package promises for the heap in use, so
// that what the collector lets through while it marks fits.
func goLimitAdvice(budget int64) int64 { return budget + budget*3/10 + 8<<20 }

// ownHeapAllowance is the live heap outside the pagers that the pagers'
// advice already covers (its fixed 8 MiB): only the excess is added.
const ownHeapAllowance = 8 << 20

// goLimiter coordinates the Go memory limit among the pagers of a process.
type goLimiter struct {
	// setLimit is debug.SetMemoryLimit; liveHeap reports the live heap
	// and nonHeap the runtime's memory that is not heap objects.
	setLimit func(int64) int64
	liveHeap func() int64
	nonHeap  func() int64
	env      func(string) (string, bool)

	// mu guards the fields below.
	mu     sync.Mutex
	advice map[*Pager]int64
	// owned: the pagers set the limit now, to set; prev is the limit they
	// found. other is the live heap outside pagers when they took it.
	owned bool
	set   int64
	prev  int64
	other int64
	// foreign: someone else sets the limit; the pagers never touch it.
	foreign bool
}

// goLimits is the coordinator of this process's pagers.
var goLimits = &goLimiter{setLimit: debug.SetMemoryLimit, liveHeap: liveHeap, nonHeap: nonHeap, env: os.LookupEnv}

// liveHeap is the live heap as of the latest collection (before the first
// one, the heap in use).
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if v := s[0].Value.Uint64(); v > 0 {
		return int64(v)
	}
	return int64(s[1].Value.Uint64())
}

// nonHeap is the memory the Go limit counts beyond heap objects and free
// heap spans: runtime metadata, stacks, profiling buckets, fragmentation
// inside spans.
func nonHeap() int64 {
	s := []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(s)
	n := int64(s[0].Value.Uint64()) - int64(s[1].Value.Uint64()) - int64(s[2].Value.Uint64()) - int64(s[3].Value.Uint64())
	return max(0, n)
}

// update records p's advice (0: p leaves) and applies the rule.
func (g *goLimiter) update(p *Pager, advice int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if advice > 0 {
		if g.advice == nil {
			g.advice = make(map[*Pager]int64)
		}
		g.advice[p] = advice
	} else {
		delete(g.advice, p)
	}
	if g.foreign {
		return
	}
	if _, ok := g.env("GOMEMLIMIT"); ok {
		g.foreign = true
		return
	}
	cur := g.setLimit(-1)
	switch {
	case g.owned && cur != g.set, !g.owned && cur != math.MaxInt64:
		g.foreign, g.owned = true, false
		return
	}
	if len(g.advice) == 0 {
		if g.owned {
			g.setLimit(g.prev)
			g.owned = false
		}
		return
	}
	if !g.owned {
		g.owned, g.prev, g.other = true, cur, g.liveHeap()
	}
	want := max(0, g.other-ownHeapAllowance) + g.nonHeap()
	for _, a := range g.advice {
		want += a
	}
	g.set = want
	g.setLimit(want)
}

// limit returns the limit the pagers set, or 0 if they set none.
func (g *goLimiter) limit() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.owned {
		return 0
	}
	return g.set
}
