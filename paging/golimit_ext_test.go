package paging_test

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/cemaf-go/cemaf/paging"
)

// The process's Go memory limit follows the open pagers and is restored
// when they close; a pager with LeaveGoMemoryLimit does not touch it.
func TestGoMemoryLimitFollowsPagers(t *testing.T) {
	if _, ok := lookupGoMemLimit(); ok {
		t.Skip("GOMEMLIMIT is set: the pagers leave the limit alone")
	}
	if cur := debug.SetMemoryLimit(-1); cur != math.MaxInt64 {
		t.Skipf("a Go memory limit (%d) is already in force", cur)
	}
	p := open(t, paging.Options{MemoryLimitMB: 32, LeaveGoMemoryLimit: true})
	if cur := debug.SetMemoryLimit(-1); cur != math.MaxInt64 {
		t.Fatalf("opted-out pager set the limit to %d", cur)
	}
	p.Close()
	p, err := paging.Wrap(nil, paging.Options{MemoryLimitMB: 32, StoragePath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	one := debug.SetMemoryLimit(-1)
	if one < 49<<20 || one > 76<<20 {
		t.Fatalf("limit with one 32 MiB pager: %d, want 1.3 × 32 + 8 MiB and the runtime's own memory", one)
	}
	q, err := paging.Wrap(nil, paging.Options{MemoryLimitMB: 16, StoragePath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// The runtime's own memory is measured anew at each change: compare
	// within 4 MiB.
	near := func(got, want int64) bool { return got > want-4<<20 && got < want+4<<20 }
	adv16 := int64(16<<20 + 16<<20*3/10 + 8<<20)
	if two := debug.SetMemoryLimit(-1); !near(two, one+adv16) {
		t.Fatalf("limit with a second, 16 MiB pager: %d, want about %d + %d", two, one, adv16)
	}
	if err := p.SetMemoryLimit(64 << 20); err != nil {
		t.Fatal(err)
	}
	if grown := debug.SetMemoryLimit(-1); !near(grown, one+adv16+32<<20*13/10) {
		t.Fatalf("limit after the first budget doubled: %d", grown)
	}
	q.Close()
	p.Close()
	if cur := debug.SetMemoryLimit(-1); cur != math.MaxInt64 {
		t.Fatalf("limit after both closed: %d, want none again", cur)
	}
}
