package throttle_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cemaf-go/cemaf/throttle"
)

const mb = throttle.MB

// memSample is a sample with this process's anonymous memory at anonMB and
// the effective memory used at pct percent of 4 GiB.
func memSample(at time.Time, anonMB int64, pct float64) *throttle.Sample {
	return &throttle.Sample{Time: at, ProcessAnonBytes: anonMB * mb, ProcessRSSBytes: anonMB*mb + 10*mb,
		MemoryUsedPercent: pct, MemoryTotalBytes: 4096 * mb}
}

func newMemoryGuard(t *testing.T, src throttle.SnapshotSource, opts throttle.MemoryGuardOptions) *throttle.MemoryGuard {
	t.Helper()
	g, err := throttle.NewMemoryGuard(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// evictable records the calls made to it and frees up to holds bytes.
type evictable struct {
	name      string
	log       *[]string
	mu        sync.Mutex
	holds     int64
	last      time.Time
	count     uint64
	asked     []int64
	err       error
	duringFn  func()
	panicking bool
}

func (e *evictable) Evict(n int64) (int64, error) {
	if e.duringFn != nil {
		e.duringFn()
	}
	if e.panicking {
		panic("evict bug")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	*e.log = append(*e.log, e.name)
	e.asked = append(e.asked, n)
	f := min(n, e.holds)
	e.holds -= f
	return f, e.err
}

// askedSoFar returns a copy of the amounts asked, for tests where reclaims
// run on another goroutine.
func (e *evictable) askedSoFar() []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.asked)
}

// The strategy interfaces, on separate types so that a test can pick.
type lruEvictable struct{ *evictable }

func (e lruEvictable) LastAccess() time.Time { return e.last }

type lfuEvictable struct{ *evictable }

func (e lfuEvictable) AccessCount() uint64 { return e.count }

type sizedEvictable struct{ *evictable }

func (e sizedEvictable) ResidentBytes() int64 { e.mu.Lock(); defer e.mu.Unlock(); return e.holds }

type fullEvictable struct{ *evictable }

func (e fullEvictable) LastAccess() time.Time { return e.last }
func (e fullEvictable) AccessCount() uint64   { return e.count }
func (e fullEvictable) ResidentBytes() int64  { e.mu.Lock(); defer e.mu.Unlock(); return e.holds }

func TestMemoryGuardCheck(t *testing.T) {
	src := newStaticSource(nil)
	g := newMemoryGuard(t, src, throttle.MemoryGuardOptions{SoftLimitMB: 300, HardLimitMB: 400, MaxUsedPercent: 90, NoFreeOSMemory: true})
	if err := g.Check(); err != nil {
		t.Errorf("no sample: %v", err)
	}
	tests := []struct {
		name     string
		anon     int64
		pct      float64
		wantHard bool
		wantPct  bool
	}{
		{"under both", 350, 90, false, false},
		{"over hard", 401, 50, true, false},
		{"over percent", 100, 90.5, false, true},
		{"over both", 500, 95, true, true},
	}
	for _, tt := range tests {
		src.set(memSample(epoch, tt.anon, tt.pct))
		err := g.Check()
		if (err != nil) != (tt.wantHard || tt.wantPct) {
			t.Errorf("%s: Check = %v", tt.name, err)
			continue
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, throttle.ErrLimitExceeded) {
			t.Errorf("%s: %v does not match ErrLimitExceeded", tt.name, err)
		}
		msg := err.Error()
		if tt.wantHard != strings.Contains(msg, "memory (process) limit exceeded: "+strconv.FormatInt(tt.anon, 10)+" MB > 400 MB") {
			t.Errorf("%s: message %q", tt.name, msg)
		}
		if tt.wantPct != strings.Contains(msg, "memory (memory_percent) limit exceeded") {
			t.Errorf("%s: message %q", tt.name, msg)
		}
		var le *throttle.LimitError
		if !errors.As(err, &le) || le.Kind != throttle.KindMemory {
			t.Errorf("%s: LimitError %+v", tt.name, le)
		}
	}
}

func TestMemoryGuardEvictionOrder(t *testing.T) {
	now := epoch
	tests := []struct {
		name     string
		strategy throttle.EvictionStrategy
		make     func(log *[]string) []struct {
			e        throttle.Evictable
			priority int
		}
		want string
	}{
		{
			name: "LRU: least recently used first, unknown last", strategy: throttle.EvictLRU,
			make: func(log *[]string) []struct {
				e        throttle.Evictable
				priority int
			} {
				return []struct {
					e        throttle.Evictable
					priority int
				}{
					{&evictable{name: "plain", log: log, holds: 1 << 40}, 0},
					{lruEvictable{&evictable{name: "recent", log: log, holds: 10 * mb, last: now}}, 0},
					{lruEvictable{&evictable{name: "old", log: log, holds: 10 * mb, last: now.Add(-time.Hour)}}, 0},
				}
			},
			want: "old recent plain",
		},
		{
			name: "LFU: least used first", strategy: throttle.EvictLFU,
			make: func(log *[]string) []struct {
				e        throttle.Evictable
				priority int
			} {
				return []struct {
					e        throttle.Evictable
					priority int
				}{
					{lfuEvictable{&evictable{name: "hot", log: log, holds: 10 * mb, count: 1000}}, 0},
					{lfuEvictable{&evictable{name: "cold", log: log, holds: 10 * mb, count: 3}}, 0},
					{lfuEvictable{&evictable{name: "warm", log: log, holds: 1 << 40, count: 50}}, 0},
				}
			},
			want: "cold warm",
		},
		{
			name: "PRIORITY: lowest first, registration order breaks ties", strategy: throttle.EvictPriority,
			make: func(log *[]string) []struct {
				e        throttle.Evictable
				priority int
			} {
				return []struct {
					e        throttle.Evictable
					priority int
				}{
					{&evictable{name: "p5", log: log, holds: 10 * mb}, 5},
					{&evictable{name: "p1a", log: log, holds: 10 * mb}, 1},
					{&evictable{name: "p1b", log: log, holds: 10 * mb}, 1},
					{&evictable{name: "p9", log: log, holds: 1 << 40}, 9},
				}
			},
			want: "p1a p1b p5 p9",
		},
		{
			name: "SIZE: largest first, empty ones skipped", strategy: throttle.EvictSize,
			make: func(log *[]string) []struct {
				e        throttle.Evictable
				priority int
			} {
				return []struct {
					e        throttle.Evictable
					priority int
				}{
					{sizedEvictable{&evictable{name: "small", log: log, holds: 5 * mb}}, 0},
					{sizedEvictable{&evictable{name: "empty", log: log, holds: 0}}, 0},
					{sizedEvictable{&evictable{name: "large", log: log, holds: 30 * mb}}, 0},
					{fullEvictable{&evictable{name: "huge", log: log, holds: 1 << 40}}, 0},
				}
			},
			want: "huge",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log []string
			src := newStaticSource(nil)
			g := newMemoryGuard(t, src, throttle.MemoryGuardOptions{SoftLimitMB: 100, ReclaimMarginMB: 10, Strategy: tt.strategy, NoFreeOSMemory: true})
			for _, r := range tt.make(&log) {
				g.Register(r.e, r.priority)
			}
			// 125 MB used, soft 100, margin 10: reclaim 35 MB.
			g.Observe(memSample(epoch, 125, 10))
			if got := strings.Join(log, " "); got != tt.want {
				t.Errorf("eviction order %q, want %q", got, tt.want)
			}
			if st := g.Stats(); st.FreedBytes != 35*mb || st.Reclaims != 1 {
				t.Errorf("stats %+v, want 35 MB freed in 1 reclaim", st)
			}
		})
	}
}

