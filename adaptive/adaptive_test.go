package adaptive_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/throttle"
)

// script is a throttle.SampleSource whose values the test sets.
type script struct {
	mu                  sync.Mutex
	mem, temp, diskUsed float64
}

func (s *script) set(mem, temp, disk float64) {
	s.mu.Lock()
	s.mem, s.temp, s.diskUsed = mem, temp, disk
	s.mu.Unlock()
}

func (s *script) Sample(now time.Time) (*throttle.Sample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &throttle.Sample{
		Time:              now,
		MemoryUsedPercent: s.mem,
		MemoryTotalBytes:  4 << 30,
		Disks:             []throttle.DiskUsage{{Path: "/data", UsedPercent: s.diskUsed}},
		Signals:           []throttle.SignalValue{{Name: throttle.SignalTemperatureC, Unit: "°C", Value: s.temp}},
	}, nil
}

// fakePager records the limits the adaptive executor sets.
type fakePager struct {
	mu    sync.Mutex
	limit int64
}

func (p *fakePager) MemoryLimit() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit
}

func (p *fakePager) SetMemoryLimit(b int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit = b
	return nil
}

// observed is what one run of probe nodes shows about the adaptations in
// effect.
type observed struct {
	peak     int64
	minGap   time.Duration // smallest gap between consecutive node starts
	logLevel slog.Level
}

// probe runs 8 independent nodes of 200 ms and measures the peak
// concurrency and the gaps between node starts.
func probe(t *testing.T, a *adaptive.Executor, level *slog.LevelVar) observed {
	t.Helper()
	var running, peak atomic.Int64
	var mu sync.Mutex
	var starts []time.Time
	var nodes []dag.Node
	for i := range 8 {
		nodes = append(nodes, dag.Node{ID: strconv.Itoa(i), Run: func(context.Context, dag.State) error {
			mu.Lock()
			starts = append(starts, time.Now())
			mu.Unlock()
			cur := running.Add(1)
			for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
			}
			time.Sleep(200 * time.Millisecond)
			running.Add(-1)
			return nil
		}})
	}
	g, err := dag.New(nodes...)
	require.NoError(t, err)
	_, err = a.Run(context.Background(), g, dag.NewMemoryState())
	require.NoError(t, err)
	o := observed{peak: peak.Load(), minGap: time.Hour, logLevel: level.Level()}
	for k := 1; k < len(starts); k++ {
		o.minGap = min(o.minGap, starts[k].Sub(starts[k-1]))
	}
	return o
}

// TestModesDriveAdaptations follows a scripted sequence of samples through
// a real Monitor on virtual time: normal → low_memory → high_temp →
// low_disk → normal, observing at each step the adaptation in effect on real
// nodes.
func TestModesDriveAdaptations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &script{}
		src.set(40, 45, 50)
		mon, err := throttle.NewMonitor(src, throttle.MonitorOptions{CheckInterval: time.Second})
		require.NoError(t, err)
		base, err := executor.New(executor.Options{Limits: executor.Limits{CPU: 4}})
		require.NoError(t, err)
		level := new(slog.LevelVar)
		pager := &fakePager{limit: 256 << 20}
		a, err := adaptive.New(base, adaptive.Options{TransitionPeriod: 5 * time.Second, LogLevel: level, Pager: pager})
		require.NoError(t, err)
		var changes []adaptive.ModeChange
		a.OnModeChange(func(c adaptive.ModeChange) { changes = append(changes, c) })
		a.Attach(mon)
		require.NoError(t, mon.Start())
		defer mon.Close()
		defer a.Close()

		// step sets the signals and lets the monitor take a few samples.
		step := func(mem, temp, disk float64, d time.Duration) {
			src.set(mem, temp, disk)
			time.Sleep(d)
			synctest.Wait()
		}

		// normal
		assert.Equal(t, adaptive.Normal, a.CurrentMode())
		o := probe(t, a, level)
		assert.EqualValues(t, 4, o.peak)
		assert.Zero(t, o.minGap, "nodes start together")
		assert.Equal(t, slog.LevelInfo, o.logLevel)

		// low_memory: one node at a time, the pager at half its budget.
		step(90, 45, 50, 2*time.Second)
		assert.Equal(t, adaptive.LowMemory, a.CurrentMode())
		o = probe(t, a, level)
		assert.EqualValues(t, 1, o.peak)
		assert.EqualValues(t, 128<<20, pager.MemoryLimit())

		// high_temp: memory recovered, the board heats up. Memory pressure
		// lasts its 5 s transition period, then only heat remains.
		step(50, 78, 50, 7*time.Second)
		assert.Equal(t, adaptive.HighTemp, a.CurrentMode())
		st := a.Status()
		require.Len(t, st.Active, 1, "memory pressure has ended: %v", st.Active)
		o = probe(t, a, level)
		assert.GreaterOrEqual(t, o.minGap, 100*time.Millisecond, "100 ms between node starts")
		assert.Greater(t, o.peak, int64(1), "parallelism is back")
		assert.EqualValues(t, 256<<20, pager.MemoryLimit(), "the pager's budget is restored")

		// low_disk: quiet logs.
		step(50, 45, 95, 7*time.Second)
		assert.Equal(t, adaptive.LowDisk, a.CurrentMode())
		o = probe(t, a, level)
		assert.Equal(t, slog.LevelWarn, o.logLevel)
		assert.Zero(t, o.minGap)

		// normal again: everything undone.
		step(50, 45, 50, 7*time.Second)
		assert.Equal(t, adaptive.Normal, a.CurrentMode())
		o = probe(t, a, level)
		assert.EqualValues(t, 4, o.peak)
		assert.Zero(t, o.minGap)
		assert.Equal(t, slog.LevelInfo, o.logLevel)

		var path []adaptive.Mode
		for _, c := range changes {
			path = append(path, c.To)
		}
		assert.Equal(t, []adaptive.Mode{adaptive.LowMemory, adaptive.HighTemp, adaptive.LowDisk, adaptive.Normal}, path)
		assert.Contains(t, changes[0].Reason, "memory_percent 90.0 ≥ 80.0")
		assert.Equal(t, 1, changes[0].Settings.MaxParallel)
		assert.Len(t, a.History(), 4)
	})
}

