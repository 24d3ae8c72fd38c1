package thermal

import (
	"path/filepath"
	"time"
)

// Status is a snapshot of a Manager for status reports and metrics.
type Status struct {
	// Time is when the latest poll ran (zero before the first poll).
	Time time.Time `json:"time,omitzero"`
	// Board is the board-table row in use.
	Board string `json:"board"`
	// TempC is the hottest chosen sensor's latest reading and Sensor its
	// zone type; Valid is false when the latest poll read no sensor (TempC
	// is then the last good reading, if any).
	TempC  float64 `json:"temp_c"`
	Sensor string  `json:"sensor"`
	Valid  bool    `json:"valid"`
	// Levels are the adapt and pause levels in use.
	Levels Levels `json:"levels"`
	// BelowPauseC is how many °C the reading is below the pause level
	// (negative above it); 0 when not Valid.
	BelowPauseC float64 `json:"below_pause_c"`
	// RateCPerSec is the fitted rate of rise in °C per second; RateValid is
	// false until two readings exist.
	RateCPerSec float64 `json:"rate_c_per_sec"`
	RateValid   bool    `json:"rate_valid"`
	// Flags are the Raspberry Pi throttle flags; FlagsValid is false where
	// they are not available.
	Flags      ThrottleFlags `json:"flags"`
	FlagsValid bool          `json:"flags_valid"`
}

// Status returns the latest snapshot. Cost: one atomic load and a copy; no
// I/O.
func (m *Manager) Status() Status {
	s := m.snap.Load()
	st := Status{
		Time:        s.at,
		Board:       m.board.name,
		TempC:       s.tempC,
		Sensor:      s.sensor,
		Valid:       s.valid,
		Levels:      m.Levels(),
		RateCPerSec: s.slope,
		RateValid:   s.slopeOK,
		Flags:       s.flags,
		FlagsValid:  s.flagsOK,
	}
	if s.valid {
		st.BelowPauseC = m.cfg.PauseC - s.tempC
	}
	return st
}

// Reading describes one thermal zone for a status command.
type Reading struct {
	// Zone is the zone's directory name ("thermal_zone0"), or the sensor
	// path for Options.SensorPath.
	Zone string
	// Type is the zone's type ("cpu-thermal", "CPU-therm", …).
	Type string
	// Mode is the zone's mode file ("enabled", "disabled", or "" if absent).
	Mode string
	// TempC is the temperature read now, valid when Valid is true.
	TempC float64
	Valid bool
	// Trips are the zone's trip points.
	Trips []TripPoint
	// Chosen reports whether the Manager uses this zone.
	Chosen bool
	// Skipped says why the zone is not chosen, or why it could not be read
	// now; it is empty for a chosen zone that read fine.
	Skipped string
}

// Readings rescans every zone under SysfsRoot/class/thermal (and the
// Options.SensorPath sensor) and reads each one now, for a status command.
// Unlike the other accessors it does file I/O (a few small reads per zone)
// and allocates; it does not change the State.
func (m *Manager) Readings() ([]Reading, error) {
	zones, err := scanZones(filepath.Join(m.cfg.SysfsRoot, "class", "thermal"))
	if err != nil {
		return nil, err
	}
	chosen := make(map[string]bool, len(m.sensors))
	for _, z := range m.sensors {
		chosen[z.path] = true
	}
	if m.cfg.SensorPath != "" {
		z := m.sensors[0]
		seen := false
		for _, x := range zones {
			seen = seen || x.path == z.path
		}
		if !seen {
			zones = append(zones, z)
		}
	}
	out := make([]Reading, 0, len(zones))
	for _, z := range zones {
		r := Reading{Zone: z.name, Type: z.typ, Mode: z.mode, Trips: z.trips, Chosen: chosen[z.path]}
		c, rerr := readTemp(z.path)
		if rerr == nil {
			r.TempC, r.Valid = c, true
		}
		switch {
		case r.Chosen && rerr != nil:
			r.Skipped = "unreadable: " + rerr.Error()
		case r.Chosen:
		case m.cfg.SensorPath != "":
			r.Skipped = "not Options.SensorPath"
		default:
			ok, why := m.board.choice(z.typ, m.cfg.Sensors)
			switch {
			case ok && z.mode == "disabled":
				why = "disabled"
			case ok:
				why = "not chosen when the Manager was created"
			}
			if rerr != nil {
				why += "; unreadable: " + rerr.Error()
			}
			r.Skipped = why
		}
		out = append(out, r)
	}
	return out, nil
}
