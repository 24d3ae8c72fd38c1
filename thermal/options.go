package thermal

import (
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Default values used for zero Options fields.
const (
	DefaultSysfsRoot    = "/sys"
	DefaultWarningC     = 75.0
	DefaultCriticalC    = 85.0
	DefaultHysteresisC  = 3.0
	DefaultTripMarginC  = 5.0
	DefaultFloorC       = 25.0
	DefaultInterval     = time.Second
	DefaultCooldownBase = 30 * time.Second
	DefaultCooldownMax  = 5 * time.Minute
	DefaultWindow       = 10
)

// maxThresholdC bounds WarningC and CriticalC: no supported SoC survives
// above it.
const maxThresholdC = 150.0

// Options configure a Manager. The zero value means: discover zones under
// /sys, pick sensors from the board table, derive thresholds from trip points
// (else 75/85 °C), hysteresis 3 °C, poll every second, cooldown 30 s doubling
// up to 5 min, no callbacks, no logging.
type Options struct {
	// SysfsRoot is where sysfs is mounted (default "/sys"). Zones are read
	// from SysfsRoot/class/thermal, the board model from
	// SysfsRoot/firmware/devicetree/base/model and the Raspberry Pi
	// throttle flags from SysfsRoot/devices/platform/…/get_throttled.
	// Containers that mount the host's sysfs elsewhere set it; tests point
	// it at a fixture tree.
	SysfsRoot string

	// SensorPath, when set, is the one sensor to use instead of the board
	// table: a file holding a temperature in millidegrees Celsius (such as
	// /sys/class/thermal/thermal_zone0/temp) or a zone directory holding a
	// temp file. Trip points and type are read from the same directory when
	// present. New fails if the path does not exist or does not hold a
	// number.
	SensorPath string

	// Sensors, when non-nil, lists the zone types to use instead of the
	// board table's (for example []string{"CPU-therm"}).
	Sensors []string

	// Board forces a row of the built-in board table: BoardRaspberryPi,
	// BoardJetsonNano, BoardJetsonOrin or BoardGeneric. Empty means detect
	// it from the device-tree model and the zone types.
	Board string

	// ThrottledPath is the Raspberry Pi firmware's get_throttled file.
	// Empty means look for it under SysfsRoot; when set, New fails if it
	// cannot be read.
	ThrottledPath string

	// WarningC and CriticalC are the thresholds in °C, in (0, 150], with
	// WarningC < CriticalC. Zero means derive: CriticalC from the lowest
	// "hot" or "critical" trip point of the chosen zones minus TripMarginC,
	// WarningC from the lowest "passive" trip point minus TripMarginC; where
	// no such trip point exists, 85 and 75 °C. The board table caps derived
	// values (the Raspberry Pi at 75/85 °C); a derived WarningC that is not
	// below CriticalC becomes CriticalC − 10.
	WarningC, CriticalC float64

	// HysteresisC (default 3 °C, must be ≥ 0) is how far the temperature
	// must fall below a threshold before the state steps down.
	HysteresisC float64

	// TripMarginC (default 5 °C, must be ≥ 0) is subtracted from trip
	// points when deriving thresholds.
	TripMarginC float64

	// FloorC (default 25 °C, must be ≥ 0 and below CriticalC) is the
	// temperature at which Headroom is 0.
	FloorC float64

	// Interval is the polling period of Start (default 1 s, must be ≥ 0).
	Interval time.Duration

	// CooldownBase (default 30 s) is how long the Manager stays Critical
	// after the last reading at or above CriticalC, on the first trip.
	// Each further trip before the state gets back to Normal doubles it, up
	// to CooldownMax (default 5 min, must be ≥ CooldownBase).
	CooldownBase, CooldownMax time.Duration

	// ForecastWindow (default 10, at least 2) is how many recent readings
	// the rate of rise behind Forecast is fitted to.
	ForecastWindow int

	// OnWarning, OnCritical and OnNormal are called once per transition
	// into Warning, Critical and Normal. OnWarning is also called, with
	// Event.Cause == CauseUnderVoltage, when the Raspberry Pi firmware
	// starts reporting under-voltage. Callbacks run on the goroutine that
	// polled (Start's, or the caller of Poll), one at a time and in order,
	// with no lock held; a panic in a callback is recovered and logged.
	// They should return quickly: polling waits for them.
	OnWarning, OnCritical, OnNormal func(Event)

	// Logger receives transitions (warn), skipped sensors (info) and
	// recovered callback panics (error). Nil discards.
	Logger *slog.Logger
}

// config is Options with defaults applied and thresholds still to derive.
type config struct {
	Options
}

func (o Options) withDefaults() (config, error) {
	c := config{o}
	if c.SysfsRoot == "" {
		c.SysfsRoot = DefaultSysfsRoot
	}
	if err := checkTemp("WarningC", c.WarningC); err != nil {
		return c, err
	}
	if err := checkTemp("CriticalC", c.CriticalC); err != nil {
		return c, err
	}
	if c.WarningC != 0 && c.CriticalC != 0 && c.WarningC >= c.CriticalC {
		return c, fmt.Errorf("thermal: Options.WarningC = %g must be below Options.CriticalC = %g", c.WarningC, c.CriticalC)
	}
	for _, f := range []struct {
		name string
		v    *float64
		def  float64
	}{
		{"HysteresisC", &c.HysteresisC, DefaultHysteresisC},
		{"TripMarginC", &c.TripMarginC, DefaultTripMarginC},
		{"FloorC", &c.FloorC, DefaultFloorC},
	} {
		if math.IsNaN(*f.v) || math.IsInf(*f.v, 0) || *f.v < 0 {
			return c, fmt.Errorf("thermal: Options.%s = %g: must be finite and ≥ 0 °C (0 means the default %g)", f.name, *f.v, f.def)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if c.HysteresisC > 20 {
		return c, fmt.Errorf("thermal: Options.HysteresisC = %g: must be in [0, 20] °C", c.HysteresisC)
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"Interval", &c.Interval, DefaultInterval},
		{"CooldownBase", &c.CooldownBase, DefaultCooldownBase},
		{"CooldownMax", &c.CooldownMax, DefaultCooldownMax},
	} {
		if *f.v < 0 {
			return c, fmt.Errorf("thermal: Options.%s = %v: must be > 0 (0 means the default %v)", f.name, *f.v, f.def)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if o.CooldownMax == 0 && c.CooldownMax < c.CooldownBase {
		c.CooldownMax = c.CooldownBase
	}
	if c.CooldownMax < c.CooldownBase {
		return c, fmt.Errorf("thermal: Options.CooldownMax = %v must be ≥ Options.CooldownBase = %v", c.CooldownMax, c.CooldownBase)
	}
	switch {
	case c.ForecastWindow < 0 || c.ForecastWindow == 1 || c.ForecastWindow > 10000:
		return c, fmt.Errorf("thermal: Options.ForecastWindow = %d: must be in [2, 10000] (0 means %d)", c.ForecastWindow, DefaultWindow)
	case c.ForecastWindow == 0:
		c.ForecastWindow = DefaultWindow
	}
	if c.Board != "" {
		if _, ok := boardByName(c.Board); !ok {
			return c, fmt.Errorf("thermal: Options.Board = %q: must be one of %q", c.Board, boardNames())
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

func checkTemp(field string, v float64) error {
	if v == 0 {
		return nil
	}
	if math.IsNaN(v) || v < 0 || v > maxThresholdC {
		return fmt.Errorf("thermal: Options.%s = %g: must be in (0, %g] °C (0 means derive)", field, v, maxThresholdC)
	}
	return nil
}

// deriveThresholds fills in WarningC and CriticalC from the chosen zones'
// trip points, the board's caps and the defaults, and checks the result.
func (c *config) deriveThresholds(b board, chosen []zone) error {
	lowest := func(types ...string) (float64, bool) {
		best, ok := 0.0, false
		for _, z := range chosen {
			for _, tp := range z.trips {
				for _, t := range types {
					if tp.Type == t && tp.TempC > 0 && (!ok || tp.TempC < best) {
						best, ok = tp.TempC, true
					}
				}
			}
		}
		return best, ok
	}
	if c.CriticalC == 0 {
		c.CriticalC = DefaultCriticalC
		if t, ok := lowest("hot", "critical"); ok {
			c.CriticalC = t - c.TripMarginC
		}
		if b.maxCriticalC > 0 && c.CriticalC > b.maxCriticalC {
			c.CriticalC = b.maxCriticalC
		}
		if c.CriticalC <= 0 || c.CriticalC > maxThresholdC {
			c.CriticalC = DefaultCriticalC
		}
	}
	if c.WarningC == 0 {
		c.WarningC = DefaultWarningC
		if t, ok := lowest("passive"); ok {
			c.WarningC = t - c.TripMarginC
		}
		if b.maxWarningC > 0 && c.WarningC > b.maxWarningC {
			c.WarningC = b.maxWarningC
		}
		if c.WarningC >= c.CriticalC || c.WarningC <= 0 {
			c.WarningC = c.CriticalC - 10
		}
	}
	if c.WarningC >= c.CriticalC {
		return fmt.Errorf("thermal: Options.WarningC = %g must be below CriticalC = %g (derived from trip points; set Options.CriticalC)", c.WarningC, c.CriticalC)
	}
	if c.FloorC >= c.CriticalC {
		return fmt.Errorf("thermal: Options.FloorC = %g must be below CriticalC = %g", c.FloorC, c.CriticalC)
	}
	return nil
}