func TestMemoryGuardReclaimAmounts(t *testing.T) {
	var log []string
	a := &evictable{name: "a", log: &log, holds: 20 * mb}
	b := &evictable{name: "b", log: &log, holds: 100 * mb}
	src := newStaticSource(nil)
	g := newMemoryGuard(t, src, throttle.MemoryGuardOptions{SoftLimitMB: 1000, MaxUsedPercent: 80, Strategy: throttle.EvictPriority, NoFreeOSMemory: true})
	g.Register(a, 1)
	unregister := g.Register(b, 2)

	// 1100 MB over a 1000 MB soft limit with the default 5 % margin (50):
	// 150 MB asked; a frees its 20, b is asked for the other 130.
	s := memSample(epoch, 1100, 10)
	g.Observe(s)
	if len(a.asked) != 1 || a.asked[0] != 150*mb || len(b.asked) != 1 || b.asked[0] != 130*mb {
		t.Errorf("asked a %v, b %v; want 150 MB then 130 MB", a.asked, b.asked)
	}
	g.Observe(s) // not fresh: no second reclaim
	if len(b.asked) != 1 {
		t.Error("a repeated sample caused another reclaim")
	}
	// System memory at 90 % of 4096 MB with MaxUsedPercent 80: down to
	// 76 % (5 % below 80), 14 % of 4096 MB.
	unregister()
	unregister()
	a.holds = 1 << 40
	g.Observe(memSample(epoch.Add(time.Second), 10, 90))
	share := (90 - 80*0.95) / 100
	want := int64(share * 4096 * mb)
	if got := a.asked[len(a.asked)-1]; got < want-1 || got > want+1 {
		t.Errorf("percent reclaim asked %d bytes, want about %d", got, want)
	}
	if len(b.asked) != 1 {
		t.Error("an unregistered Evictable was asked")
	}
	// Under the soft limit and the percentage: nothing.
	n := len(a.asked)
	g.Observe(memSample(epoch.Add(2*time.Second), 999, 79))
	if len(a.asked) != n {
		t.Error("reclaim under the limits")
	}
}

