package thermal

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cemaf-go/cemaf/internal/boundedread"
)

// Manager reads a board's chosen temperature sensors and knows the levels of
// its temperature ladder (from trip points, the board table or options). It
// holds no state machine of its own: the throttle Breaker owns the ladder
// and reads the temperature through ReadTemperatureC, once per sample.
//
// A Manager is created by New, which discovers the sensors; it starts no
// goroutine and needs no Close. Poll (and ReadTemperatureC, which calls it)
// reads the sensors; the read accessors (TemperatureC, Forecast,
// TimeToPause, ThrottleFlags, Status) load an atomic snapshot of the latest
// poll: they do no I/O, take no lock and do not allocate. All methods are
// safe for concurrent use.
type Manager struct {
	// Immutable after New.
	cfg           config
	board         board
	sensors       []zone
	throttledPath string
	log           *slog.Logger

	snap atomic.Pointer[snapshot]

	// mu serialises Poll and guards the fields below.
	mu      sync.Mutex
	skipped map[string]string // temp path → error of its last failed read
	samples []sample          // the last ForecastWindow readings, oldest first
}

// snapshot is the immutable result of one poll, published atomically.
type snapshot struct {
	at      time.Time
	valid   bool // a chosen sensor was read
	tempC   float64
	sensor  string
	slope   float64 // °C per second
	slopeOK bool
	flags   ThrottleFlags
	flagsOK bool
}

// New discovers the thermal zones under opts.SysfsRoot, chooses the sensors
// (Options.SensorPath, else Options.Sensors, else the board table), derives
// the levels and validates the options. It reads sysfs, with a bound on
// every read and refusing FIFOs and devices, and starts no goroutine.
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
		b, err := boundedread.ReadFile(throttledPath, maxAttrBytes)
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
	if err := cfg.deriveLevels(b, chosen); err != nil {
		return nil, err
	}

	m := &Manager{
		cfg:           cfg,
		board:         b,
		sensors:       chosen,
		throttledPath: throttledPath,
		log:           cfg.Logger,
		skipped:       make(map[string]string),
		samples:       make([]sample, 0, cfg.ForecastWindow),
	}
	m.snap.Store(&snapshot{})
	m.log.Info("thermal: sensors chosen",
		"board", b.name, "sensors", m.Sensors(),
		"adapt_c", cfg.AdaptC, "pause_c", cfg.PauseC, "throttled_path", throttledPath)
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
	b, err := boundedread.ReadFile(temp, maxAttrBytes)
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

// Levels are the levels of the temperature ladder and where they came from.
type Levels struct {
	AdaptC float64 `json:"adapt_c"`
	PauseC float64 `json:"pause_c"`
	// AdaptFrom and PauseFrom say where each came from: "option", a trip
	// point ("passive trip point of tj-thermal (95 °C) − 5"), a board table
	// ("raspberry-pi board table"), or "default".
	AdaptFrom string `json:"adapt_from"`
	PauseFrom string `json:"pause_from"`
}

// Levels returns the adapt and pause levels in °C in use (given, or
// derived by New), with where they came from.
func (m *Manager) Levels() Levels {
	return Levels{AdaptC: m.cfg.AdaptC, PauseC: m.cfg.PauseC, AdaptFrom: m.cfg.adaptFrom, PauseFrom: m.cfg.pauseFrom}
}

// ReadTemperatureC polls the sensors now and returns the hottest chosen
// sensor's reading in °C, and false if none could be read. Its signature
// fits throttle.Signal.Read: a Sampler calls it once per sample, which is
// how the Breaker's temperature ladder is fed.
//
// Cost: one small, bounded file read per chosen sensor (and the Raspberry Pi
// throttle flags).
func (m *Manager) ReadTemperatureC() (float64, bool) {
	_ = m.Poll(time.Now())
	return m.TemperatureC()
}

// Poll reads the chosen sensors (and the Raspberry Pi throttle flags) once
// and publishes the result as of now. Sensors that fail to read are skipped
// for this poll and logged when that changes; if none can be read, Poll
// returns an error wrapping ErrNoSensors and TemperatureC reports no value.
func (m *Manager) Poll(now time.Time) error {
	m.mu.Lock()
	var valid bool
	var tempC float64
	var sensor string
	var errs, logs []string
	for _, z := range m.sensors {
		c, err := readTemp(z.path)
		if err != nil {
			msg := err.Error()
			if m.skipped[z.path] != msg {
				m.skipped[z.path] = msg
				logs = append(logs, fmt.Sprintf("%s (%s) skipped: %s", z.typ, z.name, msg))
			}
			errs = append(errs, fmt.Sprintf("%s (%s): %s", z.typ, z.name, msg))
			continue
		}
		if _, was := m.skipped[z.path]; was {
			delete(m.skipped, z.path)
			logs = append(logs, fmt.Sprintf("%s (%s) readable again", z.typ, z.name))
		}
		if !valid || c > tempC {
			valid, tempC, sensor = true, c, z.typ
		}
	}
	s := &snapshot{at: now, valid: valid, tempC: tempC, sensor: sensor}
	if m.throttledPath != "" {
		if b, err := boundedread.ReadFile(m.throttledPath, maxAttrBytes); err == nil {
			if f, err := ParseThrottled(b); err == nil {
				s.flags, s.flagsOK = f, true
			}
		}
	}
	if valid {
		if len(m.samples) == m.cfg.ForecastWindow {
			copy(m.samples, m.samples[1:])
			m.samples = m.samples[:len(m.samples)-1]
		}
		m.samples = append(m.samples, sample{now, tempC})
	} else if old := m.snap.Load(); old.valid {
		// Keep the last good reading visible, marked invalid.
		s.tempC, s.sensor = old.tempC, old.sensor
	}
	s.slope, s.slopeOK = slope(m.samples)
	m.snap.Store(s)
	m.mu.Unlock()

	for _, l := range logs {
		m.log.Info("thermal: sensor", "change", l)
	}
	if !valid {
		return fmt.Errorf("%w: %s", ErrNoSensors, strings.Join(errs, "; "))
	}
	return nil
}

// TemperatureC returns the latest reading of the hottest chosen sensor in
// °C, and false if there is none yet or the latest poll could read no
// sensor. Cost: one atomic load; no I/O, no lock, no allocation.
func (m *Manager) TemperatureC() (float64, bool) {
	s := m.snap.Load()
	return s.tempC, s.valid
}

// ThrottleFlags returns the latest Raspberry Pi firmware throttle flags, and
// false where get_throttled is not available or has not been read yet.
func (m *Manager) ThrottleFlags() (ThrottleFlags, bool) {
	s := m.snap.Load()
	return s.flags, s.flagsOK
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

// TimeToPause returns how long until the hottest sensor goes above the
// pause level at the current rate of rise: 0 if it is already there, and
// false if the temperature is not rising or the rate is not known yet.
func (m *Manager) TimeToPause() (time.Duration, bool) {
	s := m.snap.Load()
	if !s.valid {
		return 0, false
	}
	if s.tempC > m.cfg.PauseC {
		return 0, true
	}
	if !s.slopeOK || s.slope <= 0 {
		return 0, false
	}
	secs := (m.cfg.PauseC - s.tempC) / s.slope
	if secs > float64(365*24*time.Hour/time.Second) {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}
