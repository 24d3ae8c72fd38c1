package throttle_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/throttle"
)

// The breaker is consulted by the executor before each node.
var (
	_ executor.Gate    = (*throttle.Breaker)(nil)
	_ executor.Checker = (*throttle.Breaker)(nil)
	_ throttle.Guard   = (*throttle.Breaker)(nil)
)

var epoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newBreaker(t *testing.T, opts throttle.BreakerOptions) *throttle.Breaker {
	t.Helper()
	b, err := throttle.NewBreaker(opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// cpuSample is a sample with only cpu_percent (and memory, healthy).
func cpuSample(at time.Time, cpu float64) *throttle.Sample { return sampleAt(at, cpu, 10) }

func TestBreakerStateMachine(t *testing.T) {
	type step struct {
		at   time.Duration // since epoch
		cpu  float64
		want throttle.BreakerState
	}
	const (
		closed   = throttle.BreakerClosed
		open     = throttle.BreakerOpen
		halfOpen = throttle.BreakerHalfOpen
	)
	// Threshold 90, margin 5 % of it: recovery needs cpu < 85.5.
	tests := []struct {
		name      string
		tripAfter int
		steps     []step
	}{
		{"at the threshold is not over it", 1, []step{{0, 90, closed}, {1, 89, closed}}},
		{"opens on the first sample over", 1, []step{{0, 50, closed}, {1, 90.5, open}}},
		{"stays open during the cooldown even when healthy", 1, []step{{0, 95, open}, {10, 10, open}, {29, 10, open}}},
		{"after the cooldown, not below the margin: stays open", 1, []step{{0, 95, open}, {30, 88, open}, {60, 86, open}}},
		{"half-open after cooldown and recovery, closed on the next healthy sample", 1,
			[]step{{0, 95, open}, {30, 85, halfOpen}, {35, 80, closed}}},
		{"half-open reopens on a sample over the threshold", 1,
			[]step{{0, 95, open}, {30, 85, halfOpen}, {35, 90.1, open}, {94, 10, open}, {95, 10, halfOpen}}}, // cooldown doubled
		{"half-open holds while inside the margin", 1,
			[]step{{0, 95, open}, {30, 85, halfOpen}, {35, 88, halfOpen}, {40, 85, closed}}},
		{"TripAfter counts consecutive fresh samples", 3,
			[]step{{0, 95, closed}, {1, 95, closed}, {2, 80, closed}, {3, 95, closed}, {4, 95, closed}, {5, 95, open}}},
		{"stale and duplicate samples are ignored", 2,
			[]step{{10, 95, closed}, {10, 95, closed}, {5, 95, closed}, {11, 95, open}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBreaker(t, throttle.BreakerOptions{Thresholds: map[string]float64{"cpu_percent": 90}, TripAfter: tt.tripAfter})
			for i, st := range tt.steps {
				b.Observe(cpuSample(epoch.Add(st.at*time.Second), st.cpu))
				if got := b.State(); got != st.want {
					t.Fatalf("step %d (t=%ds cpu=%v): state %v, want %v", i, st.at, st.cpu, got, st.want)
				}
			}
		})
	}
}

func TestBreakerIgnoresAbsentSignals(t *testing.T) {
	b := newBreaker(t, throttle.BreakerOptions{}) // defaults include temperature_c and disk_percent
	b.Observe(cpuSample(epoch, 50))
	if b.State() != throttle.BreakerClosed {
		t.Fatal("absent temperature or disk opened the breaker")
	}
	s := cpuSample(epoch.Add(time.Second), 50)
	s.Signals = []throttle.SignalValue{{Name: throttle.SignalTemperatureC, Unit: "°C", Value: 80.5}}
	b.Observe(s)
	var le *throttle.LimitError
	if err := b.Check(); !errors.As(err, &le) || le.Kind != throttle.KindTemperature || le.Unit != "°C" || le.Current != 80.5 || le.Limit != 80 {
		t.Errorf("Check = %v (%+v), want a temperature limit error", err, le)
	}
}

func TestBreakerBackoff(t *testing.T) {
	b := newBreaker(t, throttle.BreakerOptions{Thresholds: map[string]float64{"cpu_percent": 90}, Cooldown: 30 * time.Second})
	var cooldowns []time.Duration
	b.OnTransition(func(tr throttle.Transition) {
		if tr.To == throttle.BreakerOpen {
			cooldowns = append(cooldowns, tr.Cooldown)
		}
	})
	now := epoch
	observe := func(cpu float64) { b.Observe(cpuSample(now, cpu)); now = now.Add(time.Second) }
	// Trip from half-open six times: the cooldown doubles up to the cap
	// (10 × 30 s by default).
	observe(95)
	for range 6 {
		now = now.Add(b.Status().Cooldown)
		observe(50) // half-open
		observe(95) // reopen
	}
	want := []time.Duration{30, 60, 120, 240, 300, 300, 300}
	for i := range want {
		want[i] *= time.Second
	}
	if len(cooldowns) != len(want) {
		t.Fatalf("cooldowns %v, want %v", cooldowns, want)
	}
	for i := range want {
		if cooldowns[i] != want[i] {
			t.Fatalf("cooldowns %v, want %v", cooldowns, want)
		}
	}
	// Recover, stay healthy for ResetAfter (default: MaxCooldown), trip
	// again: the backoff starts over.
	now = now.Add(b.Status().Cooldown)
	observe(50)
	observe(50)
	if b.State() != throttle.BreakerClosed {
		t.Fatalf("state %v, want closed", b.State())
	}
	now = now.Add(5 * time.Minute)
	observe(50)
	observe(95)
	if got := cooldowns[len(cooldowns)-1]; got != 30*time.Second {
		t.Errorf("cooldown after a healthy period = %v, want 30s", got)
	}
	if st := b.Status(); st.Trips != 1 {
		t.Errorf("Trips = %d, want 1", st.Trips)
	}
}

// TestBreakerOscillation drives a real Monitor with a signal that swings
// around its threshold every second for 10 simulated minutes.
func TestBreakerOscillation(t *testing.T) {
	const threshold = 90.0
	tests := []struct {
		name      string
		opts      throttle.BreakerOptions
		low, high float64 // alternating values
		maxPerWin int     // transitions allowed per cooldown period
		wantNone  bool
	}{
		{name: "±2 around the threshold, default margin", low: threshold - 2, high: threshold + 2, maxPerWin: 2},
		{name: "±2 around the threshold, margin small enough to recover", opts: throttle.BreakerOptions{MarginPercent: 1},
			low: threshold - 2, high: threshold + 2, maxPerWin: 2},
		{name: "±2 around the threshold, TripAfter 2", opts: throttle.BreakerOptions{TripAfter: 2},
			low: threshold - 2, high: threshold + 2, wantNone: true},
		{name: "swing inside the margin", low: threshold * 0.95, high: threshold, wantNone: true},
		{name: "swing inside the margin, tiny amplitude", low: threshold - 0.2, high: threshold - 0.01, wantNone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := tt.opts
				opts.Thresholds = map[string]float64{throttle.SignalCPUPercent: threshold}
				opts.Cooldown = 30 * time.Second
				b := newBreaker(t, opts)
				var transitions []throttle.Transition
				b.OnTransition(func(tr throttle.Transition) { transitions = append(transitions, tr) })

				start := time.Now()
				src := &scriptedSource{fn: func(now time.Time) (*throttle.Sample, error) {
					v := tt.low
					if int(now.Sub(start)/time.Second)%2 == 0 {
						v = tt.high
					}
					return cpuSample(now, v), nil
				}}
				m := newMonitor(t, src, throttle.MonitorOptions{CheckInterval: time.Second})
				detach := b.Attach(m)
				if err := m.Start(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(10 * time.Minute)
				detach()
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
				if n := src.calls.Load(); n < 600 {
					t.Fatalf("only %d samples", n)
				}
				if tt.wantNone {
					if len(transitions) != 0 {
						t.Errorf("%d transitions, want none: %+v", len(transitions), transitions)
					}
					return
				}
				if len(transitions) == 0 {
					t.Fatal("no transition at all: the signal never tripped the breaker")
				}
				for i, tr := range transitions {
					n := 0
					for _, o := range transitions[i:] {
						if o.At.Sub(tr.At) < opts.Cooldown {
							n++
						}
					}
					if n > tt.maxPerWin {
						t.Errorf("%d transitions within %v of %v, want at most %d", n, opts.Cooldown, tr.At.Sub(start), tt.maxPerWin)
					}
				}
				t.Logf("%d transitions in 10 minutes", len(transitions))
			})
		})
	}
}

func TestBreakerWaitAdmitsProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, throttle.BreakerOptions{Thresholds: map[string]float64{"cpu_percent": 90}, HalfOpenProbes: 2})
		b.Observe(cpuSample(time.Now(), 99))
		const callers = 5
		var passed atomic.Int32
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				if err := b.Wait(context.Background()); err != nil {
					t.Error(err)
				}
				passed.Add(1)
			})
		}
		synctest.Wait()
		if passed.Load() != 0 {
			t.Fatalf("%d callers passed an open breaker", passed.Load())
		}
		time.Sleep(30 * time.Second)
		b.Observe(cpuSample(time.Now(), 50)) // half-open
		synctest.Wait()
		if passed.Load() != 2 {
			t.Fatalf("%d callers passed the half-open breaker, want the 2 probes", passed.Load())
		}
		if st := b.Status(); st.State != throttle.BreakerHalfOpen || st.Probes != 2 || st.MaxProbes != 2 {
			t.Errorf("status %+v", st)
		}
		time.Sleep(5 * time.Second)
		b.Observe(cpuSample(time.Now(), 50)) // closed
		wg.Wait()
		if passed.Load() != callers {
			t.Errorf("%d callers passed after closing, want %d", passed.Load(), callers)
		}
	})
}

func TestBreakerCheck(t *testing.T) {
	b := newBreaker(t, throttle.BreakerOptions{Thresholds: map[string]float64{"cpu_percent": 90, "memory_percent": 80}})
	if err := b.Check(); err != nil {
		t.Fatalf("closed: Check = %v", err)
	}
	b.Observe(sampleAt(epoch, 95, 81))
	err := b.Check()
	if !errors.Is(err, throttle.ErrBreakerOpen) || !errors.Is(err, throttle.ErrLimitExceeded) {
		t.Fatalf("open: Check = %v, want ErrBreakerOpen and ErrLimitExceeded", err)
	}
	var oe *throttle.BreakerOpenError
	if !errors.As(err, &oe) || !oe.ProbeAt.Equal(epoch.Add(30*time.Second)) || len(oe.Reasons) != 2 {
		t.Fatalf("open error = %+v", oe)
	}
	var le *throttle.LimitError
	if !errors.As(err, &le) || le.Kind != throttle.KindCPU || le.Subject != "cpu_percent" || le.Current != 95 || le.Limit != 90 || le.Unit != "%" {
		t.Errorf("LimitError = %+v", le)
	}
	if !strings.Contains(err.Error(), "memory (memory_percent) limit exceeded: 81% > 80%") {
		t.Errorf("message %q does not explain the memory reason", err)
	}
	// Back under the thresholds but inside the margin: the reasons shrink
	// to what has not recovered.
	b.Observe(sampleAt(epoch.Add(5*time.Second), 50, 77))
	if st := b.Status(); len(st.Reasons) != 1 || st.Reasons[0].Signal != "memory_percent" || st.Reasons[0].ResumeBelow != 76 {
		t.Errorf("reasons %+v, want memory_percent only, resuming below 76", st.Reasons)
	}
	b.Observe(sampleAt(epoch.Add(10*time.Second), 50, 50))
	if err := b.Check(); !errors.As(err, &oe) || len(oe.Reasons) != 0 || !strings.Contains(err.Error(), "cooling down") {
		t.Errorf("recovered, cooling down: Check = %v", err)
	}
	b.Observe(sampleAt(epoch.Add(30*time.Second), 50, 50))
	if err := b.Check(); err != throttle.ErrBreakerHalfOpen {
		t.Errorf("half-open: Check = %v, want ErrBreakerHalfOpen", err)
	}
}

func TestBreakerWaitFailsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, throttle.BreakerOptions{})
		b.Observe(cpuSample(time.Now(), 99))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err := b.Wait(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, throttle.ErrBreakerOpen) {
			t.Errorf("Wait = %v, want DeadlineExceeded and ErrBreakerOpen", err)
		}
		if time.Since(start) != 0 {
			t.Error("Wait waited although the deadline could not be met")
		}

		cause := errors.New("shutting down")
		ctx2, cancel2 := context.WithCancelCause(context.Background())
		go func() { time.Sleep(time.Second); cancel2(cause) }()
		if err := b.Wait(ctx2); err != cause {
			t.Errorf("Wait = %v, want the context's cause", err)
		}
	})
}

func TestBreakerDo(t *testing.T) {
	b := newBreaker(t, throttle.BreakerOptions{})
	ran := false
	if err := b.Do(context.Background(), func(context.Context) error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("closed: Do = %v, ran %v", err, ran)
	}
	var pe *throttle.PanicError
	if err := b.Do(context.Background(), func(context.Context) error { panic("node bug") }); !errors.As(err, &pe) || pe.Value != "node bug" {
		t.Errorf("Do with panicking fn = %v", err)
	}
	b.Observe(cpuSample(epoch, 99))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran = false
	if err := b.Do(ctx, func(context.Context) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Errorf("open, cancelled ctx: Do = %v, ran %v", err, ran)
	}
}