func TestMemoryGuardEvictionFailures(t *testing.T) {
	var log []string
	var g *throttle.MemoryGuard
	reentrant := &evictable{name: "reentrant", log: &log, holds: 1 * mb}
	// Called without the guard's lock: calling back into it must not
	// deadlock.
	reentrant.duringFn = func() {
		_ = g.Stats()
		g.Register(&evictable{name: "late", log: &log}, 0)()
	}
	src := newStaticSource(nil)
	g = newMemoryGuard(t, src, throttle.MemoryGuardOptions{SoftLimitMB: 100, Strategy: throttle.EvictPriority, NoFreeOSMemory: true})
	g.Register(reentrant, 0)
	g.Register(&evictable{name: "panics", log: &log, panicking: true}, 1)
	g.Register(&evictable{name: "fails", log: &log, holds: 2 * mb, err: errors.New("disk full")}, 2)
	g.Register(&evictable{name: "works", log: &log, holds: 1 << 40}, 3)
	freed, err := g.Reclaim(50 * mb)
	var pe *throttle.PanicError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Reclaim error = %v, want the panic and the failure", err)
	}
	if freed != 50*mb || strings.Join(log, " ") != "reentrant fails works" {
		t.Errorf("freed %d, order %v", freed, log)
	}
}

func TestMemoryGuardReclaimIsSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log []string
		release := make(chan struct{})
		slow := &evictable{name: "slow", log: &log, holds: 1 << 40, duringFn: func() { <-release }}
		g := newMemoryGuard(t, newStaticSource(nil), throttle.MemoryGuardOptions{SoftLimitMB: 100, NoFreeOSMemory: true})
		g.Register(slow, 0)
		var first atomic.Int64
		go func() { f, _ := g.Reclaim(10 * mb); first.Store(f) }()
		synctest.Wait()
		if f, err := g.Reclaim(10 * mb); f != 0 || err != nil {
			t.Errorf("concurrent Reclaim = %d, %v; want 0, nil", f, err)
		}
		close(release)
		synctest.Wait()
		if first.Load() != 10*mb {
			t.Errorf("first Reclaim freed %d", first.Load())
		}
	})
}

// TestMemoryGuardAttached runs the guard on a Monitor: reclaims happen on
// the monitor goroutine, Wait pauses work over the hard limit, and Close
// detaches the guard.
func TestMemoryGuardAttached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var anon atomic.Int64
		anon.Store(100)
		src := &scriptedSource{fn: func(now time.Time) (*throttle.Sample, error) { return memSample(now, anon.Load(), 10), nil }}
		m := newMonitor(t, src, throttle.MonitorOptions{CheckInterval: time.Second})
		g, err := throttle.NewMemoryGuard(m, throttle.MemoryGuardOptions{SoftLimitMB: 300, HardLimitMB: 400, NoFreeOSMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		var log []string
		e := &evictable{name: "pager", log: &log, holds: 1 << 40}
		g.Register(e, 0)
		g.Attach(m)
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		defer m.Close()

		ran := false
		if err := g.Protected(context.Background(), func(context.Context) error { ran = true; return nil }); err != nil || !ran {
			t.Fatalf("Protected under the limits = %v, ran %v", err, ran)
		}
		anon.Store(450)
		time.Sleep(time.Second)
		synctest.Wait()
		if asked := e.askedSoFar(); len(asked) != 1 || asked[0] != (450-285)*mb {
			t.Errorf("asked %v, want one reclaim of 165 MB (450 - (300 - 15))", asked)
		}
		var done atomic.Bool
		go func() {
			err := g.Protected(context.Background(), func(context.Context) error { return nil })
			if err != nil {
				t.Error(err)
			}
			done.Store(true)
		}()
		time.Sleep(3 * time.Second)
		if done.Load() {
			t.Fatal("Protected ran over the hard limit")
		}
		anon.Store(350)
		time.Sleep(time.Second)
		synctest.Wait()
		if !done.Load() {
			t.Fatal("Protected still blocked under the hard limit")
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		n := len(e.askedSoFar())
		time.Sleep(5 * time.Second)
		if len(e.askedSoFar()) != n {
			t.Error("reclaims after Close")
		}
	})
}

func TestMemoryGuardProtectedRecoversPanic(t *testing.T) {
	g := newMemoryGuard(t, newStaticSource(nil), throttle.MemoryGuardOptions{})
	var pe *throttle.PanicError
	if err := g.Protected(context.Background(), func(context.Context) error { panic(errors.New("bad chunk")) }); !errors.As(err, &pe) || pe.Op != "MemoryGuard.Protected" {
		t.Errorf("Protected = %v", err)
	}
}

