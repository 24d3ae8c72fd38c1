package thermal

import (
	"strconv"
	"time"
)

// State is the Manager's thermal state.
type State int

// The thermal states, from cool to hot.
const (
	// Normal: the hottest sensor is below WarningC (or has fallen below
	// WarningC − HysteresisC after a warning).
	Normal State = iota
	// Warning: the hottest sensor reached WarningC; callers should slow down.
	Warning
	// Critical: the hottest sensor reached CriticalC; callers should pause.
	// The Manager stays Critical for at least the current cooldown.
	Critical
)

// String returns "normal", "warning" or "critical".
func (s State) String() string {
	switch s {
	case Normal:
		return "normal"
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Cause says what an Event is about.
type Cause int

// The causes of an Event.
const (
	// CauseTemperature: the thermal State changed.
	CauseTemperature Cause = iota
	// CauseUnderVoltage: the Raspberry Pi firmware started reporting
	// under-voltage (ThrottleFlags bit 0 went from 0 to 1). The State is
	// unchanged; Event.State and Event.Previous are the current State.
	CauseUnderVoltage
)

// String returns "temperature" or "under-voltage".
func (c Cause) String() string {
	switch c {
	case CauseTemperature:
		return "temperature"
	case CauseUnderVoltage:
		return "under-voltage"
	}
	return "Cause(" + strconv.Itoa(int(c)) + ")"
}

// Event is passed to the Manager's callbacks.
type Event struct {
	// Time is the poll time that produced the event.
	Time time.Time
	// Cause says whether the State changed or under-voltage began.
	Cause Cause
	// State is the new State, Previous the one before.
	State, Previous State
	// TempC is the hottest chosen sensor's reading in °C, Sensor its zone
	// type.
	TempC  float64
	Sensor string
	// Cooldown is, on entering Critical, the minimum time the Manager stays
	// Critical (it doubles with each trip in a row, up to CooldownMax).
	Cooldown time.Duration
	// Flags are the latest Raspberry Pi throttle flags (zero elsewhere).
	Flags ThrottleFlags
}
