package thermal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Manager polls the chosen temperature sensors, keeps the thermal State with
// hysteresis and cooldown, and calls the Options callbacks on transitions.
//
// A Manager is created by New, which discovers the sensors and starts no
// goroutine. Start runs the polling goroutine until Close (or until the ctx
// given to Start ends); alternatively the owner calls Poll itself. All
// methods are safe for concurrent use. The read accessors (TemperatureC,
// State, Headroom, Forecast, Status, ThrottleFlags) load an atomic snapshot
// of the latest poll: they do no I/O, take no lock and do not allocate.
type Manager struct {
	// Immutable after New.
	cfg           config
	board         board
	sensors       []zone
	throttledPath string
	log           *slog.Logger
	closedCh      chan struct{}

	snap atomic.Pointer[snapshot]

	// pollMu serialises Poll: the sensor reads, the state update and
	// publishing the snapshot. It is never held while callbacks run.
	pollMu sync.Mutex
	// skipped maps a sensor's temp path to the error of its last failed
	// read, so that only changes are logged. Guarded by pollMu.
	skipped map[string]string

	// mu guards the fields below.
	mu         sync.Mutex
	state      State
	trips      int           // critical trips since the state was last Normal
	cooldown   time.Duration // cooldown of the current critical episode
	until      time.Time     // the state may leave Critical at or after this time
	peakC      float64       // hottest reading since the state left Normal
	samples    []sample      // the last ForecastWindow readings, oldest first
	flags      ThrottleFlags
	flagsOK    bool
	pending    []Event // events waiting for delivery
	delivering bool    // a goroutine is delivering pending events
	started    bool
	closed     bool
	cancel     context.CancelFunc
	done       chan struct{} // closed when the polling goroutine returns
}

// snapshot is the immutable result of one poll, published atomically.
type snapshot struct {
	at      time.Time
	valid   bool // a chosen sensor was read
	tempC   float64
	sensor  string
	state   State
	peakC   float64
	until   time.Time
	trips   int
	slope   float64 // °C per second
	slopeOK bool
	flags   ThrottleFlags
	flagsOK bool
	// next is closed when a newer snapshot replaces this one.
	next chan struct{}
}

// New discovers the thermal zones under opts.SysfsRoot, chooses the sensors
// (Options.SensorPath, else Options.Sensors, else the board table), derives
// the thresholds and validates the options. It reads sysfs but starts no
// goroutine; call Start, or Poll, to take readings.
//
// It returns an error wrapping ErrNoSensors when there is no zone, or no
// chosen zone can be read, and an error naming the field or path for bad
// options.
func New(opts Options) (*Manager, error) {
	cfg, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	classDir := filepath.Join(cfg.SysfsRoot, "class", "thermal")
	zones, err := scanZones(classDir)
	if err != nil {
		return nil, err
	}

	throttledPath := cfg.ThrottledPath
	if throttledPath != "" {
		b, err := os.ReadFile(throttledPath)
		if err != nil {
			return nil, fmt.Errorf("thermal: Options.ThrottledPath %q: %w", throttledPath, err)
		}
		if _, err := ParseThrottled(b); err != nil {
			return nil, fmt.Errorf("thermal: Options.ThrottledPath %q: %w", throttledPath, err)
		}
	} else {
		throttledPath = findThrottledPath(cfg.SysfsRoot)
	}

	var b board
	if cfg.Board != "" {
		b, _ = boardByName(cfg.Board)
	} else {
		b = detectBoard(readModel(cfg.SysfsRoot), zones, throttledPath != "")
	}

	var chosen []zone
	if cfg.SensorPath != "" {
		z, err := sensorFromPath(cfg.SensorPath)
		if err != nil {
			return nil, err
		}
		chosen = []zone{z}
	} else {
		if len(zones) == 0 {
			return nil, fmt.Errorf("%w: no thermal_zone* under %s", ErrNoSensors, classDir)
		}
		var reasons []string
		readable := 0
		for _, z := range zones {
			ok, why := b.choice(z.typ, cfg.Sensors)
			if ok && z.mode == "disabled" {
				ok, why = false, "disabled"
			}
			if !ok {
				reasons = append(reasons, fmt.Sprintf("%s (%s): %s", z.typ, z.name, why))
				continue
			}
			chosen = append(chosen, z)
			if _, err := readTemp(z.path); err != nil {
				reasons = append(reasons, fmt.Sprintf("%s (%s): %v", z.typ, z.name, err))
			} else {
				readable++
			}
		}
		if readable == 0 {
			return nil, fmt.Errorf("%w on board %s: %s", ErrNoSensors, b.name, strings.Join(reasons, "; "))
		}
	}
	if err := cfg.deriveThresholds(b, chosen); err != nil {
		return nil, err
	}

	m := &Manager{
		cfg:           cfg,
		board:         b,
		sensors:       chosen,
		throttledPath: throttledPath,
		log:           cfg.Logger,
		closedCh:      make(chan struct{}),
		skipped:       make(map[string]string),
		samples:       make([]sample, 0, cfg.ForecastWindow),
	}
	m.snap.Store(&snapshot{next: make(chan struct{})})
	m.log.Info("thermal: sensors chosen",
		"board", b.name, "sensors", m.Sensors(),
		"warning_c", cfg.WarningC, "critical_c", cfg.CriticalC, "hysteresis_c", cfg.HysteresisC,
		"throttled_path", throttledPath)
	return m, nil
}

