package adaptive

import (
	"fmt"
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
	Normal        Mode = "normal"
	LowMemory     Mode = "low_memory"
	HighTemp      Mode = "high_temp"
	LowDisk       Mode = "low_disk"
	CPUContention Mode = "cpu_contention"
)

// pressureModes are the modes a pressure can ask for.
var pressureModes = []Mode{HighTemp, LowMemory, LowDisk, CPUContention}

// DefaultPriority returns the order in which simultaneous pressures pick the
// mode: heat first (it can damage the board, and the firmware throttles the
// CPU anyway), then memory (the OOM killer ends the process), then disk,
// then CPU contention.
func DefaultPriority() []Mode { return slices.Clone(pressureModes) }

// DefaultModes returns which mode each signal's ladder asks for while the
// signal is on its Adapt or Pause rung: temperature → high_temp; memory,
// swap and this process's memory → low_memory; disk → low_disk; CPU used by
// others → cpu_contention.
func DefaultModes() map[string]Mode {
	return map[string]Mode{
		throttle.SignalTemperatureC:     HighTemp,
		throttle.SignalMemoryPercent:    LowMemory,
		throttle.SignalSwapPercent:      LowMemory,
		throttle.SignalProcessMemoryMB:  LowMemory,
		throttle.SignalDiskPercent:      LowDisk,
		throttle.SignalCPUOthersPercent: CPUContention,
	}
}

// Pressure is one signal above its adapt level: the mode it asks for, where
// it stands on its ladder and since when.
type Pressure struct {
	Mode   Mode          `json:"mode"`
	Signal string        `json:"signal"`
	Rung   throttle.Rung `json:"rung"`
	// Value is the signal's value at the change that put it on this rung;
	// Level the level it crossed, in Unit.
	Value float64   `json:"value"`
	Level float64   `json:"level"`
	Unit  string    `json:"unit,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

// String formats the pressure as "high_temp: temperature_c 86.0 °C ≥ 70.0 °C".
func (p Pressure) String() string {
	op := " ≥ "
	if p.Rung == throttle.Pause {
		op = " > "
	}
	return fmt.Sprintf("%s: %s %s%s%s", p.Mode, p.Signal, throttle.FormatValue(p.Value, p.Unit), op, throttle.FormatValue(p.Level, p.Unit))
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

// modeOf is the mode of the highest-priority pressure, or Normal.
func modeOf(active []Pressure) Mode {
	if len(active) == 0 {
		return Normal
	}
	return active[0].Mode
}

func validMode(m Mode) bool { return slices.Contains(pressureModes, m) }
