package adaptive

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/throttle"
)

// Mode is how the adaptive executor currently runs.
type Mode string

// The modes. Normal means no pressure; each other mode names the
// highest-priority pressure present.
const (
	Normal    Mode = "normal"
	LowMemory Mode = "low_memory"
	HighTemp  Mode = "high_temp"
	LowDisk   Mode = "low_disk"
)

// DefaultPriority is the order in which simultaneous pressures pick the
// mode: heat first (it can damage the board and the firmware throttles the
// CPU anyway), then memory (the OOM killer ends the process), then disk.
var DefaultPriority = []Mode{HighTemp, LowMemory, LowDisk}

// Trigger says when a pressure is present: the named signal (any name
// throttle.Sample.Value knows, such as "memory_percent", "temperature_c",
// "disk_percent" or "psi_memory_some_avg10") is at or above Threshold.
type Trigger struct {
	Signal    string
	Threshold float64
}

// DefaultTriggers returns the default triggers of each pressure. They sit
// below the circuit breaker's defaults (memory 85 %, 80 °C, disk 95 %), so
// the executor adapts before the breaker has to pause it.
func DefaultTriggers() map[Mode][]Trigger {
	return map[Mode][]Trigger{
		LowMemory: {{Signal: throttle.SignalMemoryPercent, Threshold: 80}},
		HighTemp:  {{Signal: throttle.SignalTemperatureC, Threshold: 70}},
		LowDisk:   {{Signal: throttle.SignalDiskPercent, Threshold: 90}},
	}
}

// Pressure is one pressure that holds: which mode it asks for, the signal
// that triggered it and its latest value.
type Pressure struct {
	Mode      Mode      `json:"mode"`
	Signal    string    `json:"signal"`
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold"`
	Since     time.Time `json:"since"`
}

// String formats the pressure as "mode: signal value ≥ threshold".
func (p Pressure) String() string {
	return fmt.Sprintf("%s: %s %.1f ≥ %.1f", p.Mode, p.Signal, p.Value, p.Threshold)
}

// detector turns samples into the set of pressures, with hysteresis and a
// pressure-transition period. It is pure: time comes from the samples. Not
// safe for concurrent use (the Executor guards it).
type detector struct {
	triggers   map[Mode][]Trigger
	priority   []Mode
	margin     float64
	transition time.Duration
	last       time.Time // time of the last sample accepted
	states     map[Mode]*pressureState
}

type pressureState struct {
	active   bool
	since    time.Time // when the pressure began
	lastOver time.Time // last sample at or over a threshold
	signal   string
	value    float64
	thresh   float64
}

func newDetector(triggers map[Mode][]Trigger, priority []Mode, margin float64, transition time.Duration) *detector {
	d := &detector{triggers: triggers, priority: priority, margin: margin, transition: transition, states: map[Mode]*pressureState{}}
	for _, m := range priority {
		d.states[m] = &pressureState{}
	}
	return d
}

// observe feeds one sample. It returns false for a sample that is not newer
// than the last one (only fresh samples count).
func (d *detector) observe(s *throttle.Sample) bool {
	if s == nil || !s.Time.After(d.last) {
		return false
	}
	d.last = s.Time
	now := s.Time
	for _, m := range d.priority {
		st := d.states[m]
		over, below := false, true
		for _, t := range d.triggers[m] {
			v, ok := s.Value(t.Signal)
			if !ok || math.IsNaN(v) {
				continue // no reading: neither pressure nor relief
			}
			if v >= t.Threshold && !over {
				over = true
				st.signal, st.value, st.thresh = t.Signal, v, t.Threshold
			}
			if v >= t.Threshold*(1-d.margin) {
				below = false
			}
		}
		switch {
		case over:
			st.lastOver = now
			if !st.active {
				st.active, st.since = true, now
			}
		case st.active && below && now.Sub(st.lastOver) >= d.transition:
			st.active = false
		case st.active:
			if v, ok := s.Value(st.signal); ok {
				st.value = v // report the live value while the pressure lasts
			}
		}
	}
	return true
}

// active returns the pressures that hold, in priority order.
func (d *detector) active() []Pressure {
	var out []Pressure
	for _, m := range d.priority {
		if st := d.states[m]; st.active {
			out = append(out, Pressure{Mode: m, Signal: st.signal, Value: st.value, Threshold: st.thresh, Since: st.since})
		}
	}
	return out
}

// mode is the highest-priority active pressure, or Normal.
func modeOf(active []Pressure) Mode {
	if len(active) == 0 {
		return Normal
	}
	return active[0].Mode
}

func describe(active []Pressure) string {
	if len(active) == 0 {
		return "no pressure"
	}
	parts := make([]string, len(active))
	for i, p := range active {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}

func validMode(m Mode) bool { return slices.Contains([]Mode{LowMemory, HighTemp, LowDisk}, m) }
