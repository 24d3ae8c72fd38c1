package throttle

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Rung is where a signal stands on its Ladder.
type Rung uint8

const (
	// Normal: the signal is below its adapt level; nothing is done.
	Normal Rung = iota
	// Adapt: the signal is at or above its adapt level; the adaptive
	// executor slows down, narrows or pages, but work goes on.
	Adapt
	// Pause: the signal went above its pause level; no new work starts
	// until it is back below the level minus the hysteresis and the
	// cooldown has passed.
	Pause
)

// String returns "normal", "adapt" or "pause".
func (r Rung) String() string {
	switch r {
	case Normal:
		return "normal"
	case Adapt:
		return "adapt"
	case Pause:
		return "pause"
	}
	return fmt.Sprintf("Rung(%d)", uint8(r))
}

// MarshalText encodes the rung as its name.
func (r Rung) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText decodes a rung name written by MarshalText.
func (r *Rung) UnmarshalText(b []byte) error {
	for _, x := range []Rung{Normal, Adapt, Pause} {
		if x.String() == string(b) {
			*r = x
			return nil
		}
	}
	return fmt.Errorf("throttle: unknown rung %q: want normal, adapt or pause", b)
}

// Defaults of zero Ladder fields.
const (
	DefaultCooldown       = 30 * time.Second
	DefaultHold           = 30 * time.Second
	DefaultHysteresisFrac = 0.05 // of the level, when Ladder.Hysteresis is 0
)

// Ladder is the policy of one signal: a level at which the adaptive executor
// adapts and a higher level at which work pauses, with hysteresis on the way
// down and a cooldown after a pause. One Breaker owns the ladders of every
// signal, so that each signal has exactly one owner and one set of levels.
//
// The rules, for each fresh sample with value v of the signal:
//   - Pause: entered when v > Pause for TripAfter consecutive samples.
//     Every sample with v > Pause moves the end of the pause to now plus
//     the cooldown, so a pause lasts at least one cooldown after the last
//     dangerous sample. The pause ends at the first sample after that end
//     with v < Pause − Hysteresis, to Adapt if v ≥ Adapt − Hysteresis, else
//     to Normal.
//   - The cooldown starts at Cooldown and doubles with each further trip,
//     up to MaxCooldown; once the signal has stayed out of Pause for as long
//     as the cooldown last in force, it decays back to Cooldown.
//   - Adapt: entered when v ≥ Adapt; left for Normal at the first sample
//     with v < Adapt − Hysteresis that comes at least Hold after the last
//     sample with v ≥ Adapt.
//   - A sample without the signal (a sensor that cannot be read, a path not
//     configured) counts as below every level: it neither trips nor keeps a
//     rung, so an unreadable sensor cannot pause work for ever.
type Ladder struct {
	// Signal names the signal: a Signal... constant, or the name of an
	// extra signal (SamplerOptions.Signals).
	Signal string `json:"signal"`
	// Adapt is the level at or above which the signal is on the Adapt
	// rung, in the signal's unit; 0 means the ladder has no adapt rung.
	Adapt float64 `json:"adapt,omitempty"`
	// Pause is the level above which the signal trips to Pause; 0 means
	// it never pauses work. When both are set, Adapt must be below Pause.
	Pause float64 `json:"pause,omitempty"`
	// Hysteresis is how far below a level the signal must fall to leave
	// its rung, in the signal's unit. 0 means 5 % of each level.
	Hysteresis float64 `json:"hysteresis,omitempty"`
	// TripAfter is the number of consecutive fresh samples above Pause
	// that trip the pause. 0 means 1.
	TripAfter int `json:"trip_after,omitempty"`
	// Cooldown is the least time the pause lasts after the last sample
	// above Pause. 0 means DefaultCooldown.
	Cooldown time.Duration `json:"cooldown_ns,omitempty"`
	// MaxCooldown caps the doubled cooldown. 0 means 10 × Cooldown.
	MaxCooldown time.Duration `json:"max_cooldown_ns,omitempty"`
	// Hold is the least time the Adapt rung is kept after the last sample
	// at or above Adapt, so that a value wobbling around the level cannot
	// make the mode flap. 0 means DefaultHold; negative means none.
	Hold time.Duration `json:"hold_ns,omitempty"`
}

