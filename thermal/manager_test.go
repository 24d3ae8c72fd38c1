package thermal_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cemaf-go/cemaf/internal/leakcheck"
	"github.com/cemaf-go/cemaf/thermal"
)

// recorder collects callback events.
type recorder struct {
	mu  sync.Mutex
	evs []thermal.Event
}

func (r *recorder) add(e thermal.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
}

func (r *recorder) options(o thermal.Options) thermal.Options {
	o.OnWarning, o.OnCritical, o.OnNormal = r.add, r.add, r.add
	return o
}

func (r *recorder) states() []thermal.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []thermal.State
	for _, e := range r.evs {
		if e.Cause == thermal.CauseTemperature {
			s = append(s, e.State)
		}
	}
	return s
}

func (r *recorder) count(cause thermal.Cause, st thermal.State) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.evs {
		if e.Cause == cause && e.State == st {
			n++
		}
	}
	return n
}

func statesEqual(a, b []thermal.State) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestStateMachine drives Poll with explicit times over a Pi 4 tree
// (warning 75, critical 85, hysteresis 3, cooldown 30 s doubling to 2 min).
func TestStateMachine(t *testing.T) {
	type step struct {
		after time.Duration // since the previous step
		tempC float64
		want  thermal.State
	}
	tests := []struct {
		name   string
		steps  []step
		events []thermal.State
	}{
		{
			name:   "cool stays normal",
			steps:  []step{{0, 50, thermal.Normal}, {time.Second, 74.9, thermal.Normal}},
			events: nil,
		},
		{
			name: "warning and back with hysteresis",
			steps: []step{
				{0, 60, thermal.Normal}, {time.Second, 75, thermal.Warning},
				{time.Second, 72.5, thermal.Warning}, {time.Second, 72, thermal.Warning},
				{time.Second, 71.9, thermal.Normal},
			},
			events: []thermal.State{thermal.Warning, thermal.Normal},
		},
		{
			name: "swing of ±1 °C around the warning line does not flap",
			steps: []step{
				{0, 74, thermal.Normal}, {time.Second, 76, thermal.Warning}, {time.Second, 74, thermal.Warning},
				{time.Second, 76, thermal.Warning}, {time.Second, 74, thermal.Warning}, {time.Second, 76, thermal.Warning},
				{time.Second, 74, thermal.Warning},
			},
			events: []thermal.State{thermal.Warning},
		},
		{
			name: "step above critical from normal",
			steps: []step{
				{0, 50, thermal.Normal}, {time.Second, 90, thermal.Critical},
			},
			events: []thermal.State{thermal.Critical},
		},
		{
			name: "critical holds for the cooldown even when cool",
			steps: []step{
				{0, 86, thermal.Critical}, {time.Second, 60, thermal.Critical},
				{28 * time.Second, 60, thermal.Critical}, {time.Second, 60, thermal.Normal},
			},
			events: []thermal.State{thermal.Critical, thermal.Normal},
		},
		{
			name: "critical releases into warning band",
			steps: []step{
				{0, 86, thermal.Critical}, {30 * time.Second, 82, thermal.Critical}, // not below 85 − 3
				{time.Second, 81.9, thermal.Warning}, {time.Second, 71, thermal.Normal},
			},
			events: []thermal.State{thermal.Critical, thermal.Warning, thermal.Normal},
		},
		{
			name: "readings at critical extend the cooldown",
			steps: []step{
				{0, 86, thermal.Critical}, {20 * time.Second, 85, thermal.Critical},
				{29 * time.Second, 50, thermal.Critical}, {time.Second, 50, thermal.Normal},
			},
			events: []thermal.State{thermal.Critical, thermal.Normal},
		},
		{
			name: "repeated trips double the cooldown up to the cap",
			steps: []step{
				{0, 86, thermal.Critical}, {30 * time.Second, 80, thermal.Warning}, // cooldown 30 s
				{time.Second, 86, thermal.Critical}, {59 * time.Second, 80, thermal.Critical}, {time.Second, 80, thermal.Warning}, // 60 s
				{time.Second, 86, thermal.Critical}, {119 * time.Second, 80, thermal.Critical}, {time.Second, 80, thermal.Warning}, // 120 s
				{time.Second, 86, thermal.Critical}, {119 * time.Second, 80, thermal.Critical}, {time.Second, 80, thermal.Warning}, // capped at 120 s
				{time.Second, 60, thermal.Normal},
				{time.Second, 86, thermal.Critical}, {30 * time.Second, 60, thermal.Normal}, // reset to 30 s after Normal
			},
			events: []thermal.State{
				thermal.Critical, thermal.Warning, thermal.Critical, thermal.Warning, thermal.Critical, thermal.Warning,
				thermal.Critical, thermal.Warning, thermal.Normal, thermal.Critical, thermal.Normal,
			},
		},
		{
			name: "unreadable sensor keeps the state",
			steps: []step{
				{0, 80, thermal.Warning}, {time.Second, -1, thermal.Warning}, {time.Second, 60, thermal.Normal},
			},
			events: []thermal.State{thermal.Warning, thermal.Normal},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fixture(t, "pi4")
			var rec recorder
			m, err := thermal.New(rec.options(thermal.Options{SysfsRoot: root, CooldownMax: 2 * time.Minute}))
			if err != nil {
				t.Fatal(err)
			}
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i, s := range tt.steps {
				now = now.Add(s.after)
				if s.tempC < 0 {
					writeFile(t, root+"/class/thermal/thermal_zone0/temp", "")
					if err := m.Poll(now); !errors.Is(err, thermal.ErrNoSensors) {
						t.Fatalf("step %d: Poll with an empty temp = %v, want ErrNoSensors", i, err)
					}
				} else {
					setTemp(t, root, "thermal_zone0", s.tempC)
					if err := m.Poll(now); err != nil {
						t.Fatal(err)
					}
				}
				if got := m.State(); got != s.want {
					t.Fatalf("step %d (%g °C): State() = %v, want %v", i, s.tempC, got, s.want)
				}
			}
			if got := rec.states(); !statesEqual(got, tt.events) {
				t.Errorf("callbacks = %v, want %v", got, tt.events)
			}
		})
	}
}

