package throttle_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/throttle"
)

// The breaker is consulted by the executor before each node.
var (
	_ executor.Gate    = (*throttle.Breaker)(nil)
	_ executor.Checker = (*throttle.Breaker)(nil)
	_ throttle.Guard   = (*throttle.Breaker)(nil)
)

var epoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newBreaker(t testing.TB, ladders ...throttle.Ladder) *throttle.Breaker {
	t.Helper()
	b, err := throttle.NewBreaker(throttle.BreakerOptions{Ladders: ladders})
	require.NoError(t, err)
	return b
}

// tempSample is a sample with only a temperature.
func tempSample(at time.Time, c float64) *throttle.Sample {
	return &throttle.Sample{Time: at, Signals: []throttle.SignalValue{{Name: throttle.SignalTemperatureC, Unit: "°C", Value: c}}}
}

func rungOf(t *testing.T, b *throttle.Breaker, signal string) throttle.Rung {
	t.Helper()
	ls, ok := b.Status().Ladder(signal)
	require.True(t, ok, "no ladder for %s", signal)
	return ls.Rung
}

func TestLadderRungs(t *testing.T) {
	temp := throttle.Ladder{Signal: throttle.SignalTemperatureC, Adapt: 70, Pause: 80, Hysteresis: 3, Cooldown: 30 * time.Second, Hold: 10 * time.Second}
	steps := []struct {
		at   time.Duration
		c    float64
		want throttle.Rung
	}{
		{0, 60, throttle.Normal},
		{1 * time.Second, 70, throttle.Adapt},  // at the adapt level
		{2 * time.Second, 80, throttle.Adapt},  // at, not above, the pause level
		{3 * time.Second, 86, throttle.Pause},  // above: pause until 33 s
		{10 * time.Second, 50, throttle.Pause}, // cool, but the cooldown runs from the last hot sample
		{20 * time.Second, 85, throttle.Pause}, // hot again: until 50 s
		{40 * time.Second, 50, throttle.Pause},
		{50 * time.Second, 78, throttle.Pause},  // cooldown over, but not below 80 − 3
		{51 * time.Second, 76, throttle.Adapt},  // below 77, above 70 − 3: back to adapt
		{55 * time.Second, 66, throttle.Adapt},  // below 67, but held 10 s after the last sample ≥ 70
		{61 * time.Second, 68, throttle.Adapt},  // 10 s after 51 s, but 68 is not below 67
		{62 * time.Second, 66, throttle.Normal}, // below, and held long enough
	}
	b := newBreaker(t, temp)
	for _, st := range steps {
		b.Observe(tempSample(epoch.Add(st.at), st.c))
		require.Equal(t, st.want, rungOf(t, b, throttle.SignalTemperatureC), "at %v with %v °C", st.at, st.c)
		require.Equal(t, st.want == throttle.Pause, b.Paused(), "at %v", st.at)
	}
}

func TestLadderTripAfterAndStaleSamples(t *testing.T) {
	cpu := throttle.Ladder{Signal: throttle.SignalCPUOthersPercent, Pause: 95, TripAfter: 3, Cooldown: time.Second}
	b := newBreaker(t, cpu)
	s := func(sec int, v float64) *throttle.Sample {
		return &throttle.Sample{Time: epoch.Add(time.Duration(sec) * time.Second), OthersCPUPercent: v}
	}
	b.Observe(s(1, 99))
	b.Observe(s(2, 99))
	b.Observe(s(2, 99)) // not fresh: ignored
	b.Observe(s(1, 99)) // older: ignored
	require.False(t, b.Paused())
	b.Observe(s(3, 50)) // the run of hot samples is broken
	b.Observe(s(4, 99))
	b.Observe(s(5, 99))
	require.False(t, b.Paused())
	b.Observe(s(6, 99))
	require.True(t, b.Paused(), "three consecutive samples above 95")
}

