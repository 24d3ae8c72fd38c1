package throttle_test

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/throttle"
)

const mb = throttle.MB

// evictable records the calls made to it and frees up to holds bytes.
type evictable struct {
	name      string
	log       *[]string
	mu        sync.Mutex
	holds     int64
	err       error
	panicking bool
	block     chan struct{} // if set, Evict waits for it to close
}

func (e *evictable) Evict(n int64) (int64, error) {
	if e.block != nil {
		<-e.block
	}
	if e.panicking {
		panic("evict bug")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	*e.log = append(*e.log, e.name)
	f := min(n, e.holds)
	e.holds -= f
	return f, e.err
}

type sizedEvictable struct{ *evictable }

func (e sizedEvictable) ResidentBytes() int64 { e.mu.Lock(); defer e.mu.Unlock(); return e.holds }

func newReclaimer(t *testing.T, opts throttle.ReclaimerOptions) *throttle.Reclaimer {
	t.Helper()
	opts.NoFreeOSMemory = true
	r, err := throttle.NewReclaimer(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func anonSample(at time.Time, anonMB int64) *throttle.Sample {
	return &throttle.Sample{Time: at, ProcessAnonBytes: anonMB * mb, ProcessRSSBytes: anonMB*mb + 10*mb, MemoryUsedPercent: 50, MemoryTotalBytes: 4096 * mb}
}

func TestReclaimerOrderAndAmounts(t *testing.T) {
	var log []string
	low := &evictable{name: "low", log: &log, holds: 50 * mb}
	high := &evictable{name: "high", log: &log, holds: 500 * mb}
	empty := sizedEvictable{&evictable{name: "empty", log: &log}}
	r := newReclaimer(t, throttle.ReclaimerOptions{SoftLimitMB: 1000, MarginMB: 100})
	r.Register(high, 10)
	r.Register(empty, 0)
	unregister := r.Register(low, 1)
	r.Observe(anonSample(epoch, 900)) // under the soft limit: nothing
	require.Empty(t, log)
	r.Observe(anonSample(epoch.Add(time.Second), 1100)) // asks for 1100 − 900 = 200 MB
	require.Equal(t, []string{"low", "high"}, log, "lowest priority first; an empty one is not asked")
	require.Equal(t, int64(0), low.holds)
	require.Equal(t, int64(350*mb), high.holds)
	r.Observe(anonSample(epoch.Add(time.Second), 1100)) // not fresh
	require.Len(t, log, 2)
	unregister()
	unregister()
	st := r.Stats()
	require.Equal(t, throttle.ReclaimerStats{Reclaims: 1, FreedBytes: 200 * mb, Registered: 2, SoftLimitMB: 1000}, st)
}

func TestReclaimerEvictionFailures(t *testing.T) {
	var log []string
	bad := &evictable{name: "bad", log: &log, panicking: true}
	failing := &evictable{name: "failing", log: &log, holds: 10 * mb, err: errors.New("disk full")}
	good := &evictable{name: "good", log: &log, holds: 100 * mb}
	r := newReclaimer(t, throttle.ReclaimerOptions{SoftLimitMB: 100})
	r.Register(bad, 0)
	r.Register(failing, 1)
	r.Register(good, 2)
	freed, err := r.Reclaim(50 * mb)
	require.Equal(t, int64(50*mb), freed)
	var pe *throttle.PanicError
	require.ErrorAs(t, err, &pe)
	require.ErrorContains(t, err, "disk full")
	require.Equal(t, []string{"failing", "good"}, log)
}

func TestReclaimerIsSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log []string
		slow := &evictable{name: "slow", log: &log, holds: 100 * mb, block: make(chan struct{})}
		r := newReclaimer(t, throttle.ReclaimerOptions{SoftLimitMB: 100})
		r.Register(slow, 0)
		done := make(chan int64)
		go func() { f, _ := r.Reclaim(10 * mb); done <- f }()
		synctest.Wait()
		freed, err := r.Reclaim(10 * mb)
		require.NoError(t, err)
		require.Zero(t, freed, "a second reclaim while one runs returns at once")
		close(slow.block)
		require.Equal(t, int64(10*mb), <-done)
	})
}

func TestReclaimerAttached(t *testing.T) {
	var anon int64 = 3200
	var mu sync.Mutex
	src := &scriptedSource{fn: func(now time.Time) (*throttle.Sample, error) {
		mu.Lock()
		defer mu.Unlock()
		return anonSample(now, anon), nil
	}}
	m, err := throttle.NewMonitor(src, throttle.MonitorOptions{})
	require.NoError(t, err)
	var log []string
	e := &evictable{name: "pager", log: &log, holds: 1 << 40}
	r := newReclaimer(t, throttle.ReclaimerOptions{SoftLimitMB: 3072})
	r.Register(e, 0)
	detach := r.Attach(m)
	require.NoError(t, m.Start())
	require.NoError(t, m.Close())
	require.Equal(t, []string{"pager"}, log)
	detach()
	require.NoError(t, r.Close())
	require.NoError(t, r.Close())
	r.Observe(anonSample(epoch.Add(time.Hour), 9000))
	require.Len(t, log, 1, "closed: Observe does nothing")
	require.NotNil(t, r.Attach(m))
}

func TestNewReclaimerRejectsBadOptions(t *testing.T) {
	for _, tt := range []struct {
		opts throttle.ReclaimerOptions
		want string
	}{
		{throttle.ReclaimerOptions{}, "SoftLimitMB = 0: must be in [1, "},
		{throttle.ReclaimerOptions{SoftLimitMB: -5}, "SoftLimitMB = -5"},
		{throttle.ReclaimerOptions{SoftLimitMB: 10, MarginMB: 10}, "MarginMB = 10: must be in [0, 10)"},
		{throttle.ReclaimerOptions{SoftLimitMB: 10, MarginMB: -1}, "MarginMB = -1"},
	} {
		_, err := throttle.NewReclaimer(tt.opts)
		require.ErrorContains(t, err, tt.want)
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