// sensorFromPath builds the zone for Options.SensorPath.
func sensorFromPath(p string) (zone, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return zone{}, fmt.Errorf("thermal: Options.SensorPath %q: %w", p, err)
	}
	dir, temp := filepath.Dir(p), p
	if fi.IsDir() {
		dir, temp = p, filepath.Join(p, "temp")
	}
	b, err := os.ReadFile(temp)
	if err != nil {
		return zone{}, fmt.Errorf("thermal: Options.SensorPath %q: %w", temp, err)
	}
	c, err := parseMillidegrees(b)
	if err != nil {
		return zone{}, fmt.Errorf("thermal: Options.SensorPath %q: %v: must hold a temperature in millidegrees Celsius", temp, err)
	}
	if c < minPlausibleC || c > maxPlausibleC {
		return zone{}, fmt.Errorf("thermal: Options.SensorPath %q: %g °C: must be in [%g, %g] °C", temp, c, minPlausibleC, maxPlausibleC)
	}
	z := readZone(temp, dir, temp)
	if z.typ == "" {
		z.typ = temp
	}
	return z, nil
}

// Board returns the name of the board-table row in use (BoardRaspberryPi,
// BoardJetsonNano, BoardJetsonOrin or BoardGeneric).
func (m *Manager) Board() string { return m.board.name }

// Sensors returns the zone types of the chosen sensors (for
// Options.SensorPath without a type file, the path).
func (m *Manager) Sensors() []string {
	out := make([]string, len(m.sensors))
	for i, z := range m.sensors {
		out[i] = z.typ
	}
	return out
}

// Thresholds returns the warning and critical temperatures in °C in use
// (given, or derived by New).
func (m *Manager) Thresholds() (warningC, criticalC float64) {
	return m.cfg.WarningC, m.cfg.CriticalC
}

// Start takes a first reading, then starts the polling goroutine, which
// polls every Options.Interval until ctx ends or Close is called. It returns
// ErrStarted if called twice and ErrClosed after Close. A first reading that
// fails (no chosen sensor readable right now) is logged, not returned.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		return ErrClosed
	case m.started:
		m.mu.Unlock()
		return ErrStarted
	}
	m.started = true
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	m.cancel, m.done = cancel, done
	m.mu.Unlock()

	if err := m.Poll(time.Now()); err != nil && !errors.Is(err, ErrClosed) {
		m.log.Warn("thermal: first poll", "err", err)
	}
	go m.loop(ctx, done)
	return nil
}

func (m *Manager) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.Poll(time.Now()); err != nil && !errors.Is(err, ErrClosed) {
				m.log.Debug("thermal: poll", "err", err)
			}
		}
	}
}

// Close stops the polling goroutine and waits for it, and makes guards on
// this Manager stop waiting (they return ErrClosed). It is idempotent and
// always returns nil. The last snapshot stays readable.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	cancel, done := m.cancel, m.done
	m.mu.Unlock()
	close(m.closedCh)
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

// pollResult is what one round of sensor reads found.
type pollResult struct {
	valid   bool
	tempC   float64
	sensor  string
	errs    []string
	flags   ThrottleFlags
	flagsOK bool
}

// Poll reads the chosen sensors (and the Raspberry Pi throttle flags) once,
// updates the State as of now and delivers the resulting callbacks before
// returning. Start calls it every Interval; owners that run their own loop
// may call it instead. Sensors that fail to read are skipped for this poll
// and never cause a transition; if none can be read, the State is kept and
// Poll returns an error wrapping ErrNoSensors. After Close it returns
// ErrClosed.
//
// The state rules, with T the hottest reading, W = WarningC, C = CriticalC and
// H = HysteresisC:
//   - T ≥ C: the state becomes (or stays) Critical. Entering Critical counts
//     a trip; the cooldown is CooldownBase·2^(trips−1), capped at
//     CooldownMax. Every reading ≥ C moves the end of the cooldown to
//     now + cooldown.
//   - Critical, once now ≥ end of cooldown and T < C − H: Warning if
//     T ≥ W − H, else Normal.
//   - Warning and T < W − H: Normal.
//   - Normal and T ≥ W: Warning.
//   - Reaching Normal resets the trip count, so the backoff starts again
//     from CooldownBase.
//
// Cost: one small file read per chosen sensor.
func (m *Manager) Poll(now time.Time) error {
	select {
	case <-m.closedCh:
		return ErrClosed
	default:
	}
	m.pollMu.Lock()
	r, logs := m.read()
	m.mu.Lock()
	evs := m.updateLocked(now, r)
	m.mu.Unlock()
	m.pollMu.Unlock()

	for _, l := range logs {
		m.log.Info("thermal: sensor", "change", l)
	}
	m.deliver(evs)
	if !r.valid {
		return fmt.Errorf("%w: %s", ErrNoSensors, strings.Join(r.errs, "; "))
	}
	return nil
}