func TestLadderCooldownDoublesAndDecays(t *testing.T) {
	l := throttle.Ladder{Signal: throttle.SignalTemperatureC, Pause: 80, Hysteresis: 1, Cooldown: 10 * time.Second, MaxCooldown: 35 * time.Second}
	b := newBreaker(t, l)
	now := epoch
	cooldowns := []time.Duration{}
	b.OnChange(func(c throttle.Change) {
		if c.To == throttle.Pause {
			cooldowns = append(cooldowns, c.Cooldown)
		}
	})
	// trip observes a hot sample, then cool samples until the pause ends,
	// and returns how long the pause lasted.
	trip := func() time.Duration {
		now = now.Add(time.Second)
		b.Observe(tempSample(now, 90))
		start := now
		for b.Paused() {
			now = now.Add(time.Second)
			b.Observe(tempSample(now, 50))
		}
		return now.Sub(start)
	}
	quiet := func(d time.Duration) {
		for end := now.Add(d); now.Before(end); {
			now = now.Add(time.Second)
			b.Observe(tempSample(now, 50))
		}
	}
	require.Equal(t, 10*time.Second, trip())
	quiet(2 * time.Second)
	require.Equal(t, 20*time.Second, trip()) // tripped again soon: doubled
	quiet(2 * time.Second)
	require.Equal(t, 35*time.Second, trip()) // capped
	quiet(35 * time.Second)                  // quiet as long as the last cooldown: decays
	require.Equal(t, 10*time.Second, trip())
	require.Equal(t, []time.Duration{10 * time.Second, 20 * time.Second, 35 * time.Second, 10 * time.Second}, cooldowns)
}

// The pause names the signals that are paused, and each recovers on its
// own level: a busy CPU does not keep a memory pause open or take the blame
// for it.
func TestPauseBlamesOnlyPausedSignals(t *testing.T) {
	b := newBreaker(t,
		throttle.Ladder{Signal: throttle.SignalMemoryPercent, Adapt: 80, Pause: 85, Cooldown: time.Second},
		throttle.Ladder{Signal: throttle.SignalCPUOthersPercent, Adapt: 70, Pause: 100, Cooldown: time.Second},
	)
	s := func(sec int, mem, others float64) *throttle.Sample {
		return &throttle.Sample{Time: epoch.Add(time.Duration(sec) * time.Second), MemoryUsedPercent: mem, MemoryTotalBytes: 4 << 30, OthersCPUPercent: others}
	}
	b.Observe(s(0, 90, 100))
	err := b.Check()
	require.ErrorIs(t, err, throttle.ErrPaused)
	require.ErrorIs(t, err, limit.ErrExceeded)
	var le *limit.Error
	require.ErrorAs(t, err, &le)
	require.Equal(t, limit.Memory, le.Kind)
	require.NotContains(t, err.Error(), "cpu", "CPU at its pause level (100 is not above 100) is not a reason")
	var pe *throttle.PauseError
	require.ErrorAs(t, err, &pe)
	require.Len(t, pe.Signals, 1)

	b.Observe(s(2, 70, 100)) // memory recovered; the CPU is still pegged
	require.NoError(t, b.Check(), "the CPU ladder never paused; memory's recovery ends the pause")
	require.Equal(t, throttle.Adapt, rungOf(t, b, throttle.SignalCPUOthersPercent))
}

func TestUnreadableSignalDoesNotPauseForEver(t *testing.T) {
	b := newBreaker(t, throttle.Ladder{Signal: throttle.SignalTemperatureC, Pause: 80, Cooldown: 5 * time.Second})
	b.Observe(tempSample(epoch, 90))
	require.True(t, b.Paused())
	b.Observe(&throttle.Sample{Time: epoch.Add(time.Second)}) // the sensor stops reading
	require.True(t, b.Paused(), "the cooldown still runs")
	b.Observe(&throttle.Sample{Time: epoch.Add(6 * time.Second)})
	require.False(t, b.Paused())
	ls, _ := b.Status().Ladder(throttle.SignalTemperatureC)
	require.False(t, ls.Known)
}

func TestBreakerWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, throttle.Ladder{Signal: throttle.SignalTemperatureC, Pause: 80, Cooldown: 10 * time.Second})
		require.NoError(t, b.Wait(t.Context()), "nothing paused: Wait returns at once")
		now := time.Now()
		b.Observe(tempSample(now, 90))
		done := make(chan error, 1)
		go func() { done <- b.Wait(t.Context()) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Wait returned %v while paused", err)
		default:
		}
		b.Observe(tempSample(now.Add(11*time.Second), 50))
		synctest.Wait()
		require.NoError(t, <-done)

		b.Observe(tempSample(now.Add(12*time.Second), 90)) // paused until 12 s + 20 s
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		err := b.Wait(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded, "fails fast: the pause cannot end within the deadline")
		require.ErrorIs(t, err, throttle.ErrPaused)

		ctx2, cancel2 := context.WithCancelCause(t.Context())
		cause := errors.New("shutting down")
		go func() { done <- b.Wait(ctx2) }()
		synctest.Wait()
		cancel2(cause)
		require.ErrorIs(t, <-done, cause)
	})
}

func TestBreakerCheckDoesNotAllocateWhileRunning(t *testing.T) {
	b := newBreaker(t, throttle.DefaultLadders()...)
	b.Observe(&throttle.Sample{Time: epoch, CPUPercent: 100, ProcessCPUPercent: 40, HelpersCPUPercent: 60, MemoryUsedPercent: 30, MemoryTotalBytes: 1 << 30})
	require.False(t, b.Paused(), "a CPU pegged by this process and its helpers is not contention")
	if n := testing.AllocsPerRun(100, func() { _ = b.Check() }); n != 0 {
		t.Fatalf("Check allocates %v times while nothing is paused", n)
	}
}

func TestBreakerOnChange(t *testing.T) {
	b := newBreaker(t, throttle.Ladder{Signal: throttle.SignalTemperatureC, Adapt: 70, Pause: 80, Cooldown: time.Second})
	var got []string
	remove := b.OnChange(func(c throttle.Change) { got = append(got, c.String()) })
	b.OnChange(func(throttle.Change) { panic("listener bug") }) // recovered
	b.Observe(tempSample(epoch, 75))
	b.Observe(tempSample(epoch.Add(time.Second), 90))
	remove()
	b.Observe(tempSample(epoch.Add(3*time.Second), 50))
	require.Equal(t, []string{
		"temperature_c 75.0 °C ≥ 70.0 °C: normal -> adapt",
		"temperature_c 90.0 °C > 80.0 °C: adapt -> pause",
	}, got)
	require.False(t, b.Paused())
}

func TestNewBreakerRejectsBadLadders(t *testing.T) {
	_, err := throttle.NewBreaker(throttle.BreakerOptions{Ladders: []throttle.Ladder{
		{Signal: throttle.SignalMemoryPercent, Adapt: 90, Pause: 85},
		{Signal: throttle.SignalDiskPercent, Pause: 120},
		{Signal: throttle.SignalTemperatureC, Pause: math.NaN()},
		{Signal: throttle.SignalCPUOthersPercent, Pause: 95, TripAfter: -1, Cooldown: -time.Second},
		{Signal: ""},
	}})
	require.Error(t, err)
	for _, want := range []string{
		"Ladder[memory_percent].Adapt = 90: must be below Pause (85)",
		"Ladder[disk_percent].Pause = 120: must be in [0, 100]",
		"Ladder[temperature_c].Pause = NaN",
		"Ladder[cpu_others_percent].TripAfter = -1",
		"Ladder[cpu_others_percent].Cooldown = -1s",
		"Ladder.Signal is empty",
	} {
		require.Contains(t, err.Error(), want)
	}
	_, err = throttle.NewBreaker(throttle.BreakerOptions{Ladders: []throttle.Ladder{{Signal: "x", Pause: 1}, {Signal: "x", Pause: 2}}})
	require.ErrorContains(t, err, `two ladders for "x"`)
}

func TestBreakerStatusJSON(t *testing.T) {
	b := newBreaker(t, throttle.Ladder{Signal: throttle.SignalTemperatureC, Adapt: 70, Pause: 80})
	b.Observe(tempSample(epoch, 90))
	raw, err := json.Marshal(b.Status())
	require.NoError(t, err)
	s := string(raw)
	for _, want := range []string{`"paused":true`, `"rung":"pause"`, `"signal":"temperature_c"`, `"trip_after":1`, `"unit":"°C"`} {
		require.Contains(t, s, want)
	}
	require.False(t, strings.Contains(s, `"Rung"`) || strings.Contains(s, "0001-01-01"), "snake_case and no zero times: %s", s)
}
