package thermal

import (
	"fmt"
	"log/slog"
	"math"
)

// Default values used for zero Options fields and underived levels.
const (
	DefaultSysfsRoot   = "/sys"
	DefaultAdaptC      = 70.0 // adapt level where no trip point or board says otherwise
	DefaultPauseC      = 80.0 // pause level where no trip point or board says otherwise
	DefaultHysteresisC = 3.0  // the hysteresis the temperature ladder should use
	DefaultTripMarginC = 5.0
	DefaultWindow      = 10
)

// maxLevelC bounds AdaptC and PauseC: no supported SoC survives above it.
const maxLevelC = 150.0

// Options configure a Manager. The zero value means: discover zones under
// /sys, pick sensors from the board table, derive the levels from trip
// points and the board table (else 70/80 °C), fit the rate of rise to the
// last 10 readings, no logging.
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
	// present. New fails if the path does not exist, is not a regular file
	// (a FIFO, a device), or does not hold a plausible temperature.
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

	// AdaptC and PauseC are the levels of the temperature ladder in °C, in
	// (0, 150], with AdaptC < PauseC: at AdaptC the agent slows down, above
	// PauseC it pauses. Zero means derive: PauseC from the lowest "hot" or
	// "critical" trip point of the chosen zones minus TripMarginC, AdaptC
	// from the lowest "passive" trip point minus TripMarginC; where no such
	// trip point exists, 80 °C and PauseC − 10. The board table caps
	// derived values (the Raspberry Pi at 70/80 °C, where its firmware
	// starts throttling); a derived AdaptC that is not below PauseC becomes
	// PauseC − 10.
	AdaptC, PauseC float64

	// TripMarginC (default 5 °C, must be ≥ 0) is subtracted from trip
	// points when deriving the levels.
	TripMarginC float64

	// ForecastWindow (default 10, at least 2) is how many recent readings
	// the rate of rise behind Forecast is fitted to.
	ForecastWindow int

	// Logger receives sensors that stop or start reading (info). Nil
	// discards.
	Logger *slog.Logger
}

// config is Options with defaults applied and levels still to derive.
type config struct {
	Options
	adaptFrom, pauseFrom string // where the levels came from
}

func (o Options) withDefaults() (config, error) {
	c := config{Options: o}
	if c.SysfsRoot == "" {
		c.SysfsRoot = DefaultSysfsRoot
	}
	if err := checkLevel("AdaptC", c.AdaptC); err != nil {
		return c, err
	}
	if err := checkLevel("PauseC", c.PauseC); err != nil {
		return c, err
	}
	if c.AdaptC != 0 && c.PauseC != 0 && c.AdaptC >= c.PauseC {
		return c, fmt.Errorf("thermal: Options.AdaptC = %g must be below Options.PauseC = %g", c.AdaptC, c.PauseC)
	}
	if math.IsNaN(c.TripMarginC) || math.IsInf(c.TripMarginC, 0) || c.TripMarginC < 0 || c.TripMarginC > 50 {
		return c, fmt.Errorf("thermal: Options.TripMarginC = %g: must be in [0, 50] °C (0 means the default %g)", c.TripMarginC, DefaultTripMarginC)
	}
	if c.TripMarginC == 0 {
		c.TripMarginC = DefaultTripMarginC
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

func checkLevel(field string, v float64) error {
	if v == 0 {
		return nil
	}
	if math.IsNaN(v) || v < 0 || v > maxLevelC {
		return fmt.Errorf("thermal: Options.%s = %g: must be in (0, %g] °C (0 means derive)", field, v, maxLevelC)
	}
	return nil
}

// deriveLevels fills in AdaptC and PauseC from the chosen zones' trip
// points, the board's caps and the defaults, and records where each came
// from.
func (c *config) deriveLevels(b board, chosen []zone) error {
	lowest := func(types ...string) (TripPoint, string, bool) {
		var best TripPoint
		var zoneType string
		ok := false
		for _, z := range chosen {
			for _, tp := range z.trips {
				for _, t := range types {
					if tp.Type == t && tp.TempC > 0 && (!ok || tp.TempC < best.TempC) {
						best, zoneType, ok = tp, z.typ, true
					}
				}
			}
		}
		return best, zoneType, ok
	}
	c.adaptFrom, c.pauseFrom = "option", "option"
	if c.PauseC == 0 {
		c.PauseC, c.pauseFrom = DefaultPauseC, "default"
		if tp, typ, ok := lowest("hot", "critical"); ok {
			c.PauseC = tp.TempC - c.TripMarginC
			c.pauseFrom = fmt.Sprintf("%s trip point of %s (%g °C) − %g", tp.Type, typ, tp.TempC, c.TripMarginC)
		}
		if b.maxPauseC > 0 && c.PauseC > b.maxPauseC {
			c.PauseC, c.pauseFrom = b.maxPauseC, b.name+" board table"
		}
		if c.PauseC <= 0 || c.PauseC > maxLevelC {
			c.PauseC, c.pauseFrom = DefaultPauseC, "default"
		}
	}
	if c.AdaptC == 0 {
		// Without a passive trip point, adapt 10 °C below the pause
		// level (70 °C with the default pause level).
		c.AdaptC, c.adaptFrom = c.PauseC-10, "pause level − 10"
		if c.pauseFrom == "default" {
			c.AdaptC, c.adaptFrom = DefaultAdaptC, "default"
		}
		if tp, typ, ok := lowest("passive"); ok {
			c.AdaptC = tp.TempC - c.TripMarginC
			c.adaptFrom = fmt.Sprintf("passive trip point of %s (%g °C) − %g", typ, tp.TempC, c.TripMarginC)
		}
		if b.maxAdaptC > 0 && c.AdaptC > b.maxAdaptC {
			c.AdaptC, c.adaptFrom = b.maxAdaptC, b.name+" board table"
		}
		if c.AdaptC >= c.PauseC || c.AdaptC <= 0 {
			c.AdaptC, c.adaptFrom = c.PauseC-10, "pause level − 10"
		}
	}
	if c.AdaptC >= c.PauseC {
		return fmt.Errorf("thermal: Options.AdaptC = %g must be below PauseC = %g (derived from %s; set Options.PauseC)", c.AdaptC, c.PauseC, c.pauseFrom)
	}
	return nil
}