// A value wobbling ±1 around the threshold every sample for 10 minutes
// enters the mode once and never flaps; a swing within the margin after
// the transition period does not end it either.
func TestNoFlappingAroundThreshold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &script{}
		src.set(40, 40, 40)
		mon, err := throttle.NewMonitor(src, throttle.MonitorOptions{CheckInterval: time.Second})
		require.NoError(t, err)
		base, err := executor.New(executor.Options{Limits: executor.Limits{CPU: 4}})
		require.NoError(t, err)
		a, err := adaptive.New(base, adaptive.Options{TransitionPeriod: 30 * time.Second})
		require.NoError(t, err)
		var changes atomic.Int32
		a.OnModeChange(func(adaptive.ModeChange) { changes.Add(1) })
		a.Attach(mon)
		require.NoError(t, mon.Start())
		defer mon.Close()
		defer a.Close()

		for i := range 600 {
			src.set(80+float64(i%2*2-1), 40, 40) // 79, 81, 79, …
			time.Sleep(time.Second)
			synctest.Wait()
		}
		assert.EqualValues(t, 1, changes.Load(), "entered low_memory once, never left")
		assert.Equal(t, adaptive.LowMemory, a.CurrentMode())
		assert.Equal(t, 1, base.Limits().CPU)

		// Inside the margin (80 × 0.95 = 76): still low memory after minutes.
		for i := range 120 {
			src.set(77+float64(i%2), 40, 40)
			time.Sleep(time.Second)
			synctest.Wait()
		}
		assert.Equal(t, adaptive.LowMemory, a.CurrentMode())
		assert.EqualValues(t, 1, changes.Load())

		// Below the margin for the transition period: back to normal, once.
		src.set(60, 40, 40)
		time.Sleep(29 * time.Second)
		synctest.Wait()
		assert.Equal(t, adaptive.Normal, a.CurrentMode(), "last over-threshold sample was long ago")
		assert.EqualValues(t, 2, changes.Load())
		assert.Equal(t, 4, base.Limits().CPU)
	})
}

