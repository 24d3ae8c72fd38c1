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

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

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

// device is a Breaker with the default ladders that the test feeds with
// samples one second apart.
type device struct {
	*throttle.Breaker
	now time.Time
}

func newDevice(t *testing.T) *device {
	b, err := throttle.NewBreaker(throttle.BreakerOptions{Ladders: []throttle.Ladder{
		{Signal: throttle.SignalTemperatureC, Adapt: 70, Pause: 80, Hysteresis: 3, Hold: 5 * time.Second, Cooldown: 10 * time.Second},
		{Signal: throttle.SignalMemoryPercent, Adapt: 80, Pause: 90, Hold: 5 * time.Second, Cooldown: 10 * time.Second},
		{Signal: throttle.SignalDiskPercent, Adapt: 90, Pause: 95, Hold: 5 * time.Second},
		{Signal: throttle.SignalCPUOthersPercent, Adapt: 70, Pause: 95, TripAfter: 3, Hold: 5 * time.Second},
	}})
	require.NoError(t, err)
	return &device{Breaker: b, now: t0}
}

// sample observes one sample, a second after the previous one.
func (d *device) sample(temp, mem, disk, others float64) {
	d.now = d.now.Add(time.Second)
	d.Observe(&throttle.Sample{
		Time: d.now, MemoryUsedPercent: mem, MemoryTotalBytes: 4 << 30, OthersCPUPercent: others,
		Disks:   []throttle.DiskUsage{{Path: "/data", UsedPercent: disk}},
		Signals: []throttle.SignalValue{{Name: throttle.SignalTemperatureC, Unit: "°C", Value: temp}},
	})
}

type cpuTarget struct{ pct float64 }

func (c *cpuTarget) TargetPercent() float64 { return c.pct }
func (c *cpuTarget) SetTargetPercent(p float64) error {
	c.pct = p
	return nil
}

func newAdaptive(t *testing.T, opts adaptive.Options) (*adaptive.Executor, *executor.Executor) {
	t.Helper()
	base, err := executor.New(executor.Options{Limits: executor.Limits{CPU: 4, IO: 64}})
	require.NoError(t, err)
	a, err := adaptive.New(base, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	return a, base
}

func TestLaddersDriveModes(t *testing.T) {
	dev := newDevice(t)
	pager := &fakePager{limit: 64 << 20}
	cpu := &cpuTarget{pct: 90}
	level := new(slog.LevelVar)
	a, base := newAdaptive(t, adaptive.Options{Pager: pager, Throttler: cpu, LogLevel: level})
	var changes []string
	a.OnModeChange(func(c adaptive.ModeChange) { changes = append(changes, string(c.From)+"->"+string(c.To)) })
	a.OnModeChange(func(adaptive.ModeChange) { panic("listener bug") }) // recovered
	a.Attach(dev)

	dev.sample(50, 40, 50, 10)
	assert.Equal(t, adaptive.Normal, a.CurrentMode())
	assert.Equal(t, executor.Limits{CPU: 4, IO: 64}, base.Limits())

	dev.sample(75, 40, 50, 10) // hot: adapt
	assert.Equal(t, adaptive.HighTemp, a.CurrentMode())
	assert.Equal(t, executor.Limits{CPU: 1, IO: 64}, base.Limits(), "the CPU class narrows first; LLM calls go on")
	assert.Equal(t, 100*time.Millisecond, base.InterNodeDelay())
	assert.Equal(t, 50.0, cpu.pct)

	dev.sample(75, 85, 50, 10) // and short of memory: both apply
	st := a.Status()
	assert.Equal(t, adaptive.HighTemp, st.Mode, "heat has priority")
	require.Len(t, st.Active, 2)
	assert.Equal(t, adaptive.LowMemory, st.Active[1].Mode)
	assert.Equal(t, executor.Limits{CPU: 1, IO: 4}, base.Limits())
	assert.Equal(t, int64(32<<20), pager.MemoryLimit())
	assert.Contains(t, st.Reason(), "high_temp: temperature_c 75.0 °C ≥ 70.0 °C; low_memory: memory_percent 85.0% ≥ 80.0%")

	dev.sample(85, 85, 50, 10) // too hot: the pause is a pressure too
	assert.Equal(t, throttle.Pause, a.Status().Active[0].Rung)
	assert.True(t, dev.Paused())

	// Cool down and free memory: after the cooldown and the holds, normal.
	for range 20 {
		dev.sample(50, 40, 50, 10)
	}
	assert.Equal(t, adaptive.Normal, a.CurrentMode())
	assert.Equal(t, executor.Limits{CPU: 4, IO: 64}, base.Limits())
	assert.Equal(t, time.Duration(0), base.InterNodeDelay())
	assert.Equal(t, int64(64<<20), pager.MemoryLimit())
	assert.Equal(t, 90.0, cpu.pct)

	dev.sample(50, 40, 93, 10) // disk filling: quiet logs
	assert.Equal(t, adaptive.LowDisk, a.CurrentMode())
	assert.Equal(t, slog.LevelWarn, level.Level())
	for range 10 {
		dev.sample(50, 40, 50, 10)
	}
	dev.sample(50, 40, 50, 80) // others hog the CPU
	assert.Equal(t, adaptive.CPUContention, a.CurrentMode())
	assert.Equal(t, executor.Limits{CPU: 1, IO: 64}, base.Limits())
	assert.Equal(t, []string{"normal->high_temp", "high_temp->normal", "normal->low_disk", "low_disk->normal", "normal->cpu_contention"}, changes)
	require.Len(t, a.History(), 5)
}

func TestAttachSeesWhereLaddersStand(t *testing.T) {
	dev := newDevice(t)
	dev.sample(75, 40, 50, 0) // already hot before the executor exists
	a, base := newAdaptive(t, adaptive.Options{})
	a.Attach(dev)
	assert.Equal(t, adaptive.HighTemp, a.CurrentMode())
	assert.Equal(t, 1, base.Limits().CPU)
	require.NoError(t, a.Close())
	assert.Equal(t, 4, base.Limits().CPU, "Close restores the normal settings")
	dev.sample(50, 95, 50, 0)
	assert.Equal(t, adaptive.HighTemp, a.CurrentMode(), "detached: changes no longer arrive")
}

func TestUnmappedSignalsAreNoPressure(t *testing.T) {
	a, _ := newAdaptive(t, adaptive.Options{Modes: map[string]adaptive.Mode{throttle.SignalTemperatureC: adaptive.HighTemp}})
	a.Observe(throttle.Change{Signal: throttle.SignalMemoryPercent, From: throttle.Normal, To: throttle.Pause, At: t0, Value: 99})
	assert.Equal(t, adaptive.Normal, a.CurrentMode())
}

// TestAdaptationsActOnRealNodes runs nodes on a real executor under the
// high_temp adaptations and observes the narrowed CPU class and the delay
// between node starts, on virtual time.
func TestAdaptationsActOnRealNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dev := newDevice(t)
		a, _ := newAdaptive(t, adaptive.Options{})
		a.Attach(dev)
		dev.sample(75, 40, 50, 0)
		var runCPU, runIO, peakCPU, peakIO atomic.Int64
		var mu sync.Mutex
		var starts []time.Time
		var nodes []dag.Node
		for i := range 8 {
			class, running, peak := dag.CPU, &runCPU, &peakCPU
			if i%2 == 1 {
				class, running, peak = dag.IO, &runIO, &peakIO
			}
			nodes = append(nodes, dag.Node{ID: strconv.Itoa(i), Class: class, Run: func(context.Context, dag.State) error {
				mu.Lock()
				starts = append(starts, time.Now())
				mu.Unlock()
				cur := running.Add(1)
				for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
				}
				time.Sleep(time.Second)
				running.Add(-1)
				return nil
			}})
		}
		g, err := dag.New(nodes...)
		require.NoError(t, err)
		_, err = a.Run(context.Background(), g, dag.NewMemoryState())
		require.NoError(t, err)
		assert.EqualValues(t, 1, peakCPU.Load(), "one CPU node at a time")
		assert.Greater(t, peakIO.Load(), int64(1), "I/O nodes are not narrowed by heat")
		for k := 1; k < len(starts); k++ {
			assert.GreaterOrEqual(t, starts[k].Sub(starts[k-1]), 100*time.Millisecond)
		}
	})
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
		return errors.New("paused")
	}
}

