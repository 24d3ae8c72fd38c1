package thermal_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
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
		adapt, pause float64
		hottest      float64
		hottestName  string
		skipped      map[string]string // zone type → substring of Reading.Skipped
		throttleFlag bool
	}{
		{
			name: "pi4", fixture: "pi4",
			board: thermal.BoardRaspberryPi, sensors: []string{"cpu-thermal"},
			adapt: 70, pause: 80, // 110 °C trip − 5, capped where the firmware starts throttling
			hottest: 48.686, hottestName: "cpu-thermal",
			throttleFlag: true,
		},
		{
			name: "jetson nano ignores PMIC-Die", fixture: "jetson-nano",
			board: thermal.BoardJetsonNano, sensors: []string{"AO-therm", "CPU-therm", "GPU-therm"},
			adapt: 83.5, pause: 93.5, // lowest hot/critical trip of the chosen zones: CPU-therm hot 98.5 − 5; no passive trip
			hottest: 38, hottestName: "CPU-therm",
			skipped: map[string]string{"PMIC-Die": "ignored on jetson-nano", "thermal-fan-est": "ignored", "PLL-therm": "not in the jetson-nano sensor table"},
		},
		{
			name: "jetson orin skips disabled cv zones", fixture: "jetson-orin",
			board:   thermal.BoardJetsonOrin,
			sensors: []string{"cpu-thermal", "gpu-thermal", "soc0-thermal", "soc1-thermal", "soc2-thermal", "tj-thermal"},
			adapt:   90, pause: 94, // passive 95 − 5, hot 99 − 5
			hottest: 47, hottestName: "tj-thermal",
			skipped: map[string]string{"cv0-thermal": "disabled", "cv1-thermal": "disabled", "cv2-thermal": "disabled"},
		},
		{
			name: "explicit thresholds win", fixture: "jetson-orin",
			opts:    thermal.Options{AdaptC: 60, PauseC: 70},
			board:   thermal.BoardJetsonOrin,
			sensors: []string{"cpu-thermal", "gpu-thermal", "soc0-thermal", "soc1-thermal", "soc2-thermal", "tj-thermal"},
			adapt:   60, pause: 70, hottest: 47, hottestName: "tj-thermal",
		},
		{
			name: "explicit sensors", fixture: "jetson-nano",
			opts:  thermal.Options{Sensors: []string{"GPU-therm"}},
			board: thermal.BoardJetsonNano, sensors: []string{"GPU-therm"},
			adapt: 85, pause: 95, hottest: 36.5, hottestName: "GPU-therm",
			skipped: map[string]string{"CPU-therm": "not in Options.Sensors"},
		},
		{
			name: "forced generic board still ignores PMIC-Die", fixture: "jetson-nano",
			opts:  thermal.Options{Board: thermal.BoardGeneric},
			board: thermal.BoardGeneric, sensors: []string{"AO-therm", "CPU-therm", "GPU-therm", "PLL-therm"},
			adapt: 83.5, pause: 93.5, hottest: 38, hottestName: "CPU-therm",
			skipped: map[string]string{"PMIC-Die": "ignored on generic"},
		},
		{
			name: "sensor path", fixture: "jetson-orin",
			opts:  thermal.Options{SensorPath: "class/thermal/thermal_zone1/temp"},
			board: thermal.BoardJetsonOrin, sensors: []string{"gpu-thermal"},
			adapt: 89.5, pause: 99.5, // gpu-thermal has only a critical trip (104.5), no passive one
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
			if l := m.Levels(); l.AdaptC != tt.adapt || l.PauseC != tt.pause || l.AdaptFrom == "" || l.PauseFrom == "" {
				t.Errorf("Levels() = %+v; want %g, %g with sources", l, tt.adapt, tt.pause)
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
			if st.BelowPauseC != tt.pause-tt.hottest {
				t.Errorf("BelowPauseC = %g, want %g", st.BelowPauseC, tt.pause-tt.hottest)
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
	if l := m.Levels(); l.AdaptC != thermal.DefaultAdaptC || l.PauseC != thermal.DefaultPauseC || l.AdaptFrom != "default" {
		t.Errorf("Levels() = %+v; want the defaults", l)
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
		{"adapt above pause", thermal.Options{AdaptC: 90, PauseC: 85}, []string{"Options.AdaptC = 90", "Options.PauseC = 85"}},
		{"adapt equal pause", thermal.Options{AdaptC: 80, PauseC: 80}, []string{"AdaptC", "PauseC"}},
		{"adapt above derived pause", thermal.Options{AdaptC: 86}, []string{"Options.AdaptC = 86", "PauseC = 80", "raspberry-pi board table"}},
		{"pause out of range", thermal.Options{PauseC: 300}, []string{"Options.PauseC = 300", "(0, 150]"}},
		{"NaN pause", thermal.Options{PauseC: math.NaN()}, []string{"Options.PauseC = NaN"}},
		{"negative adapt", thermal.Options{AdaptC: -1}, []string{"Options.AdaptC = -1"}},
		{"negative trip margin", thermal.Options{TripMarginC: -1}, []string{"Options.TripMarginC = -1"}},
		{"forecast window of one", thermal.Options{ForecastWindow: 1}, []string{"Options.ForecastWindow = 1"}},
		{"unknown board", thermal.Options{Board: "pi"}, []string{`Options.Board = "pi"`, "raspberry-pi"}},
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
				t.Fatalf("New() = %v, succeeded", m)
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
	// No board detected from an empty root: generic, levels from the
	// zone's own 110 °C critical trip.
	if l := m.Levels(); l.PauseC != 105 || !strings.Contains(l.PauseFrom, "critical trip point of cpu-thermal (110 °C) − 5") {
		t.Errorf("Levels() = %+v, want 105 from the critical trip point", l)
	}
}

// Hostile or broken sysfs trees: a FIFO, a device or a huge file where an
// attribute should be is refused at once, never read whole or waited on.
func TestHostileSysfsFiles(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	plant := map[string]func(t *testing.T, path string){
		"fifo": func(t *testing.T, path string) {
			os.Remove(path)
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"symlink to /dev/zero": func(t *testing.T, path string) {
			os.Remove(path)
			if err := os.Symlink("/dev/zero", path); err != nil {
				t.Fatal(err)
			}
		},
		"symlink to a 2 GiB file": func(t *testing.T, path string) {
			os.Remove(path)
			if err := os.Symlink(big, path); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, do := range plant {
		t.Run("temp "+name, func(t *testing.T) {
			root := fixture(t, "pi4")
			do(t, filepath.Join(root, "class/thermal/thermal_zone0/temp"))
			_, err := thermal.New(thermal.Options{SysfsRoot: root})
			if !errors.Is(err, thermal.ErrNoSensors) {
				t.Fatalf("New() = %v, want ErrNoSensors", err)
			}
		})
		t.Run("temp turns "+name+" after New", func(t *testing.T) {
			root := fixture(t, "pi4")
			m, err := thermal.New(thermal.Options{SysfsRoot: root})
			if err != nil {
				t.Fatal(err)
			}
			do(t, filepath.Join(root, "class/thermal/thermal_zone0/temp"))
			if _, ok := m.ReadTemperatureC(); ok {
				t.Error("a reading from a hostile file")
			}
			rs, err := m.Readings()
			if err != nil || rs[0].Valid || rs[0].Skipped == "" {
				t.Errorf("Readings() = %+v, %v", rs, err)
			}
		})
		t.Run("sensor path "+name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "temp")
			do(t, p)
			_, err := thermal.New(thermal.Options{SysfsRoot: t.TempDir(), SensorPath: p})
			if err == nil || !strings.Contains(err.Error(), "Options.SensorPath") {
				t.Fatalf("New() = %v, want an error naming Options.SensorPath", err)
			}
		})
		t.Run("model "+name, func(t *testing.T) {
			root := fixture(t, "pi4")
			do(t, filepath.Join(root, "firmware/devicetree/base/model"))
			m, err := thermal.New(thermal.Options{SysfsRoot: root})
			if err != nil {
				t.Fatal(err)
			}
			// The board is still found from the zones and get_throttled.
			if m.Board() != thermal.BoardRaspberryPi {
				t.Errorf("Board() = %q", m.Board())
			}
		})
		t.Run("get_throttled "+name, func(t *testing.T) {
			root := fixture(t, "pi4")
			m, err := thermal.New(thermal.Options{SysfsRoot: root})
			if err != nil {
				t.Fatal(err)
			}
			do(t, throttledPath(root))
			if err := m.Poll(time.Now()); err != nil {
				t.Fatal(err)
			}
			if _, ok := m.ThrottleFlags(); ok {
				t.Error("flags read from a hostile file")
			}
		})
	}
}
