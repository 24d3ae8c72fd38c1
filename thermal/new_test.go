package thermal_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cemaf-go/cemaf/thermal"
)

func TestNewBoards(t *testing.T) {
	tests := []struct {
		name         string
		fixture      string
		opts         thermal.Options
		board        string
		sensors      []string
		warn, crit   float64
		hottest      float64
		hottestName  string
		skipped      map[string]string // zone type → substring of Reading.Skipped
		throttleFlag bool
	}{
		{
			name: "pi4", fixture: "pi4",
			board: thermal.BoardRaspberryPi, sensors: []string{"cpu-thermal"},
			warn: 75, crit: 85, // 110 °C trip − 5, capped by the firmware limit
			hottest: 48.686, hottestName: "cpu-thermal",
			throttleFlag: true,
		},
		{
			name: "jetson nano ignores PMIC-Die", fixture: "jetson-nano",
			board: thermal.BoardJetsonNano, sensors: []string{"AO-therm", "CPU-therm", "GPU-therm"},
			warn: 75, crit: 93.5, // lowest hot/critical trip of the chosen zones: CPU-therm hot 98.5 − 5
			hottest: 38, hottestName: "CPU-therm",
			skipped: map[string]string{"PMIC-Die": "ignored on jetson-nano", "thermal-fan-est": "ignored", "PLL-therm": "not in the jetson-nano sensor table"},
		},
		{
			name: "jetson orin skips disabled cv zones", fixture: "jetson-orin",
			board:   thermal.BoardJetsonOrin,
			sensors: []string{"cpu-thermal", "gpu-thermal", "soc0-thermal", "soc1-thermal", "soc2-thermal", "tj-thermal"},
			warn:    90, crit: 94, // passive 95 − 5, hot 99 − 5
			hottest: 47, hottestName: "tj-thermal",
			skipped: map[string]string{"cv0-thermal": "disabled", "cv1-thermal": "disabled", "cv2-thermal": "disabled"},
		},
		{
			name: "explicit thresholds win", fixture: "jetson-orin",
			opts:    thermal.Options{WarningC: 60, CriticalC: 70},
			board:   thermal.BoardJetsonOrin,
			sensors: []string{"cpu-thermal", "gpu-thermal", "soc0-thermal", "soc1-thermal", "soc2-thermal", "tj-thermal"},
			warn:    60, crit: 70, hottest: 47, hottestName: "tj-thermal",
		},
		{
			name: "explicit sensors", fixture: "jetson-nano",
			opts:  thermal.Options{Sensors: []string{"GPU-therm"}},
			board: thermal.BoardJetsonNano, sensors: []string{"GPU-therm"},
			warn: 75, crit: 95, hottest: 36.5, hottestName: "GPU-therm",
			skipped: map[string]string{"CPU-therm": "not in Options.Sensors"},
		},
		{
			name: "forced generic board still ignores PMIC-Die", fixture: "jetson-nano",
			opts:  thermal.Options{Board: thermal.BoardGeneric},
			board: thermal.BoardGeneric, sensors: []string{"AO-therm", "CPU-therm", "GPU-therm", "PLL-therm"},
			warn: 75, crit: 93.5, hottest: 38, hottestName: "CPU-therm",
			skipped: map[string]string{"PMIC-Die": "ignored on generic"},
		},
		{
			name: "sensor path", fixture: "jetson-orin",
			opts:  thermal.Options{SensorPath: "class/thermal/thermal_zone1/temp"},
			board: thermal.BoardJetsonOrin, sensors: []string{"gpu-thermal"},
			warn: 75, crit: 99.5, // gpu-thermal has only a critical trip (104.5), no passive one
			hottest: 46.718, hottestName: "gpu-thermal",
			skipped: map[string]string{"cpu-thermal": "not Options.SensorPath"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fixture(t, tt.fixture)
			opts := tt.opts
			opts.SysfsRoot = root
			if opts.SensorPath != "" {
				opts.SensorPath = filepath.Join(root, opts.SensorPath)
			}
			m, err := thermal.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if got := m.Board(); got != tt.board {
				t.Errorf("Board() = %q, want %q", got, tt.board)
			}
			got := m.Sensors()
			slices.Sort(got)
			want := slices.Clone(tt.sensors)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("Sensors() = %q, want %q", got, want)
			}
			if w, c := m.Thresholds(); w != tt.warn || c != tt.crit {
				t.Errorf("Thresholds() = %g, %g; want %g, %g", w, c, tt.warn, tt.crit)
			}
			if _, ok := m.TemperatureC(); ok {
				t.Error("TemperatureC() ok before the first poll")
			}
			if err := m.Poll(time.Now()); err != nil {
				t.Fatal(err)
			}
			st := m.Status()
			if st.TempC != tt.hottest || st.Sensor != tt.hottestName || !st.Valid {
				t.Errorf("Status() temp = %g %q valid=%v; want %g %q", st.TempC, st.Sensor, st.Valid, tt.hottest, tt.hottestName)
			}
			if st.State != thermal.Normal {
				t.Errorf("State = %v, want normal", st.State)
			}
			if st.FlagsValid != tt.throttleFlag {
				t.Errorf("FlagsValid = %v, want %v", st.FlagsValid, tt.throttleFlag)
			}

			rs, err := m.Readings()
			if err != nil {
				t.Fatal(err)
			}
			chosen := map[string]bool{}
			for _, r := range rs {
				if r.Chosen {
					chosen[r.Type] = true
					if r.Skipped != "" || !r.Valid {
						t.Errorf("chosen zone %s: Skipped=%q Valid=%v", r.Type, r.Skipped, r.Valid)
					}
				} else if r.Skipped == "" {
					t.Errorf("zone %s not chosen but no reason given", r.Type)
				}
				if sub, ok := tt.skipped[r.Type]; ok && !strings.Contains(r.Skipped, sub) {
					t.Errorf("zone %s: Skipped = %q, want it to contain %q", r.Type, r.Skipped, sub)
				}
			}
			for _, s := range tt.sensors {
				if !chosen[s] {
					t.Errorf("Readings: %s not marked chosen", s)
				}
			}
		})
	}
}