func TestGuardedWaitsForTheGuard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &gate{open: make(chan struct{})}
		a, _ := newAdaptive(t, adaptive.Options{Guard: g})
		time.AfterFunc(30*time.Second, func() { close(g.open) })
		start := time.Now()
		ran := false
		err := a.Guarded(context.Background(), func(context.Context) error { ran = true; return nil })
		require.NoError(t, err)
		assert.True(t, ran)
		assert.Equal(t, 30*time.Second, time.Since(start))

		g2 := &gate{open: make(chan struct{})}
		a2, _ := newAdaptive(t, adaptive.Options{Guard: g2})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err = a2.Guarded(ctx, func(context.Context) error { t.Error("must not run"); return nil })
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestOptionsValidation(t *testing.T) {
	base, err := executor.New(executor.Options{})
	require.NoError(t, err)
	tests := []struct {
		name string
		opts adaptive.Options
		want string
	}{
		{"unknown mode for a signal", adaptive.Options{Modes: map[string]adaptive.Mode{"temperature_c": "melting"}}, `Modes["temperature_c"] = melting`},
		{"unknown mode", adaptive.Options{Adaptations: map[adaptive.Mode]adaptive.Adaptation{"turbo": {}}}, `Adaptations = turbo`},
		{"bad fraction", adaptive.Options{Adaptations: map[adaptive.Mode]adaptive.Adaptation{adaptive.LowMemory: {PagerFraction: 1.5}}}, "PagerFraction = 1.5: must be in (0, 1]"},
		{"bad target", adaptive.Options{Adaptations: map[adaptive.Mode]adaptive.Adaptation{adaptive.HighTemp: {CPUTargetPercent: 120}}}, "CPUTargetPercent = 120"},
		{"negative CPU class", adaptive.Options{Adaptations: map[adaptive.Mode]adaptive.Adaptation{adaptive.HighTemp: {CPUParallel: -1}}}, "CPUParallel = -1"},
		{"bad priority", adaptive.Options{Priority: []adaptive.Mode{adaptive.HighTemp, adaptive.HighTemp, adaptive.LowDisk}}, "Priority"},
		{"short priority", adaptive.Options{Priority: []adaptive.Mode{adaptive.HighTemp, adaptive.LowMemory, adaptive.LowDisk}}, "cpu_contention once each"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := adaptive.New(base, tt.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err = adaptive.New(nil, adaptive.Options{})
	assert.Error(t, err)
}