func TestEventFields(t *testing.T) {
	root := fixture(t, "pi4")
	var rec recorder
	m, err := thermal.New(rec.options(thermal.Options{SysfsRoot: root}))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	setTemp(t, root, "thermal_zone0", 86.5)
	if err := m.Poll(now); err != nil {
		t.Fatal(err)
	}
	if len(rec.evs) != 1 {
		t.Fatalf("events = %+v", rec.evs)
	}
	e := rec.evs[0]
	if e.Time != now || e.State != thermal.Critical || e.Previous != thermal.Normal || e.TempC != 86.5 ||
		e.Sensor != "cpu-thermal" || e.Cooldown != thermal.DefaultCooldownBase || e.Cause != thermal.CauseTemperature {
		t.Errorf("event = %+v", e)
	}
	st := m.Status()
	if !st.CooldownUntil.Equal(now.Add(thermal.DefaultCooldownBase)) || st.Trips != 1 || st.PeakC != 86.5 || st.Headroom != 1 {
		t.Errorf("status = %+v", st)
	}
}

func TestUnderVoltageRaisesWarning(t *testing.T) {
	root := fixture(t, "pi4")
	var rec recorder
	m, err := thermal.New(rec.options(thermal.Options{SysfsRoot: root}))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, v := range []string{"50000", "50005", "50005", "50000", "50005"} {
		writeFile(t, throttledPath(root), v+"\n")
		if err := m.Poll(now.Add(time.Duration(i) * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if n := rec.count(thermal.CauseUnderVoltage, thermal.Normal); n != 2 {
		t.Errorf("under-voltage warnings = %d, want 2 (one per onset)", n)
	}
	if m.State() != thermal.Normal {
		t.Errorf("under-voltage changed the thermal state to %v", m.State())
	}
	f, ok := m.ThrottleFlags()
	if !ok || !f.Has(thermal.UnderVoltage|thermal.Throttled|thermal.UnderVoltageOccurred) {
		t.Errorf("ThrottleFlags() = %v, %v", f, ok)
	}
}

func TestCallbackPanicIsRecovered(t *testing.T) {
	root := fixture(t, "pi4")
	var logs bytes.Buffer
	var normal atomic.Int32
	m, err := thermal.New(thermal.Options{
		SysfsRoot:  root,
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
		OnCritical: func(thermal.Event) { panic("boom") },
		OnNormal:   func(thermal.Event) { normal.Add(1) },
		Interval:   time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	setTemp(t, root, "thermal_zone0", 90)
	if err := m.Poll(now); err != nil {
		t.Fatal(err)
	}
	setTemp(t, root, "thermal_zone0", 40)
	if err := m.Poll(now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if normal.Load() != 1 {
		t.Errorf("OnNormal ran %d times after a panicking OnCritical, want 1", normal.Load())
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}

// A callback that polls again must not deadlock; its events are delivered
// after it returns, in order.
func TestCallbackMayPoll(t *testing.T) {
	root := fixture(t, "pi4")
	var m *thermal.Manager
	var order []thermal.State
	now := time.Now()
	opts := thermal.Options{SysfsRoot: root}
	opts.OnCritical = func(e thermal.Event) {
		order = append(order, e.State)
		setTemp(t, root, "thermal_zone0", 40)
		if err := m.Poll(now.Add(time.Hour)); err != nil {
			t.Error(err)
		}
		order = append(order, -1) // marks the callback's return
	}
	opts.OnNormal = func(e thermal.Event) { order = append(order, e.State) }
	var err error
	m, err = thermal.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	setTemp(t, root, "thermal_zone0", 90)
	if err := m.Poll(now); err != nil {
		t.Fatal(err)
	}
	if want := []thermal.State{thermal.Critical, -1, thermal.Normal}; !statesEqual(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
}

func TestStartCloseLifecycle(t *testing.T) {
	leakcheck.Check(t)
	m, err := thermal.New(thermal.Options{SysfsRoot: fixture(t, "pi4"), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c, ok := m.TemperatureC(); !ok || c != 48.686 {
		t.Errorf("TemperatureC() after Start = %g, %v; want the first reading", c, ok)
	}
	if err := m.Start(context.Background()); !errors.Is(err, thermal.ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	for range 2 {
		if err := m.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	}
	if err := m.Start(context.Background()); !errors.Is(err, thermal.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	if err := m.Poll(time.Now()); !errors.Is(err, thermal.ErrClosed) {
		t.Errorf("Poll after Close = %v, want ErrClosed", err)
	}
}

func TestCloseWithoutStart(t *testing.T) {
	m, err := thermal.New(thermal.Options{SysfsRoot: fixture(t, "pi4")})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// The polling goroutine on virtual time: a step above critical is reported
// within one poll interval.
func TestStepAboveCriticalWithinOneInterval(t *testing.T) {
	root := fixture(t, "pi4")
	synctest.Test(t, func(t *testing.T) {
		const interval = 2 * time.Second
		var critAt atomic.Int64
		var crit atomic.Int32
		m, err := thermal.New(thermal.Options{
			SysfsRoot: root,
			Interval:  interval,
			OnCritical: func(e thermal.Event) {
				crit.Add(1)
				critAt.Store(e.Time.UnixNano())
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer m.Close()

		time.Sleep(10*interval + interval/3) // between two polls
		synctest.Wait()
		if m.State() != thermal.Normal {
			t.Fatalf("State() = %v before the step", m.State())
		}
		step := time.Now()
		setTemp(t, root, "thermal_zone0", 86)
		time.Sleep(interval)
		synctest.Wait()
		if m.State() != thermal.Critical || crit.Load() != 1 {
			t.Fatalf("State() = %v, OnCritical ran %d times; want critical once", m.State(), crit.Load())
		}
		if d := time.Unix(0, critAt.Load()).Sub(step); d < 0 || d > interval {
			t.Errorf("critical reported %v after the step, want within %v", d, interval)
		}
		if c, _ := m.TemperatureC(); c != 86 {
			t.Errorf("TemperatureC() = %g", c)
		}
	})
}

// The polling goroutine on the Nano tree: PMIC-Die at 100 °C never trips.
func TestNanoPMICDieNeverTrips(t *testing.T) {
	root := fixture(t, "jetson-nano")
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		m, err := thermal.New(rec.options(thermal.Options{SysfsRoot: root}))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		m.Close()
		if m.State() != thermal.Normal || len(rec.states()) != 0 {
			t.Errorf("State() = %v, events %v; want normal, none", m.State(), rec.states())
		}
		if c, _ := m.TemperatureC(); c != 38 {
			t.Errorf("TemperatureC() = %g, want 38 (CPU-therm), not PMIC-Die's 100", c)
		}
	})
	// Control: choosing PMIC-Die explicitly does trip, so the test above
	// can fail.
	m, err := thermal.New(thermal.Options{SysfsRoot: root, Sensors: []string{"PMIC-Die"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Poll(time.Now()); err != nil {
		t.Fatal(err)
	}
	if m.State() != thermal.Critical {
		t.Errorf("PMIC-Die chosen explicitly: State() = %v, want critical", m.State())
	}
}

// The polling goroutine while the temperature swings ±1 °C around the
// warning line every interval: one warning, no flapping. Without hysteresis
// the same swing flaps, which shows the test can fail.
func TestHysteresisPreventsFlapping(t *testing.T) {
	for _, tt := range []struct {
		name        string
		hysteresisC float64
		flaps       bool
	}{
		{"default hysteresis", 0, false},
		{"tiny hysteresis flaps", 0.001, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := fixture(t, "pi4")
			synctest.Test(t, func(t *testing.T) {
				var rec recorder
				m, err := thermal.New(rec.options(thermal.Options{SysfsRoot: root, HysteresisC: tt.hysteresisC}))
				if err != nil {
					t.Fatal(err)
				}
				setTemp(t, root, "thermal_zone0", 74)
				if err := m.Start(t.Context()); err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				time.Sleep(thermal.DefaultInterval / 2) // write half-way between polls
				for i := range 20 {
					setTemp(t, root, "thermal_zone0", []float64{76, 74}[i%2])
					time.Sleep(thermal.DefaultInterval)
				}
				synctest.Wait()
				warnings, normals := rec.count(thermal.CauseTemperature, thermal.Warning), rec.count(thermal.CauseTemperature, thermal.Normal)
				if tt.flaps {
					if warnings != 10 || normals != 10 {
						t.Errorf("without hysteresis: %d warnings, %d normals; want 10 each", warnings, normals)
					}
					return
				}
				if warnings != 1 || normals != 0 {
					t.Errorf("%d warnings, %d normals; want 1 and 0", warnings, normals)
				}
			})
		})
	}
}

// Start's ctx ending stops the polling goroutine too.
func TestStartContextEnds(t *testing.T) {
	root := fixture(t, "pi4")
	synctest.Test(t, func(t *testing.T) {
		m, err := thermal.New(thermal.Options{SysfsRoot: root})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		cancel()
		synctest.Wait()
		before := m.Status().Time
		setTemp(t, root, "thermal_zone0", 90)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if m.Status().Time != before || m.State() != thermal.Normal {
			t.Error("polling continued after Start's ctx ended")
		}
		m.Close()
	})
}
