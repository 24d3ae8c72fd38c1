package throttle_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/throttle"
)

var (
	_ throttle.Guard          = (*throttle.CPUGuard)(nil)
	_ throttle.Guard          = (*throttle.DiskGuard)(nil)
	_ throttle.Guard          = (*throttle.MemoryGuard)(nil)
	_ throttle.Guard          = (*throttle.CompositeGuard)(nil)
	_ throttle.Guard          = (*throttle.CPUThrottler)(nil)
	_ executor.Gate           = (*throttle.CompositeGuard)(nil)
	_ executor.Checker        = (*throttle.CompositeGuard)(nil)
	_ executor.Gate           = (*throttle.MemoryGuard)(nil)
	_ executor.Checker        = (*throttle.MemoryGuard)(nil)
	_ throttle.SampleSource   = (*throttle.Sampler)(nil)
	_ throttle.SnapshotSource = (*throttle.Monitor)(nil)
	_ throttle.Subscriber     = (*throttle.Monitor)(nil)
)

func TestCPUGuard(t *testing.T) {
	src := newStaticSource(nil)
	g, err := throttle.NewCPUGuard(src, throttle.CPUGuardOptions{MaxPercent: 80})
	if err != nil {
		t.Fatal(err)
	}
	pg, err := throttle.NewCPUGuard(src, throttle.CPUGuardOptions{MaxPercent: 30, Process: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Check(); err != nil {
		t.Errorf("no sample yet: Check = %v", err)
	}
	s := sampleAt(epoch, 80, 10)
	s.ProcessCPUPercent = 31
	src.set(s)
	if err := g.Check(); err != nil {
		t.Errorf("at the limit: Check = %v", err)
	}
	var le *throttle.LimitError
	if err := pg.Check(); !errors.As(err, &le) || le.Subject != throttle.SignalProcessCPUPercent || le.Current != 31 || le.Limit != 30 {
		t.Errorf("process guard: Check = %v", err)
	}
	src.set(sampleAt(epoch, 80.5, 10))
	if err := g.Check(); !errors.As(err, &le) || le.Kind != throttle.KindCPU || le.Current != 80.5 || le.Limit != 80 || le.Unit != "%" {
		t.Errorf("over: Check = %v", err)
	}
}

func TestDiskGuard(t *testing.T) {
	s := &throttle.Sample{Time: epoch, Disks: []throttle.DiskUsage{{Path: "/", UsedPercent: 50}, {Path: "/data", UsedPercent: 96}}}
	src := newStaticSource(s)
	tests := []struct {
		path    string
		max     float64
		tripped string
	}{
		{"", 0, "/data"},         // default 95, fullest path
		{"/", 0, ""},             // this path is fine
		{"/data", 97, ""},        // under a higher limit
		{"/mnt/usb", 0, ""},      // not sampled: does not trip
		{"/data", 95.5, "/data"}, // over
		{"", 40, "/"},            // the first path over the limit
	}
	for _, tt := range tests {
		g, err := throttle.NewDiskGuard(src, throttle.DiskGuardOptions{Path: tt.path, MaxPercent: tt.max})
		if err != nil {
			t.Fatal(err)
		}
		err = g.Check()
		var le *throttle.LimitError
		if tt.tripped == "" {
			if err != nil {
				t.Errorf("path %q max %v: Check = %v, want nil", tt.path, tt.max, err)
			}
			continue
		}
		if !errors.As(err, &le) || le.Kind != throttle.KindDisk || le.Subject != tt.tripped {
			t.Errorf("path %q max %v: Check = %v, want a disk limit on %s", tt.path, tt.max, err, tt.tripped)
		}
	}
}

func TestGuardWaitNeedsFreshOKSample(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newStaticSource(sampleAt(time.Now(), 95, 10))
		g, err := throttle.NewCPUGuard(src, throttle.CPUGuardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var done atomic.Bool
		go func() {
			if err := g.Wait(context.Background()); err != nil {
				t.Error(err)
			}
			done.Store(true)
		}()
		synctest.Wait()
		src.set(sampleAt(time.Now(), 93, 10))
		synctest.Wait()
		if done.Load() {
			t.Fatal("Wait returned on a sample still over the limit")
		}
		src.set(sampleAt(time.Now(), 40, 10))
		synctest.Wait()
		if !done.Load() {
			t.Fatal("Wait still blocked after a healthy sample")
		}

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		src.set(sampleAt(time.Now(), 99, 10))
		if err := g.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait = %v, want the context's error", err)
		}
	})
}