// withDefaults validates l and fills in the defaults. The error names the
// field and the accepted range.
func (l Ladder) withDefaults() (Ladder, error) {
	field := func(name string) string { return fmt.Sprintf("Ladder[%s].%s", l.Signal, name) }
	var errs []error
	bad := func(name string, v any, want string) {
		errs = append(errs, fmt.Errorf("throttle: %s = %v: %s", field(name), v, want))
	}
	if l.Signal == "" {
		return l, errors.New("throttle: Ladder.Signal is empty: must name a signal")
	}
	meta := metaOf(l.Signal, nil)
	level := func(name string, v float64) {
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0) || v < 0:
			bad(name, v, "must be a finite number ≥ 0 (0: no such rung)")
		case meta.percent && v > 100:
			bad(name, v, "must be in [0, 100] (a percentage; 0: no such rung)")
		}
	}
	level("Adapt", l.Adapt)
	level("Pause", l.Pause)
	if l.Adapt > 0 && l.Pause > 0 && l.Adapt >= l.Pause {
		bad("Adapt", l.Adapt, fmt.Sprintf("must be below Pause (%v)", l.Pause))
	}
	if math.IsNaN(l.Hysteresis) || math.IsInf(l.Hysteresis, 0) || l.Hysteresis < 0 {
		bad("Hysteresis", l.Hysteresis, "must be a finite number ≥ 0 (0: 5 % of each level)")
	}
	if l.TripAfter < 0 || l.TripAfter > 1000 {
		bad("TripAfter", l.TripAfter, "must be in [1, 1000] (0: 1)")
	}
	if l.Cooldown < 0 {
		bad("Cooldown", l.Cooldown, "must be > 0 (0: 30s)")
	}
	if l.MaxCooldown < 0 {
		bad("MaxCooldown", l.MaxCooldown, "must be ≥ Cooldown (0: 10 × Cooldown)")
	}
	if err := errors.Join(errs...); err != nil {
		return l, err
	}
	l.TripAfter = max(l.TripAfter, 1)
	if l.Cooldown == 0 {
		l.Cooldown = DefaultCooldown
	}
	if l.MaxCooldown == 0 {
		l.MaxCooldown = 10 * l.Cooldown
	}
	if l.MaxCooldown < l.Cooldown {
		return l, fmt.Errorf("throttle: %s = %v: must be ≥ Cooldown (%v)", field("MaxCooldown"), l.MaxCooldown, l.Cooldown)
	}
	if l.Hold == 0 {
		l.Hold = DefaultHold
	}
	l.Hold = max(l.Hold, 0)
	return l, nil
}

// hysteresis returns how far below level the signal must fall.
func (l *Ladder) hysteresis(level float64) float64 {
	if l.Hysteresis > 0 {
		return l.Hysteresis
	}
	return level * DefaultHysteresisFrac
}

// PauseResume is the value the signal must fall below to leave Pause.
func (l Ladder) PauseResume() float64 { return l.Pause - l.hysteresis(l.Pause) }

// AdaptResume is the value the signal must fall below to leave Adapt.
func (l Ladder) AdaptResume() float64 { return l.Adapt - l.hysteresis(l.Adapt) }

// DefaultLadders returns the ladders of a host about which nothing else is
// known: temperature adapts at 70 °C and pauses above 80 °C (the thermal
// package derives better levels from a board's trip points); memory in use
// adapts at 80 % and pauses above 85 % of the effective memory; swap at 50 %
// and 80 %; disk at 90 % and 95 %; CPU contention — CPU used by processes
// other than this one and its helpers — adapts at 70 % and pauses only above
// 95 % of all CPUs for 3 consecutive samples.
func DefaultLadders() []Ladder {
	return []Ladder{
		{Signal: SignalTemperatureC, Adapt: 70, Pause: 80, Hysteresis: 3},
		{Signal: SignalMemoryPercent, Adapt: 80, Pause: 85},
		{Signal: SignalSwapPercent, Adapt: 50, Pause: 80},
		{Signal: SignalDiskPercent, Adapt: 90, Pause: 95, Hysteresis: 2},
		{Signal: SignalCPUOthersPercent, Adapt: 70, Pause: 95, Hysteresis: 10, TripAfter: 3},
	}
}
