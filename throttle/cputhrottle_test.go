package throttle_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/throttle"
)

// fakeCPU is a process CPU clock the test advances.
type fakeCPU struct{ ns atomic.Int64 }

func (c *fakeCPU) read() (time.Duration, error) { return time.Duration(c.ns.Load()), nil }
func (c *fakeCPU) burn(d time.Duration)         { c.ns.Add(int64(d)) }

func newThrottler(t *testing.T, opts throttle.CPUThrottlerOptions) *throttle.CPUThrottler {
	t.Helper()
	th, err := throttle.NewCPUThrottler(opts)
	if err != nil {
		t.Fatal(err)
	}
	return th
}

// TestCPUThrottlerHoldsTarget runs a simulated CPU-bound loop (each
// operation burns its wall time in CPU time on one core) on virtual time
// and checks the delays bring the average down to the target.
func TestCPUThrottlerHoldsTarget(t *testing.T) {
	tests := []struct {
		name   string
		target float64
		cores  float64
		window time.Duration
		op     time.Duration
	}{
		{"50 % of one core, 10 ms operations", 50, 1, 5 * time.Second, 10 * time.Millisecond},
		{"70 % default window, 1 ms operations", 70, 1, 0, time.Millisecond},
		{"25 % of 2 cores, 5 ms operations", 25, 2, time.Second, 5 * time.Millisecond},
		{"20 % of one core, 250 ms operations", 20, 1, 2 * time.Second, 250 * time.Millisecond},
		{"operations larger than the budget", 10, 1, time.Second, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cpu := &fakeCPU{}
				th := newThrottler(t, throttle.CPUThrottlerOptions{TargetPercent: tt.target, Cores: tt.cores, Window: tt.window, CPUTime: cpu.read})
				window := tt.window
				if window == 0 {
					window = 5 * time.Second
				}
				budget := time.Duration(float64(window) * tt.target / 100 * tt.cores)
				start := time.Now()
				type point struct {
					at  time.Time
					cpu time.Duration
				}
				trace := []point{{start, 0}}
				for time.Since(start) < time.Minute {
					err := th.Do(context.Background(), func(context.Context) error {
						trace = append(trace, point{time.Now(), time.Duration(cpu.ns.Load())})
						time.Sleep(tt.op)
						cpu.burn(tt.op)
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					trace = append(trace, point{time.Now(), time.Duration(cpu.ns.Load())})
				}
				elapsed := time.Since(start)
				got := float64(cpu.ns.Load()) / float64(elapsed) / tt.cores * 100

				// No window holds more than the budget (or, for
				// operations larger than it, one operation). The CPU
				// history is interpolated between marks window/64
				// apart: allow that much.
				limit := max(budget, tt.op) + budget/32
				j := 0
				for i := range trace {
					for trace[i].at.Sub(trace[j].at) > window {
						j++
					}
					if used := trace[i].cpu - trace[j].cpu; used > limit {
						t.Fatalf("%v of CPU in the window ending at +%v, budget %v", used, trace[i].at.Sub(start), budget)
					}
				}
				// On average, at the target when operations are small
				// against the budget; under it otherwise.
				tolerance := 1.0
				if tt.op*20 > budget {
					tolerance = tt.target / 2
				}
				if got > tt.target+0.5 || got < tt.target-tolerance {
					t.Errorf("average %.2f%%, want %v%% (-%.1f, +0.5)", got, tt.target, tolerance)
				}
				if st := th.Stats(); st.Delays == 0 || st.Delayed <= 0 {
					t.Errorf("stats %+v, want delays", st)
				}
				t.Logf("average %.2f%% of %v core(s)", got, tt.cores)
			})
		})
	}
}

func TestCPUThrottlerCheckAndWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cpu := &fakeCPU{}
		th := newThrottler(t, throttle.CPUThrottlerOptions{TargetPercent: 50, Window: 4 * time.Second, CPUTime: cpu.read})
		if err := th.Check(); err != nil {
			t.Fatalf("idle: Check = %v", err)
		}
		time.Sleep(time.Second)
		cpu.burn(3 * time.Second) // 3 s of CPU in 1 s (several threads)
		var le *limit.Error
		if err := th.Check(); !errors.As(err, &le) || le.Kind != limit.CPU || le.Subject != "paced CPU" || le.Limit != 50 || le.Current != 75 {
			t.Fatalf("over: Check = %v (%+v), want 75%% > 50%%", err, le)
		}
		// The 3 s are spread over [0, 1 s]: 1 s of them is shed once the
		// window starts at 1/3 s, 4 s after that, 3 1/3 s from now.
		if d, _ := th.Delay(); d != 3*time.Second+time.Second/3 {
			t.Errorf("Delay = %v, want 3.333333333s", d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if err := th.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, limit.ErrExceeded) {
			t.Errorf("Wait with a short deadline = %v, want DeadlineExceeded and a limit error", err)
		}
		if time.Since(start) != 0 {
			t.Error("Wait slept although the deadline could not be met")
		}
		cause := errors.New("stop")
		ctx2, cancel2 := context.WithCancelCause(context.Background())
		go func() { time.Sleep(time.Second); cancel2(cause) }()
		if err := th.Wait(ctx2); err != cause {
			t.Errorf("Wait cancelled = %v, want the cause", err)
		}
		start = time.Now()
		if err := th.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 2*time.Second+time.Second/3 {
			t.Errorf("Wait slept %v, want the remaining 2.333333333s", waited)
		}
	})
}