func TestNewGuardsRejectBadOptions(t *testing.T) {
	src := newStaticSource(nil)
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"cpu over 100", func() error {
			_, err := throttle.NewCPUGuard(src, throttle.CPUGuardOptions{MaxPercent: 150})
			return err
		}(),
			"CPUGuardOptions.MaxPercent = 150: must be in (0, 100]"},
		{"cpu negative", func() error {
			_, err := throttle.NewCPUGuard(src, throttle.CPUGuardOptions{MaxPercent: -1})
			return err
		}(),
			"CPUGuardOptions.MaxPercent = -1"},
		{"cpu nil source", func() error { _, err := throttle.NewCPUGuard(nil, throttle.CPUGuardOptions{}); return err }(), "src is nil"},
		{"disk over 100", func() error {
			_, err := throttle.NewDiskGuard(src, throttle.DiskGuardOptions{MaxPercent: 100.5})
			return err
		}(),
			"DiskGuardOptions.MaxPercent = 100.5"},
		{"disk nil source", func() error { _, err := throttle.NewDiskGuard(nil, throttle.DiskGuardOptions{}); return err }(), "src is nil"},
	} {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, tt.err, tt.want)
		}
	}
}

// fakeGuard is a Guard whose state the test sets.
type fakeGuard struct {
	mu      sync.Mutex
	err     error
	changed chan struct{}
	waits   atomic.Int32
}

func newFakeGuard(err error) *fakeGuard { return &fakeGuard{err: err, changed: make(chan struct{})} }

func (g *fakeGuard) set(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.err = err
	close(g.changed)
	g.changed = make(chan struct{})
}

func (g *fakeGuard) Check() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

func (g *fakeGuard) Wait(ctx context.Context) error {
	g.waits.Add(1)
	for {
		g.mu.Lock()
		err, ch := g.err, g.changed
		g.mu.Unlock()
		if err == nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

func tripped(name string) error {
	return &throttle.LimitError{Kind: throttle.KindCPU, Subject: name, Current: 2, Limit: 1}
}

func TestCompositeGuardStrategies(t *testing.T) {
	tests := []struct {
		name     string
		opts     throttle.CompositeOptions
		tripped  []bool
		wantTrip []string // nil: not tripped
	}{
		{"any, none tripped", throttle.CompositeOptions{}, []bool{false, false, false}, nil},
		{"any, one tripped", throttle.CompositeOptions{}, []bool{false, true, false}, []string{"b"}},
		{"any, two tripped: both reported", throttle.CompositeOptions{}, []bool{true, false, true}, []string{"a", "c"}},
		{"all, two of three", throttle.CompositeOptions{Strategy: throttle.CompositeAll}, []bool{true, true, false}, nil},
		{"all, three of three", throttle.CompositeOptions{Strategy: throttle.CompositeAll}, []bool{true, true, true}, []string{"a", "b", "c"}},
		{"2-of-3, one", throttle.CompositeOptions{Strategy: throttle.CompositeKOfN, K: 2}, []bool{false, false, true}, nil},
		{"2-of-3, two", throttle.CompositeOptions{Strategy: throttle.CompositeKOfN, K: 2}, []bool{true, false, true}, []string{"a", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var members []throttle.CompositeMember
			for i, tr := range tt.tripped {
				name := string(rune('a' + i))
				var err error
				if tr {
					err = tripped(name)
				}
				members = append(members, throttle.CompositeMember{Name: name, Guard: newFakeGuard(err)})
			}
			g, err := throttle.NewCompositeGuard(members, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = g.Check()
			if tt.wantTrip == nil {
				if err != nil {
					t.Errorf("Check = %v, want nil", err)
				}
				return
			}
			var ce *throttle.CompositeError
			if !errors.As(err, &ce) || strings.Join(ce.Names(), ",") != strings.Join(tt.wantTrip, ",") {
				t.Fatalf("Check = %v, want members %v", err, tt.wantTrip)
			}
			if !errors.Is(err, throttle.ErrLimitExceeded) {
				t.Error("errors.Is(ErrLimitExceeded) fails")
			}
			var le *throttle.LimitError
			if !errors.As(err, &le) || le.Subject != tt.wantTrip[0] {
				t.Errorf("errors.As(*LimitError) = %+v", le)
			}
			if !strings.Contains(err.Error(), tt.wantTrip[0]+": cpu ("+tt.wantTrip[0]+") limit exceeded") {
				t.Errorf("message %q", err)
			}
		})
	}
}

func TestCompositeGuardMatchesLimitErrorForAnyMember(t *testing.T) {
	g, err := throttle.NewCompositeGuard([]throttle.CompositeMember{{Name: "odd", Guard: newFakeGuard(errors.New("not a limit error"))}}, throttle.CompositeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Check(); !errors.Is(err, throttle.ErrLimitExceeded) {
		t.Errorf("Check = %v, want it to match ErrLimitExceeded", err)
	}
}

func TestCompositeGuardWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, c := newFakeGuard(tripped("a")), newFakeGuard(tripped("b")), newFakeGuard(nil)
		members := []throttle.CompositeMember{{Name: "a", Guard: a}, {Name: "b", Guard: b}, {Name: "c", Guard: c}}
		any, _ := throttle.NewCompositeGuard(members, throttle.CompositeOptions{})
		all, _ := throttle.NewCompositeGuard(members[:2], throttle.CompositeOptions{Strategy: throttle.CompositeAll})

		var anyDone, allDone atomic.Bool
		go func() { _ = any.Wait(context.Background()); anyDone.Store(true) }()
		go func() { _ = all.Wait(context.Background()); allDone.Store(true) }()
		synctest.Wait()
		if anyDone.Load() || allDone.Load() {
			t.Fatal("Wait returned while tripped")
		}
		b.set(nil) // "all" needs only one member to clear; "any" needs both
		synctest.Wait()
		if !allDone.Load() {
			t.Error("all: Wait still blocked after a member cleared")
		}
		if anyDone.Load() {
			t.Error("any: Wait returned with member a still tripped")
		}
		a.set(nil)
		synctest.Wait()
		if !anyDone.Load() {
			t.Error("any: Wait still blocked after every member cleared")
		}

		// Context end with concurrent member waits: every goroutine is
		// joined before Wait returns (the bubble would report a leak).
		a.set(tripped("a"))
		b.set(tripped("b"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := all.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("all.Wait = %v, want DeadlineExceeded", err)
		}
	})
}

// TestCompositeGuardTakesOneProbe checks that a composite over a half-open
// breaker asks it for one probe admission, not one per loop.
func TestCompositeGuardTakesOneProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, throttle.BreakerOptions{Thresholds: map[string]float64{"cpu_percent": 90}, HalfOpenProbes: 1})
		b.Observe(cpuSample(time.Now(), 99))
		time.Sleep(30 * time.Second)
		b.Observe(cpuSample(time.Now(), 10)) // half-open
		other := newFakeGuard(tripped("other"))
		g, _ := throttle.NewCompositeGuard([]throttle.CompositeMember{{Name: "breaker", Guard: b}, {Name: "other", Guard: other}}, throttle.CompositeOptions{})
		var done atomic.Bool
		go func() {
			if err := g.Wait(context.Background()); err != nil {
				t.Error(err)
			}
			done.Store(true)
		}()
		synctest.Wait()
		if st := b.Status(); st.Probes != 1 {
			t.Errorf("breaker admitted %d probes, want 1", st.Probes)
		}
		other.set(nil)
		synctest.Wait()
		if !done.Load() {
			t.Error("Wait did not return once the other member cleared")
		}
	})
}