func TestBreakerListeners(t *testing.T) {
	b := newBreaker(t, throttle.BreakerOptions{})
	var seen []string
	// A listener may call back into the breaker: it runs outside the lock.
	b.OnTransition(func(tr throttle.Transition) {
		seen = append(seen, tr.From.String()+"->"+tr.To.String()+":"+b.Status().State.String())
	})
	b.OnTransition(func(throttle.Transition) { panic("listener bug") })
	var removedCalls int
	remove := b.OnTransition(func(throttle.Transition) { removedCalls++ })
	b.Observe(cpuSample(epoch, 99))
	remove()
	remove()
	b.Observe(cpuSample(epoch.Add(31*time.Second), 10))
	b.Observe(cpuSample(epoch.Add(32*time.Second), 10))
	want := []string{"closed->open:open", "open->half-open:half-open", "half-open->closed:closed"}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Errorf("transitions %v, want %v", seen, want)
	}
	if removedCalls != 1 {
		t.Errorf("removed listener called %d times, want 1", removedCalls)
	}
}

func TestBreakerStatusStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(t, throttle.BreakerOptions{CheckInterval: time.Second})
		if !b.Status().Stale {
			t.Error("no sample yet, not stale")
		}
		b.Observe(cpuSample(time.Now(), 10))
		if b.Status().Stale {
			t.Error("fresh sample reported stale")
		}
		time.Sleep(3*time.Second + 1)
		if !b.Status().Stale {
			t.Error("no sample for 3 intervals, not stale")
		}
	})
}

func TestBreakerSetThreshold(t *testing.T) {
	b := newBreaker(t, throttle.BreakerOptions{Thresholds: map[string]float64{"cpu_percent": 90}})
	if err := b.SetThreshold("gpu_temp_c", 70); err != nil {
		t.Fatal(err)
	}
	if err := b.SetThreshold("cpu_percent", 101); err == nil || !strings.Contains(err.Error(), `Thresholds["cpu_percent"] = 101: must be in (0, 100]`) {
		t.Errorf("SetThreshold(cpu 101) = %v", err)
	}
	s := cpuSample(epoch, 10)
	s.Signals = []throttle.SignalValue{{Name: "gpu_temp_c", Unit: "°C", Value: 72}}
	b.Observe(s)
	var le *throttle.LimitError
	if err := b.Check(); !errors.As(err, &le) || le.Kind != "gpu_temp_c" || le.Unit != "°C" {
		t.Errorf("extra signal: Check = %v (%+v)", err, le)
	}
}

func TestNewBreakerRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts throttle.BreakerOptions
		want string
	}{
		{"empty thresholds", throttle.BreakerOptions{Thresholds: map[string]float64{}}, "Thresholds is empty"},
		{"percent over 100", throttle.BreakerOptions{Thresholds: map[string]float64{"memory_percent": 120}}, `Thresholds["memory_percent"] = 120: must be in (0, 100]`},
		{"percent zero", throttle.BreakerOptions{Thresholds: map[string]float64{"disk_percent": 0}}, `Thresholds["disk_percent"] = 0: must be in (0, 100]`},
		{"negative temperature", throttle.BreakerOptions{Thresholds: map[string]float64{"temperature_c": -5}}, `Thresholds["temperature_c"] = -5: must be > 0`},
		{"infinite load", throttle.BreakerOptions{Thresholds: map[string]float64{"load1": math.Inf(1)}}, `Thresholds["load1"] = +Inf`},
		{"margin 100", throttle.BreakerOptions{MarginPercent: 100}, "MarginPercent = 100: must be in (0, 100)"},
		{"negative margin", throttle.BreakerOptions{MarginPercent: -1}, "MarginPercent = -1"},
		{"negative TripAfter", throttle.BreakerOptions{TripAfter: -1}, "TripAfter = -1"},
		{"negative probes", throttle.BreakerOptions{HalfOpenProbes: -2}, "HalfOpenProbes = -2"},
		{"negative cooldown", throttle.BreakerOptions{Cooldown: -time.Second}, "BreakerOptions.Cooldown = -1s: must be > 0"},
		{"negative interval", throttle.BreakerOptions{CheckInterval: -time.Second}, "CheckInterval = -1s: must be > 0"},
		{"cap under cooldown", throttle.BreakerOptions{Cooldown: time.Minute, MaxCooldown: time.Second}, "MaxCooldown = 1s: must be >= Cooldown (1m0s)"},
		{"shrinking backoff", throttle.BreakerOptions{BackoffFactor: 0.5}, "BackoffFactor = 0.5: must be in [1, 100]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := throttle.NewBreaker(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "throttle: ") {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