func TestSimultaneousPressures(t *testing.T) {
	base, err := executor.New(executor.Options{Limits: executor.Limits{CPU: 4}})
	require.NoError(t, err)
	level := new(slog.LevelVar)
	a, err := adaptive.New(base, adaptive.Options{LogLevel: level})
	require.NoError(t, err)
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	a.Observe(&throttle.Sample{Time: t0, MemoryUsedPercent: 92, MemoryTotalBytes: 4 << 30, Disks: []throttle.DiskUsage{{Path: "/", UsedPercent: 97}},
		Signals: []throttle.SignalValue{{Name: throttle.SignalTemperatureC, Value: 81}}})
	st := a.Status()
	assert.Equal(t, adaptive.HighTemp, st.Mode, "heat has the highest priority")
	require.Len(t, st.Active, 3)
	assert.Equal(t, []adaptive.Mode{adaptive.HighTemp, adaptive.LowMemory, adaptive.LowDisk},
		[]adaptive.Mode{st.Active[0].Mode, st.Active[1].Mode, st.Active[2].Mode})
	// Every active pressure's adaptation applies.
	assert.Equal(t, 1, base.Limits().CPU)
	assert.Equal(t, 100*time.Millisecond, base.InterNodeDelay())
	assert.Equal(t, slog.LevelWarn, level.Level())

	// A stale sample (not newer) is ignored.
	a.Observe(&throttle.Sample{Time: t0, MemoryUsedPercent: 10, MemoryTotalBytes: 4 << 30})
	assert.Len(t, a.Status().Active, 3)

	require.NoError(t, a.Close())
	assert.Equal(t, 4, base.Limits().CPU, "Close restores the normal settings")
	assert.Zero(t, base.InterNodeDelay())
	assert.Equal(t, slog.LevelInfo, level.Level())
}

func TestAttachSeesTheLatestSample(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &script{}
		src.set(40, 90, 40) // already hot when the executor attaches
		mon, err := throttle.NewMonitor(src, throttle.MonitorOptions{CheckInterval: time.Hour})
		require.NoError(t, err)
		require.NoError(t, mon.Start())
		defer mon.Close()
		base, _ := executor.New(executor.Options{})
		a, err := adaptive.New(base, adaptive.Options{})
		require.NoError(t, err)
		defer a.Close()
		a.Attach(mon)
		assert.Equal(t, adaptive.HighTemp, a.CurrentMode(), "no need to wait an hour for the next sample")
	})
}

func TestMissingSignalIsNotPressure(t *testing.T) {
	base, _ := executor.New(executor.Options{Limits: executor.Limits{CPU: 2}})
	a, err := adaptive.New(base, adaptive.Options{})
	require.NoError(t, err)
	a.Observe(&throttle.Sample{Time: time.Now(), MemoryUsedPercent: 10}) // no temperature, no disks
	assert.Equal(t, adaptive.Normal, a.CurrentMode())
}

type gate struct {
	open chan struct{}
}

func (g *gate) Wait(ctx context.Context) error {
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (g *gate) Check() error {
	select {
	case <-g.open:
		return nil
	default:
		return errors.New("breaker open")
	}
}

func TestGuardedWaitsForBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		br := &gate{open: make(chan struct{})}
		base, _ := executor.New(executor.Options{})
		a, err := adaptive.New(base, adaptive.Options{Breaker: br})
		require.NoError(t, err)
		time.AfterFunc(30*time.Second, func() { close(br.open) })
		start := time.Now()
		ran := false
		err = a.Guarded(context.Background(), func(context.Context) error { ran = true; return nil })
		require.NoError(t, err)
		assert.True(t, ran)
		assert.Equal(t, 30*time.Second, time.Since(start))

		br2 := &gate{open: make(chan struct{})}
		a2, _ := adaptive.New(base, adaptive.Options{Breaker: br2})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err = a2.Guarded(ctx, func(context.Context) error { t.Error("must not run"); return nil })
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestOptionsValidation(t *testing.T) {
	base, _ := executor.New(executor.Options{})
	tests := []struct {
		name string
		opts adaptive.Options
		want string
	}{
		{"bad trigger", adaptive.Options{Triggers: map[adaptive.Mode][]adaptive.Trigger{adaptive.LowMemory: {{Signal: "memory_percent", Threshold: -5}}}}, "Triggers[low_memory]"},
		{"unknown mode", adaptive.Options{Adaptations: map[adaptive.Mode]adaptive.Adaptation{"turbo": {}}}, `Adaptations = turbo`},
		{"bad fraction", adaptive.Options{Adaptations: map[adaptive.Mode]adaptive.Adaptation{adaptive.LowMemory: {PagerFraction: 1.5}}}, "PagerFraction = 1.5: must be in (0, 1]"},
		{"bad priority", adaptive.Options{Priority: []adaptive.Mode{adaptive.HighTemp, adaptive.HighTemp, adaptive.LowDisk}}, "Priority"},
		{"bad margin", adaptive.Options{Margin: 0.7}, "Margin = 0.7: must be in [0, 0.5)"},
		{"negative period", adaptive.Options{TransitionPeriod: -1}, "TransitionPeriod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := adaptive.New(base, tt.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := adaptive.New(nil, adaptive.Options{})
	assert.Error(t, err)
}