func TestCall(t *testing.T) {
	th := newThrottler(t, throttle.CPUThrottlerOptions{CPUTime: (&fakeCPU{}).read})
	got, err := throttle.Call(context.Background(), th, func(context.Context) (string, error) { return "completion", nil })
	if err != nil || got != "completion" {
		t.Errorf("Call = %q, %v", got, err)
	}
	var pe *throttle.PanicError
	if _, err := throttle.Call(context.Background(), th, func(context.Context) (int, error) { panic("client bug") }); !errors.As(err, &pe) {
		t.Errorf("Call with a panicking fn = %v", err)
	}
	want := errors.New("rate limited")
	if _, err := throttle.Call(context.Background(), th, func(context.Context) (int, error) { return 0, want }); err != want {
		t.Errorf("Call = %v, want fn's error", err)
	}
}

func TestCPUThrottlerCPUTimeFailure(t *testing.T) {
	th := newThrottler(t, throttle.CPUThrottlerOptions{CPUTime: func() (time.Duration, error) { return 0, errors.New("no rusage") }})
	if err := th.Check(); err != nil {
		t.Errorf("Check = %v, want nil (fail open)", err)
	}
	if err := th.Do(context.Background(), func(context.Context) error { return nil }); err != nil {
		t.Errorf("Do = %v", err)
	}
}

func TestNewCPUThrottlerRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts throttle.CPUThrottlerOptions
		want string
	}{
		{"target over 100", throttle.CPUThrottlerOptions{TargetPercent: 150}, "TargetPercent = 150: must be in (0, 100]"},
		{"negative target", throttle.CPUThrottlerOptions{TargetPercent: -10}, "TargetPercent = -10"},
		{"negative cores", throttle.CPUThrottlerOptions{Cores: -1}, "Cores = -1: must be > 0"},
		{"negative window", throttle.CPUThrottlerOptions{Window: -time.Second}, "Window = -1s: must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := throttle.NewCPUThrottler(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCPUThrottlerIntegration holds a real CPU-bound loop at 50 % of one
// core for 10 s and measures the process's own CPU time.
func TestCPUThrottlerIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 10 s")
	}
	spin := func(d time.Duration) {
		for s := time.Now(); time.Since(s) < d; {
		}
	}
	// The loop must be able to get well over 50 % of a core, or the test
	// says nothing.
	c0, err := throttle.ProcessCPUTime()
	if err != nil {
		t.Skip(err)
	}
	t0 := time.Now()
	spin(500 * time.Millisecond)
	c1, _ := throttle.ProcessCPUTime()
	if free := float64(c1-c0) / float64(time.Since(t0)); free < 0.6 {
		t.Skipf("the machine gives this loop only %.0f%% of a core", free*100)
	}

	th := newThrottler(t, throttle.CPUThrottlerOptions{TargetPercent: 50})
	c0, _ = throttle.ProcessCPUTime()
	t0 = time.Now()
	for time.Since(t0) < 10*time.Second {
		if err := th.Do(context.Background(), func(context.Context) error { spin(time.Millisecond); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	c1, _ = throttle.ProcessCPUTime()
	elapsed := time.Since(t0)
	got := float64(c1-c0) / float64(elapsed) * 100
	t.Logf("CPU-bound loop at a 50%% target: %.2f%% of one core over %v (%v of CPU), %d delays totalling %v",
		got, elapsed.Round(time.Millisecond), (c1 - c0).Round(time.Millisecond), th.Stats().Delays, th.Stats().Delayed.Round(time.Millisecond))
	if got > 55 {
		t.Errorf("process CPU %.2f%% of one core, want 50 ± 5", got)
	}
	if got < 45 {
		// Below the target is only a failure if the loop got the CPU
		// it asked for while it was not delayed.
		running := elapsed - th.Stats().Delayed
		if share := float64(c1-c0) / float64(running); share < 0.9 {
			t.Skipf("the machine is contended: the loop got %.0f%% of a core while running", share*100)
		}
		t.Errorf("process CPU %.2f%% of one core, want 50 ± 5", got)
	}
}

func TestCPUThrottlerSetTargetPercent(t *testing.T) {
	th := newThrottler(t, throttle.CPUThrottlerOptions{TargetPercent: 90})
	if err := th.SetTargetPercent(0); err == nil || !strings.Contains(err.Error(), "must be in (0, 100]") {
		t.Errorf("SetTargetPercent(0) = %v", err)
	}
	if err := th.SetTargetPercent(math.NaN()); err == nil {
		t.Error("SetTargetPercent(NaN) accepted")
	}
	if err := th.SetTargetPercent(40); err != nil {
		t.Fatal(err)
	}
	if got := th.TargetPercent(); got != 40 {
		t.Errorf("TargetPercent = %v, want 40", got)
	}
}