func TestMemoryGuardFreesOSMemory(t *testing.T) {
	var log []string
	g := newMemoryGuard(t, newStaticSource(nil), throttle.MemoryGuardOptions{SoftLimitMB: 10})
	g.Register(&evictable{name: "a", log: &log, holds: 1 * mb}, 0)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	if freed, err := g.Reclaim(mb); freed != mb || err != nil {
		t.Fatalf("Reclaim = %d, %v", freed, err)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if after.NumForcedGC == before.NumForcedGC {
		t.Error("no forced GC after a reclaim that freed memory")
	}
}

func TestMemoryGuardSetGoMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	g, err := throttle.NewMemoryGuard(newStaticSource(nil), throttle.MemoryGuardOptions{SoftLimitMB: 512, SetGoMemoryLimit: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != 512*mb {
		t.Errorf("Go memory limit = %d, want 512 MiB", got)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != prev {
		t.Errorf("Go memory limit after Close = %d, want %d restored", got, prev)
	}
}

func TestNewMemoryGuardRejectsBadOptions(t *testing.T) {
	src := newStaticSource(nil)
	tests := []struct {
		name string
		opts throttle.MemoryGuardOptions
		want string
	}{
		{"soft over hard", throttle.MemoryGuardOptions{SoftLimitMB: 4000, HardLimitMB: 3584}, "SoftLimitMB = 4000 > HardLimitMB = 3584"},
		{"negative soft", throttle.MemoryGuardOptions{SoftLimitMB: -1}, "SoftLimitMB = -1: must be in [0, "},
		{"negative hard", throttle.MemoryGuardOptions{HardLimitMB: -5}, "HardLimitMB = -5"},
		{"margin not under soft", throttle.MemoryGuardOptions{SoftLimitMB: 100, ReclaimMarginMB: 100}, "ReclaimMarginMB = 100: must be < SoftLimitMB (100)"},
		{"percent over 100", throttle.MemoryGuardOptions{MaxUsedPercent: 120}, "MaxUsedPercent = 120: must be in (0, 100]"},
		{"negative percent", throttle.MemoryGuardOptions{HardLimitMB: 10, MaxUsedPercent: -3}, "MaxUsedPercent = -3"},
		{"Go limit without soft", throttle.MemoryGuardOptions{HardLimitMB: 10, SetGoMemoryLimit: true}, "SoftLimitMB = 0"},
		{"unknown strategy", throttle.MemoryGuardOptions{Strategy: 9}, "Strategy = 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := throttle.NewMemoryGuard(src, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "throttle: ") {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	// The zero value guards at 85 % of the effective memory.
	g := newMemoryGuard(t, src, throttle.MemoryGuardOptions{})
	src.set(memSample(epoch, 10, 85.5))
	if err := g.Check(); err == nil {
		t.Error("zero options: 85.5 % used did not trip")
	}
}

func TestParseEvictionStrategy(t *testing.T) {
	for _, s := range []throttle.EvictionStrategy{throttle.EvictLRU, throttle.EvictLFU, throttle.EvictPriority, throttle.EvictSize} {
		got, err := throttle.ParseEvictionStrategy(strings.ToLower(s.String()))
		if err != nil || got != s {
			t.Errorf("ParseEvictionStrategy(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := throttle.ParseEvictionStrategy("FIFO"); err == nil {
		t.Error("accepted FIFO")
	}
}

func TestWriteOOMScoreAdj(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "self/oom_score_adj", "0\n")
	if err := throttle.WriteOOMScoreAdj(root, 1000); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "self", "oom_score_adj")); string(b) != "1000\n" {
		t.Errorf("file holds %q", b)
	}
	if err := throttle.WriteOOMScoreAdj(root, 1001); err == nil || !strings.Contains(err.Error(), "oom_score_adj = 1001: must be in [-1000, 1000]") {
		t.Errorf("out of range: %v", err)
	}
	// A refused write is an error, not a crash.
	bad := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bad, "self", "oom_score_adj"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := throttle.WriteOOMScoreAdj(bad, 500); err == nil || !strings.Contains(err.Error(), "oom_score_adj = 500") {
		t.Errorf("write to a directory: %v", err)
	}
	if err := throttle.WriteOOMScoreAdj(t.TempDir(), 500); err == nil {
		t.Error("write to a missing file succeeded")
	}

	if runtime.GOOS == "linux" {
		// Writing the current value back is always allowed.
		b, err := os.ReadFile("/proc/self/oom_score_adj")
		if err != nil {
			t.Skip(err)
		}
		cur, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		if err := throttle.WriteOOMScoreAdj("", cur); err != nil {
			t.Errorf("rewriting the current value %d: %v", cur, err)
		}
	}
}