// read reads every chosen sensor and the throttle flags. It returns the log
// lines for sensors whose readability changed. Called with pollMu held.
func (m *Manager) read() (pollResult, []string) {
	var r pollResult
	var logs []string
	for _, z := range m.sensors {
		c, err := readTemp(z.path)
		if err != nil {
			msg := err.Error()
			if m.skipped[z.path] != msg {
				m.skipped[z.path] = msg
				logs = append(logs, fmt.Sprintf("%s (%s) skipped: %s", z.typ, z.name, msg))
			}
			r.errs = append(r.errs, fmt.Sprintf("%s (%s): %s", z.typ, z.name, msg))
			continue
		}
		if _, was := m.skipped[z.path]; was {
			delete(m.skipped, z.path)
			logs = append(logs, fmt.Sprintf("%s (%s) readable again", z.typ, z.name))
		}
		if !r.valid || c > r.tempC {
			r.valid, r.tempC, r.sensor = true, c, z.typ
		}
	}
	if m.throttledPath != "" {
		if b, err := os.ReadFile(m.throttledPath); err == nil {
			if f, err := ParseThrottled(b); err == nil {
				r.flags, r.flagsOK = f, true
			}
		}
	}
	return r, logs
}

// updateLocked runs the state machine on one poll result and publishes the
// new snapshot. It is pure apart from the Manager's fields: time comes from
// now. Called with pollMu and mu held.
//
// See Poll for the rules.
func (m *Manager) updateLocked(now time.Time, r pollResult) []Event {
	var evs []Event
	if r.valid {
		if len(m.samples) == m.cfg.ForecastWindow {
			copy(m.samples, m.samples[1:])
			m.samples = m.samples[:len(m.samples)-1]
		}
		m.samples = append(m.samples, sample{now, r.tempC})

		t, w, c, h := r.tempC, m.cfg.WarningC, m.cfg.CriticalC, m.cfg.HysteresisC
		prev, next := m.state, m.state
		switch {
		case t >= c:
			if prev != Critical {
				m.trips++
				m.cooldown = backoff(m.cfg.CooldownBase, m.cfg.CooldownMax, m.trips)
			}
			m.until = now.Add(m.cooldown)
			next = Critical
		case prev == Critical:
			if !now.Before(m.until) && t < c-h {
				next = Normal
				if t >= w-h {
					next = Warning
				}
			}
		case prev == Warning:
			if t < w-h {
				next = Normal
			}
		case prev == Normal:
			if t >= w {
				next = Warning
			}
		}
		if prev == Normal || t > m.peakC {
			m.peakC = t
		}
		if next == Normal {
			m.trips = 0
		}
		if next != prev {
			m.state = next
			ev := Event{Time: now, Cause: CauseTemperature, State: next, Previous: prev, TempC: t, Sensor: r.sensor, Flags: r.flags}
			if next == Critical {
				ev.Cooldown = m.cooldown
			}
			evs = append(evs, ev)
		}
	}
	if r.flagsOK {
		if r.flags.Has(UnderVoltage) && !(m.flagsOK && m.flags.Has(UnderVoltage)) {
			evs = append(evs, Event{Time: now, Cause: CauseUnderVoltage, State: m.state, Previous: m.state, TempC: r.tempC, Sensor: r.sensor, Flags: r.flags})
		}
		m.flags, m.flagsOK = r.flags, true
	}

	old := m.snap.Load()
	s := &snapshot{
		at:      now,
		valid:   r.valid,
		tempC:   r.tempC,
		sensor:  r.sensor,
		state:   m.state,
		peakC:   m.peakC,
		until:   m.until,
		trips:   m.trips,
		flags:   m.flags,
		flagsOK: m.flagsOK,
		next:    make(chan struct{}),
	}
	if !r.valid && old.valid {
		// Keep the last good reading visible, marked invalid.
		s.tempC, s.sensor = old.tempC, old.sensor
	}
	s.slope, s.slopeOK = slope(m.samples)
	m.snap.Store(s)
	close(old.next)
	return evs
}