func TestReadingsReportTripPoints(t *testing.T) {
	m, err := thermal.New(thermal.Options{SysfsRoot: fixture(t, "jetson-orin")})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := m.Readings()
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 9 {
		t.Fatalf("Readings() returned %d zones, want 9", len(rs))
	}
	cpu := rs[0]
	want := []thermal.TripPoint{
		{0, "critical", 104.5}, {1, "hot", 99}, {2, "passive", 95},
		{3, "active", 80}, {4, "active", 65}, {5, "active", 50},
	}
	if cpu.Zone != "thermal_zone0" || cpu.Type != "cpu-thermal" || cpu.Mode != "enabled" || !slices.Equal(cpu.Trips, want) {
		t.Errorf("cpu zone = %+v", cpu)
	}
	cv := rs[2]
	if cv.Type != "cv0-thermal" || cv.Valid || cv.Mode != "disabled" || !strings.Contains(cv.Skipped, "empty") {
		t.Errorf("cv0 zone = %+v; want disabled, invalid, reported empty", cv)
	}
}

func TestNewNoSensors(t *testing.T) {
	tests := []struct {
		name string
		root func(t *testing.T) string
		opts thermal.Options
	}{
		{"machine without zones", func(t *testing.T) string { return fixture(t, "no-zones") }, thermal.Options{}},
		{"no sysfs at all", func(t *testing.T) string { return t.TempDir() }, thermal.Options{}},
		{"only PMIC-Die chosen but all ignored", func(t *testing.T) string { return fixture(t, "jetson-nano") }, thermal.Options{Sensors: []string{"no-such-zone"}}},
		{"all chosen zones unreadable", func(t *testing.T) string {
			root := fixture(t, "pi4")
			writeFile(t, filepath.Join(root, "class/thermal/thermal_zone0/temp"), "")
			return root
		}, thermal.Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.SysfsRoot = tt.root(t)
			m, err := thermal.New(opts)
			if !errors.Is(err, thermal.ErrNoSensors) {
				t.Fatalf("New() = %v, %v; want ErrNoSensors", m, err)
			}
		})
	}
}

