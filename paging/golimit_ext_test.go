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
	if one < 56<<20 || one == math.MaxInt64 {
		t.Fatalf("limit with one 32 MiB pager: %d, want ≥ 1.5 × 32 + 8 MiB", one)
	}
	q, err := paging.Wrap(nil, paging.Options{MemoryLimitMB: 16, StoragePath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if two := debug.SetMemoryLimit(-1); two != one+32<<20 {
		t.Fatalf("limit with a second, 16 MiB pager: %d, want %d + 32 MiB", two, one)
	}
	if err := p.SetMemoryLimit(64 << 20); err != nil {
		t.Fatal(err)
	}
	if grown := debug.SetMemoryLimit(-1); grown != one+32<<20+48<<20 {
		t.Fatalf("limit after the first budget doubled: %d", grown)
	}
	q.Close()
	p.Close()
	if cur := debug.SetMemoryLimit(-1); cur != math.MaxInt64 {
		t.Fatalf("limit after both closed: %d, want none again", cur)
	}
}