// backoff returns base·2^(trips−1), capped at max.
func backoff(base, max time.Duration, trips int) time.Duration {
	d := base
	for i := 1; i < trips && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// deliver queues evs and, unless another goroutine is already delivering,
// runs the callbacks for everything queued, in order, without holding mu.
// A callback that calls Poll only queues its own events; they run after it
// returns.
func (m *Manager) deliver(evs []Event) {
	m.mu.Lock()
	m.pending = append(m.pending, evs...)
	if m.delivering {
		m.mu.Unlock()
		return
	}
	m.delivering = true
	for len(m.pending) > 0 {
		ev := m.pending[0]
		m.pending = m.pending[1:]
		m.mu.Unlock()
		m.call(ev)
		m.mu.Lock()
	}
	m.pending = nil
	m.delivering = false
	m.mu.Unlock()
}

// call logs ev and runs its callback, recovering a panic.
func (m *Manager) call(ev Event) {
	var fn func(Event)
	switch {
	case ev.Cause == CauseUnderVoltage:
		m.log.Warn("thermal: under-voltage", "flags", ev.Flags.String())
		fn = m.cfg.OnWarning
	case ev.State == Warning:
		m.log.Warn("thermal: warning", "temp_c", ev.TempC, "sensor", ev.Sensor, "from", ev.Previous.String())
		fn = m.cfg.OnWarning
	case ev.State == Critical:
		m.log.Warn("thermal: critical", "temp_c", ev.TempC, "sensor", ev.Sensor, "cooldown", ev.Cooldown)
		fn = m.cfg.OnCritical
	case ev.State == Normal:
		m.log.Info("thermal: normal", "temp_c", ev.TempC, "sensor", ev.Sensor)
		fn = m.cfg.OnNormal
	}
	if fn == nil {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			m.log.Error("thermal: callback panicked", "state", ev.State.String(), "cause", ev.Cause.String(), "panic", fmt.Sprint(p))
		}
	}()
	fn(ev)
}

// TemperatureC returns the latest reading of the hottest chosen sensor in
// °C, and false if there is none yet or the latest poll could read no
// sensor. Its signature fits throttle.Signal.Read.
//
// Cost: one atomic load; no I/O, no lock, no allocation.
func (m *Manager) TemperatureC() (float64, bool) {
	s := m.snap.Load()
	return s.tempC, s.valid
}

// State returns the current thermal State (Normal before the first poll).
// Cost: one atomic load.
func (m *Manager) State() State { return m.snap.Load().state }

// ThrottleFlags returns the latest Raspberry Pi firmware throttle flags, and
// false where get_throttled is not available or has not been read yet.
func (m *Manager) ThrottleFlags() (ThrottleFlags, bool) {
	s := m.snap.Load()
	return s.flags, s.flagsOK
}

// Headroom returns how much of the thermal range is used up: 0 at or below
// Options.FloorC (default 25 °C), 1 at or above CriticalC, linear in between:
// (T − FloorC) / (CriticalC − FloorC), clamped to [0, 1]. It returns false
// when there is no valid reading. Cost: one atomic load.
func (m *Manager) Headroom() (float64, bool) {
	s := m.snap.Load()
	if !s.valid {
		return 0, false
	}
	return m.headroomAt(s.tempC), true
}

func (m *Manager) headroomAt(t float64) float64 {
	h := (t - m.cfg.FloorC) / (m.cfg.CriticalC - m.cfg.FloorC)
	return min(max(h, 0), 1)
}

// Forecast predicts the hottest sensor's temperature d from the latest
// reading, extrapolating the rate of rise fitted by least squares to the
// last Options.ForecastWindow readings. It returns false until two readings
// at different times exist, or when the latest poll read no sensor.
// Cost: one atomic load (the slope is fitted at poll time).
func (m *Manager) Forecast(d time.Duration) (float64, bool) {
	s := m.snap.Load()
	if !s.valid || !s.slopeOK {
		return 0, false
	}
	return s.tempC + s.slope*d.Seconds(), true
}

// TimeToCritical returns how long until the hottest sensor reaches
// CriticalC at the current rate of rise: 0 if it is already there, and false
// if the temperature is not rising or the rate is not known yet.
func (m *Manager) TimeToCritical() (time.Duration, bool) {
	s := m.snap.Load()
	if !s.valid {
		return 0, false
	}
	if s.tempC >= m.cfg.CriticalC {
		return 0, true
	}
	if !s.slopeOK || s.slope <= 0 {
		return 0, false
	}
	secs := (m.cfg.CriticalC - s.tempC) / s.slope
	if secs > float64(365*24*time.Hour/time.Second) {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}
