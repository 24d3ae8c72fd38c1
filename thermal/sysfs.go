package thermal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cemaf-go/cemaf/internal/boundedread"
)

// Plausible range of a temperature reading. Sensors of powered-down blocks
// report values far outside it (Tegra reports -256 °C for some), and such a
// reading is skipped, not acted on.
const (
	minPlausibleC = -55.0
	maxPlausibleC = 200.0
)

var (
	errEmpty     = errors.New("empty")
	errNotNumber = errors.New("not a number")
)

// TripPoint is one trip point of a thermal zone, as the kernel reports it in
// trip_point_K_type and trip_point_K_temp.
type TripPoint struct {
	// Index is K in trip_point_K_*.
	Index int
	// Type is the kernel's trip type: "passive", "active", "hot" or
	// "critical" (other strings are kept as read).
	Type string
	// TempC is the trip temperature in degrees Celsius.
	TempC float64
}

// zone is one thermal_zoneN directory as found by a scan.
type zone struct {
	name  string // "thermal_zone0", or the sensor path for Options.SensorPath
	dir   string
	path  string // the temp file
	typ   string
	mode  string
	trips []TripPoint
}

// parseMillidegrees parses the content of a sysfs temp or trip_point_K_temp
// file: a decimal integer in millidegrees Celsius, optionally surrounded by
// white space. It returns degrees Celsius.
func parseMillidegrees(b []byte) (float64, error) {
	s := string(bytes.TrimSpace(b))
	if s == "" {
		return 0, errEmpty
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", errNotNumber, truncate(s, 32))
	}
	return float64(v) / 1000, nil
}

// parseModel parses /sys/firmware/devicetree/base/model: a NUL-terminated
// string.
func parseModel(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// maxAttrBytes bounds the read of any sysfs attribute: they hold a number
// or a short string (a page at most).
const maxAttrBytes = 4096

// readTemp reads a temp file and checks that the value is plausible. A FIFO
// or a device where the file should be is refused without blocking.
func readTemp(path string) (float64, error) {
	b, err := boundedread.ReadFile(path, maxAttrBytes)
	if err != nil {
		return 0, err
	}
	c, err := parseMillidegrees(b)
	if err != nil {
		return 0, err
	}
	if c < minPlausibleC || c > maxPlausibleC {
		return 0, fmt.Errorf("implausible value %g °C", c)
	}
	return c, nil
}

// readString reads a small attribute file; a missing file reads as "".
func readString(path string) (string, error) {
	b, err := boundedread.ReadFile(path, maxAttrBytes)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// scanZones lists the thermal_zoneN directories of classDir in numeric order
// with their type, mode and trip points. A missing classDir is no zones.
func scanZones(classDir string) ([]zone, error) {
	entries, err := os.ReadDir(classDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("thermal: scanning %s: %w", classDir, err)
	}
	type numbered struct {
		n    int
		name string
	}
	var names []numbered
	for _, e := range entries {
		n, ok := zoneNumber(e.Name())
		if ok {
			names = append(names, numbered{n, e.Name()})
		}
	}
	slices.SortFunc(names, func(a, b numbered) int { return a.n - b.n })
	zones := make([]zone, 0, len(names))
	for _, nm := range names {
		dir := filepath.Join(classDir, nm.name)
		zones = append(zones, readZone(nm.name, dir, filepath.Join(dir, "temp")))
	}
	return zones, nil
}

// zoneNumber reports N for a "thermal_zoneN" name.
func zoneNumber(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "thermal_zone")
	if !ok || rest == "" {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// readZone reads a zone's type, mode and trip points. Unreadable attributes
// are left empty: a zone is judged by whether its temp can be read.
func readZone(name, dir, tempPath string) zone {
	z := zone{name: name, dir: dir, path: tempPath}
	z.typ, _ = readString(filepath.Join(dir, "type"))
	z.mode, _ = readString(filepath.Join(dir, "mode"))
	z.trips = readTrips(dir)
	return z
}

// readTrips reads trip_point_K_{type,temp} for every K present.
func readTrips(dir string) []TripPoint {
	matches, _ := filepath.Glob(filepath.Join(dir, "trip_point_*_type"))
	var trips []TripPoint
	for _, m := range matches {
		k, ok := tripIndex(filepath.Base(m))
		if !ok {
			continue
		}
		typ, err := readString(m)
		if err != nil || typ == "" {
			continue
		}
		b, err := boundedread.ReadFile(filepath.Join(dir, "trip_point_"+strconv.Itoa(k)+"_temp"), maxAttrBytes)
		if err != nil {
			continue
		}
		c, err := parseMillidegrees(b)
		if err != nil {
			continue
		}
		trips = append(trips, TripPoint{Index: k, Type: typ, TempC: c})
	}
	slices.SortFunc(trips, func(a, b TripPoint) int { return a.Index - b.Index })
	return trips
}

// tripIndex reports K for a "trip_point_K_type" name.
func tripIndex(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "trip_point_")
	if !ok {
		return 0, false
	}
	rest, ok = strings.CutSuffix(rest, "_type")
	if !ok {
		return 0, false
	}
	k, err := strconv.Atoi(rest)
	if err != nil || k < 0 {
		return 0, false
	}
	return k, true
}
