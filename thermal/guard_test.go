package thermal_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/thermal"
)

var (
	_ executor.Gate    = (*thermal.Guard)(nil)
	_ executor.Checker = (*thermal.Guard)(nil)
)

func TestGuardCheck(t *testing.T) {
	tests := []struct {
		name      string
		opts      thermal.GuardOptions
		temps     []float64
		wantLimit float64 // 0 = Check returns nil
		wantPeak  float64
		detail    string
	}{
		{"cool", thermal.GuardOptions{}, []float64{50}, 0, 0, ""},
		{"warning passes by default", thermal.GuardOptions{}, []float64{80}, 0, 0, ""},
		{"warning trips when asked", thermal.GuardOptions{TripAtWarning: true}, []float64{76, 78, 77}, 75, 78, "now 77.0 °C; warning until below 72.0 °C"},
		{"critical", thermal.GuardOptions{}, []float64{86, 88}, 85, 88, "now 88.0 °C; cooling down until"},
		{"cooling down reports the peak", thermal.GuardOptions{}, []float64{88, 60}, 85, 88, "now 60.0 °C"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fixture(t, "pi4")
			m, err := thermal.New(thermal.Options{SysfsRoot: root})
			if err != nil {
				t.Fatal(err)
			}
			g, err := thermal.NewGuard(m, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Check(); err != nil {
				t.Fatalf("Check() before any poll = %v", err)
			}
			now := time.Now()
			for i, c := range tt.temps {
				setTemp(t, root, "thermal_zone0", c)
				if err := m.Poll(now.Add(time.Duration(i) * time.Second)); err != nil {
					t.Fatal(err)
				}
			}
			err = g.Check()
			if tt.wantLimit == 0 {
				if err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				return
			}
			var le *limit.Error
			if !errors.As(err, &le) || !errors.Is(err, limit.ErrExceeded) {
				t.Fatalf("Check() = %v, want a *limit.Error", err)
			}
			if le.Kind != limit.Temperature || le.Limit != tt.wantLimit || le.Current != tt.wantPeak ||
				le.Unit != "°C" || le.Subject != "cpu-thermal" || !strings.Contains(le.Detail, tt.detail) {
				t.Errorf("Check() = %#v", le)
			}
		})
	}
}

func TestNewGuardNilManager(t *testing.T) {
	if _, err := thermal.NewGuard(nil, thermal.GuardOptions{}); err == nil {
		t.Fatal("NewGuard(nil) succeeded")
	}
}

// Wait blocks while critical and returns within one poll of the cooldown
// ending, driven by the real polling goroutine on virtual time.
func TestGuardWaitReleasesAfterCooldown(t *testing.T) {
	root := fixture(t, "pi4")
	synctest.Test(t, func(t *testing.T) {
		m, err := thermal.New(thermal.Options{SysfsRoot: root, CooldownBase: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		g, err := thermal.NewGuard(m, thermal.GuardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		setTemp(t, root, "thermal_zone0", 90)
		if err := m.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer m.Close()

		start := time.Now()
		released := make(chan time.Duration, 1)
		go func() {
			if err := g.Wait(context.Background()); err != nil {
				t.Error(err)
			}
			released <- time.Since(start)
		}()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		select {
		case d := <-released:
			t.Fatalf("Wait returned after %v while critical", d)
		default:
		}
		setTemp(t, root, "thermal_zone0", 50) // at t=5 s; the last hot reading was at t=4 s
		d := <-released
		if d < 14*time.Second || d > 15*time.Second {
			t.Errorf("Wait returned after %v, want at the first poll ≥ 4 s + 10 s cooldown", d)
		}
	})
}

func TestGuardWaitContext(t *testing.T) {
	root := fixture(t, "pi4")
	synctest.Test(t, func(t *testing.T) {
		m, err := thermal.New(thermal.Options{SysfsRoot: root})
		if err != nil {
			t.Fatal(err)
		}
		g, _ := thermal.NewGuard(m, thermal.GuardOptions{})
		setTemp(t, root, "thermal_zone0", 90)
		if err := m.Start(t.Context()); err != nil {
			t.Fatal(err)
		}

		// Cancelled with a cause: the cause comes back.
		cause := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(t.Context())
		go func() { time.Sleep(time.Second); cancel(cause) }()
		if err := g.Wait(ctx); !errors.Is(err, cause) {
			t.Errorf("Wait after cancel = %v, want the cause", err)
		}

		// A deadline before the cooldown ends fails fast, without waiting.
		start := time.Now()
		ctx, cancel2 := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel2()
		err = g.Wait(ctx)
		var le *limit.Error
		if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &le) || time.Since(start) != 0 {
			t.Errorf("Wait with a short deadline = %v after %v; want an immediate DeadlineExceeded + *limit.Error", err, time.Since(start))
		}

		// Closing the Manager releases waiters with ErrClosed.
		done := make(chan error, 1)
		go func() { done <- g.Wait(context.Background()) }()
		time.Sleep(time.Second)
		m.Close()
		if err := <-done; !errors.Is(err, thermal.ErrClosed) || !errors.As(err, &le) {
			t.Errorf("Wait when closed = %v, want ErrClosed and the *limit.Error", err)
		}
	})
}

func TestGuardWaitNotBlockedWhenCool(t *testing.T) {
	m, err := thermal.New(thermal.Options{SysfsRoot: fixture(t, "pi4")})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Poll(time.Now()); err != nil {
		t.Fatal(err)
	}
	g, _ := thermal.NewGuard(m, thermal.GuardOptions{TripAtWarning: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Wait(ctx); err != nil {
		t.Errorf("Wait when cool = %v, want nil even with a done ctx", err)
	}
}

func BenchmarkGuardCheck(b *testing.B) {
	m, err := thermal.New(thermal.Options{SysfsRoot: fixture(b, "pi4")})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Poll(time.Now()); err != nil {
		b.Fatal(err)
	}
	g, _ := thermal.NewGuard(m, thermal.GuardOptions{})
	b.Run("guard", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if g.Check() != nil {
				b.Fatal("tripped")
			}
		}
	})
	// Baseline: TemperatureC, a bare atomic load of the snapshot.
	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := m.TemperatureC(); !ok {
				b.Fatal("no reading")
			}
		}
	})
}
