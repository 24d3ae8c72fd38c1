package paging

import (
	"math"
	"testing"
)

// fakeRuntime stands for runtime/debug's memory limit and the environment.
type fakeRuntime struct {
	limit int64
	env   map[string]string
	sets  int
}

func (f *fakeRuntime) limiter(live int64) *goLimiter {
	return &goLimiter{
		setLimit: func(n int64) int64 {
			old := f.limit
			if n >= 0 {
				f.limit = n
				f.sets++
			}
			return old
		},
		liveHeap: func() int64 { return live },
		nonHeap:  func() int64 { return 3 << 20 },
		env: func(k string) (string, bool) {
			v, ok := f.env[k]
			return v, ok
		},
	}
}

func TestGoLimiterRule(t *testing.T) {
	const mb = 1 << 20
	a, b := &Pager{}, &Pager{}
	t.Run("raise with each pager, restore after the last", func(t *testing.T) {
		f := &fakeRuntime{limit: math.MaxInt64}
		g := f.limiter(10 * mb) // 2 MiB beyond the allowance; 3 MiB not heap
		g.update(a, 56*mb)
		if f.limit != 61*mb {
			t.Fatalf("one pager: limit %d MiB, want 2 + 3 + 56", f.limit/mb)
		}
		g.update(b, 20*mb)
		if f.limit != 81*mb {
			t.Fatalf("two pagers: limit %d MiB, want 2 + 3 + 56 + 20", f.limit/mb)
		}
		g.update(a, 30*mb) // a's budget shrank
		if f.limit != 55*mb {
			t.Fatalf("after a shrank: limit %d MiB, want 2 + 3 + 30 + 20", f.limit/mb)
		}
		g.update(a, 0)
		g.update(b, 0)
		if f.limit != math.MaxInt64 || g.limit() != 0 {
			t.Fatalf("after the last Close: limit %d, want none", f.limit)
		}
	})
	t.Run("a limit in force before the first pager is the user's", func(t *testing.T) {
		f := &fakeRuntime{limit: 500 * mb}
		g := f.limiter(0)
		g.update(a, 56*mb)
		g.update(a, 0)
		if f.limit != 500*mb || f.sets != 0 {
			t.Fatalf("limit %d MiB after %d sets, want the user's 500 untouched", f.limit/mb, f.sets)
		}
	})
	t.Run("GOMEMLIMIT in the environment, even off", func(t *testing.T) {
		f := &fakeRuntime{limit: math.MaxInt64, env: map[string]string{"GOMEMLIMIT": "off"}}
		g := f.limiter(0)
		g.update(a, 56*mb)
		if f.sets != 0 {
			t.Fatal("the pager set a limit although GOMEMLIMIT is set")
		}
	})
	t.Run("a limit changed after the pagers set one is the user's from then on", func(t *testing.T) {
		f := &fakeRuntime{limit: math.MaxInt64}
		g := f.limiter(0)
		g.update(a, 56*mb)
		f.limit = 40 * mb // debug.SetMemoryLimit by the program
		g.update(b, 20*mb)
		g.update(a, 0)
		g.update(b, 0)
		if f.limit != 40*mb {
			t.Fatalf("limit %d MiB, want the program's 40 kept", f.limit/mb)
		}
		g.update(a, 56*mb)
		if f.limit != 40*mb {
			t.Fatal("a later pager took the limit back")
		}
	})
}