func TestNewGenericBoard(t *testing.T) {
	// An x86 laptop: acpitz and x86_pkg_temp read; iwlwifi_1 fails to read
	// (the interface is down) and must be skipped, not chosen-and-fatal.
	root := t.TempDir()
	class := filepath.Join(root, "class", "thermal")
	writeFile(t, filepath.Join(class, "thermal_zone0", "type"), "acpitz\n")
	writeFile(t, filepath.Join(class, "thermal_zone0", "temp"), "40000\n")
	writeFile(t, filepath.Join(class, "thermal_zone10", "type"), "x86_pkg_temp\n")
	writeFile(t, filepath.Join(class, "thermal_zone10", "temp"), "52000\n")
	writeFile(t, filepath.Join(class, "thermal_zone2", "type"), "iwlwifi_1\n")
	if err := os.MkdirAll(filepath.Join(class, "thermal_zone2", "temp"), 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := thermal.New(thermal.Options{SysfsRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	if m.Board() != thermal.BoardGeneric {
		t.Errorf("Board() = %q", m.Board())
	}
	if w, c := m.Thresholds(); w != thermal.DefaultWarningC || c != thermal.DefaultCriticalC {
		t.Errorf("Thresholds() = %g, %g; want the defaults", w, c)
	}
	if err := m.Poll(time.Now()); err != nil {
		t.Fatal(err)
	}
	if c, ok := m.TemperatureC(); !ok || c != 52 {
		t.Errorf("TemperatureC() = %g, %v; want 52", c, ok)
	}
	rs, err := m.Readings()
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{rs[0].Zone, rs[1].Zone, rs[2].Zone}; !slices.Equal(got, []string{"thermal_zone0", "thermal_zone2", "thermal_zone10"}) {
		t.Errorf("zones not in numeric order: %q", got)
	}
	if !strings.Contains(rs[1].Skipped, "unreadable") {
		t.Errorf("iwlwifi_1 Skipped = %q", rs[1].Skipped)
	}
}

func TestNewBadOptions(t *testing.T) {
	root := fixture(t, "pi4")
	tests := []struct {
		name string
		opts thermal.Options
		want []string // substrings of the error
	}{
		{"warning above critical", thermal.Options{WarningC: 90, CriticalC: 85}, []string{"Options.WarningC = 90", "Options.CriticalC = 85"}},
		{"warning equal critical", thermal.Options{WarningC: 80, CriticalC: 80}, []string{"WarningC", "CriticalC"}},
		{"warning above derived critical", thermal.Options{WarningC: 86}, []string{"Options.WarningC = 86", "CriticalC = 85"}},
		{"critical out of range", thermal.Options{CriticalC: 300}, []string{"Options.CriticalC = 300", "(0, 150]"}},
		{"negative warning", thermal.Options{WarningC: -1}, []string{"Options.WarningC = -1"}},
		{"negative hysteresis", thermal.Options{HysteresisC: -1}, []string{"Options.HysteresisC = -1"}},
		{"negative interval", thermal.Options{Interval: -time.Second}, []string{"Options.Interval = -1s", "> 0"}},
		{"cooldown max below base", thermal.Options{CooldownBase: time.Minute, CooldownMax: time.Second}, []string{"CooldownMax = 1s", "CooldownBase = 1m0s"}},
		{"forecast window of one", thermal.Options{ForecastWindow: 1}, []string{"Options.ForecastWindow = 1"}},
		{"unknown board", thermal.Options{Board: "pi"}, []string{`Options.Board = "pi"`, "raspberry-pi"}},
		{"floor above critical", thermal.Options{FloorC: 90}, []string{"Options.FloorC = 90"}},
		{"missing sensor path", thermal.Options{SensorPath: filepath.Join(root, "nope", "temp")}, []string{"Options.SensorPath", filepath.Join(root, "nope", "temp")}},
		{"sensor path not a number", thermal.Options{SensorPath: filepath.Join(root, "class/thermal/thermal_zone0/type")}, []string{"thermal_zone0/type", "not a number", "millidegrees"}},
		{"missing throttled path", thermal.Options{ThrottledPath: filepath.Join(root, "nope")}, []string{"Options.ThrottledPath", filepath.Join(root, "nope")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.SysfsRoot = root
			m, err := thermal.New(opts)
			if err == nil {
				m.Close()
				t.Fatal("New() succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "thermal: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestSensorPathDirectory(t *testing.T) {
	root := fixture(t, "pi4")
	m, err := thermal.New(thermal.Options{SysfsRoot: t.TempDir(), SensorPath: filepath.Join(root, "class/thermal/thermal_zone0")})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Sensors(); !slices.Equal(got, []string{"cpu-thermal"}) {
		t.Errorf("Sensors() = %q", got)
	}
	// No board detected from an empty root: generic, thresholds from the
	// zone's own 110 °C critical trip.
	if _, c := m.Thresholds(); c != 105 {
		t.Errorf("CriticalC = %g, want 105", c)
	}
}