func TestNewCompositeGuardRejectsBadInput(t *testing.T) {
	ok := newFakeGuard(nil)
	two := []throttle.CompositeMember{{Name: "a", Guard: ok}, {Name: "b", Guard: ok}}
	tests := []struct {
		name    string
		members []throttle.CompositeMember
		opts    throttle.CompositeOptions
		want    string
	}{
		{"no members", nil, throttle.CompositeOptions{}, "no members"},
		{"unnamed", []throttle.CompositeMember{{Guard: ok}}, throttle.CompositeOptions{}, "members[0].Name is empty"},
		{"duplicate", []throttle.CompositeMember{{Name: "a", Guard: ok}, {Name: "a", Guard: ok}}, throttle.CompositeOptions{}, `members[1].Name = "a": duplicate`},
		{"nil guard", []throttle.CompositeMember{{Name: "a"}}, throttle.CompositeOptions{}, `members[0].Guard ("a") is nil`},
		{"k zero", two, throttle.CompositeOptions{Strategy: throttle.CompositeKOfN}, "K = 0: must be in [1, 2]"},
		{"k too big", two, throttle.CompositeOptions{Strategy: throttle.CompositeKOfN, K: 3}, "K = 3: must be in [1, 2]"},
		{"unknown strategy", two, throttle.CompositeOptions{Strategy: 7}, "Strategy = 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := throttle.NewCompositeGuard(tt.members, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseCompositeStrategy(t *testing.T) {
	for _, s := range []throttle.CompositeStrategy{throttle.CompositeAny, throttle.CompositeAll, throttle.CompositeKOfN} {
		got, err := throttle.ParseCompositeStrategy(" " + strings.ToUpper(s.String()) + " ")
		if err != nil || got != s {
			t.Errorf("ParseCompositeStrategy(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := throttle.ParseCompositeStrategy("most"); err == nil {
		t.Error("accepted \"most\"")
	}
}

func TestStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newFakeGuard(nil)
		items := func(yield func(int) bool) {
			for i := range 5 {
				if i == 2 {
					g.set(tripped("memory"))
					go func() { time.Sleep(time.Second); g.set(nil) }()
				}
				if !yield(i) {
					return
				}
			}
		}
		start := time.Now()
		var got []int
		for v, err := range throttle.Stream(context.Background(), g, items) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		if len(got) != 5 || got[4] != 4 {
			t.Errorf("got %v", got)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Errorf("paused %v between items, want 1s", waited)
		}

		// A wait that fails ends the stream with the error.
		g.set(tripped("memory"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var errs, vals int
		for _, err := range throttle.Stream(ctx, g, func(yield func(int) bool) { _ = yield(1) && yield(2) }) {
			if err != nil {
				errs++
			} else {
				vals++
			}
		}
		if errs != 1 || vals != 0 {
			t.Errorf("%d errors and %d values, want 1 error and nothing else", errs, vals)
		}
	})
}
