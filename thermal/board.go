package thermal

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cemaf-go/cemaf/internal/boundedread"
)

// Board names accepted by Options.Board and reported by Manager.Board.
const (
	BoardRaspberryPi = "raspberry-pi"
	BoardJetsonNano  = "jetson-nano"
	BoardJetsonOrin  = "jetson-orin"
	BoardGeneric     = "generic"
)

// board is one row of the built-in board table.
type board struct {
	name string
	// sensors are the zone types to use; nil means every zone whose type is
	// not in ignore.
	sensors []string
	// ignore are zone types never used: sensors known to report nothing
	// useful about the SoC.
	ignore []string
	// maxAdaptC and maxPauseC cap levels derived from trip points (0 = no
	// cap): on boards whose firmware throttles below the kernel's trip
	// points, the trip points overstate the usable range.
	maxAdaptC, maxPauseC float64
}

// boardTable returns the built-in board table. Zone types come from the
// boards' device trees: the Raspberry Pi exposes one cpu-thermal zone (the
// VideoCore firmware throttles the ARM cores from 80 °C and hard-limits at
// 85 °C whatever the kernel's 110 °C critical trip says, so the agent pauses
// above 80 °C, before the firmware caps the clock for it); the Jetson Nano's
// PMIC-Die always reads 100 °C and thermal-fan-est is a fan-control
// estimate, not a sensor; on the Jetson Orin, tj-thermal is the hottest
// on-die sensor and cv0..2-thermal are powered down (disabled) on Orin Nano.
func boardTable() []board {
	return []board{
		{
			name:      BoardRaspberryPi,
			sensors:   []string{"cpu-thermal"},
			maxAdaptC: 70,
			maxPauseC: 80,
		},
		{
			name:    BoardJetsonNano,
			sensors: []string{"CPU-therm", "GPU-therm", "AO-therm"},
			ignore:  []string{"PMIC-Die", "thermal-fan-est"},
		},
		{
			name: BoardJetsonOrin,
			sensors: []string{
				"cpu-thermal", "gpu-thermal", "tj-thermal",
				"soc0-thermal", "soc1-thermal", "soc2-thermal",
				"cv0-thermal", "cv1-thermal", "cv2-thermal",
			},
		},
		{
			name:   BoardGeneric,
			ignore: []string{"PMIC-Die", "thermal-fan-est"},
		},
	}
}

// boardNames lists the names Options.Board accepts.
func boardNames() []string {
	var names []string
	for _, b := range boardTable() {
		names = append(names, b.name)
	}
	return names
}

func boardByName(name string) (board, bool) {
	for _, b := range boardTable() {
		if b.name == name {
			return b, true
		}
	}
	return board{}, false
}

// detectBoard picks a row of the board table: first from the device-tree
// model string, then from the set of zone types (and whether the Pi
// firmware's get_throttled exists), else generic.
func detectBoard(model string, zones []zone, hasThrottled bool) board {
	name := BoardGeneric
	switch {
	case strings.Contains(model, "Raspberry Pi"):
		name = BoardRaspberryPi
	case strings.Contains(model, "Jetson") && strings.Contains(model, "Orin"):
		name = BoardJetsonOrin
	case strings.Contains(model, "Jetson Nano") || strings.Contains(model, "Jetson-Nano"):
		name = BoardJetsonNano
	default:
		types := make(map[string]bool, len(zones))
		for _, z := range zones {
			types[z.typ] = true
		}
		switch {
		case types["tj-thermal"] || types["soc0-thermal"]:
			name = BoardJetsonOrin
		case types["CPU-therm"] && types["PMIC-Die"]:
			name = BoardJetsonNano
		case types["cpu-thermal"] && hasThrottled:
			name = BoardRaspberryPi
		}
	}
	b, _ := boardByName(name)
	return b
}

// choice reports whether the board uses zones of type typ, and if not, why.
func (b board) choice(typ string, explicit []string) (bool, string) {
	if explicit != nil {
		if slices.Contains(explicit, typ) {
			return true, ""
		}
		return false, "not in Options.Sensors"
	}
	if slices.Contains(b.ignore, typ) {
		return false, "ignored on " + b.name + ": not a usable SoC sensor"
	}
	if b.sensors != nil && !slices.Contains(b.sensors, typ) {
		return false, "not in the " + b.name + " sensor table"
	}
	return true, ""
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func readModel(sysfsRoot string) string {
	b, err := boundedread.ReadFile(filepath.Join(sysfsRoot, "firmware", "devicetree", "base", "model"), maxAttrBytes)
	if err != nil {
		return ""
	}
	return parseModel(b)
}
