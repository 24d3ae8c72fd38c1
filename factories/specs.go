package factories

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/throttle"
)

// spec is a Variable plus how to parse, check and print it.
type spec struct {
	Variable
	set func(c *ResourceConfig, raw string) error // parse and range-check
	get func(c *ResourceConfig) string
}

func percentSpec(name, meaning string, field func(*ResourceConfig) *float64, def string) spec {
	return floatSpec(name, meaning, "%", def, field, 0, false, 100, true)
}

// floatSpec accepts a number in (lo, hi] or [lo, hi] depending on loIncl.
func floatSpec(name, meaning, unit, def string, field func(*ResourceConfig) *float64, lo float64, loIncl bool, hi float64, hiIncl bool) spec {
	rng := rangeText(lo, loIncl, hi, hiIncl)
	return spec{
		Variable: Variable{Name: name, Meaning: meaning, Unit: unit, Default: def, Range: rng},
		set: func(c *ResourceConfig, raw string) error {
			v, err := strconv.ParseFloat(raw, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("not a number")
			}
			if v < lo || (v == lo && !loIncl) || v > hi || (v == hi && !hiIncl) {
				return fmt.Errorf("out of range")
			}
			*field(c) = v
			return nil
		},
		get: func(c *ResourceConfig) string { return strconv.FormatFloat(*field(c), 'f', -1, 64) },
	}
}

func intSpec(name, meaning, unit, def string, field func(*ResourceConfig) *int64, lo, hi int64) spec {
	return spec{
		Variable: Variable{Name: name, Meaning: meaning, Unit: unit, Default: def, Range: fmt.Sprintf("integer in [%d, %d]", lo, hi)},
		set: func(c *ResourceConfig, raw string) error {
			v, err := strconv.ParseInt(raw, 10, 64)
			if err != nil {
				return fmt.Errorf("not an integer")
			}
			if v < lo || v > hi {
				return fmt.Errorf("out of range")
			}
			*field(c) = v
			return nil
		},
		get: func(c *ResourceConfig) string { return strconv.FormatInt(*field(c), 10) },
	}
}

// secondsSpec accepts a number of seconds (fractions allowed) in (lo, hi].
func secondsSpec(name, meaning, def string, field func(*ResourceConfig) *time.Duration, lo, hi float64) spec {
	return spec{
		Variable: Variable{Name: name, Meaning: meaning, Unit: "s", Default: def, Range: rangeText(lo, false, hi, true)},
		set: func(c *ResourceConfig, raw string) error {
			v, err := strconv.ParseFloat(raw, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("not a number of seconds")
			}
			if v <= lo || v > hi {
				return fmt.Errorf("out of range")
			}
			d := time.Duration(v * float64(time.Second))
			if d <= 0 {
				return fmt.Errorf("below the nanosecond the clock counts in")
			}
			*field(c) = d
			return nil
		},
		get: func(c *ResourceConfig) string {
			return strconv.FormatFloat(field(c).Seconds(), 'f', -1, 64)
		},
	}
}

func pathSpec(name, meaning, def string, field func(*ResourceConfig) *string, allowEmpty bool) spec {
	rng := "an absolute path"
	if allowEmpty {
		rng = "an absolute path, or empty"
	}
	return spec{
		Variable: Variable{Name: name, Meaning: meaning, Unit: "path", Default: def, Range: rng},
		set: func(c *ResourceConfig, raw string) error {
			switch {
			case raw == "" && allowEmpty:
			case raw == "":
				return fmt.Errorf("empty")
			case !filepath.IsAbs(raw):
				return fmt.Errorf("not an absolute path")
			case strings.ContainsRune(raw, 0):
				return fmt.Errorf("contains a NUL byte")
			}
			if raw != "" {
				raw = filepath.Clean(raw)
			}
			*field(c) = raw
			return nil
		},
		get: func(c *ResourceConfig) string { return *field(c) },
	}
}

func rangeText(lo float64, loIncl bool, hi float64, hiIncl bool) string {
	l, r := "(", ")"
	if loIncl {
		l = "["
	}
	if hiIncl {
		r = "]"
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	return l + f(lo) + ", " + f(hi) + r
}

const maxMB = 1 << 20 // 1 TiB in MB: a ceiling well above any edge device

// levelSpec is the level of a ladder: a number in [0, hi], 0 meaning no
// such rung.
func levelSpec(name, meaning, unit, def string, field func(*ResourceConfig) *float64, hi float64) spec {
	return floatSpec(name, meaning, unit, def, field, 0, true, hi, true)
}

func intRangeSpec(name, meaning, unit, def string, field func(*ResourceConfig) *int, lo, hi int) spec {
	return spec{
		Variable: Variable{Name: name, Meaning: meaning, Unit: unit, Default: def, Range: fmt.Sprintf("integer in [%d, %d]", lo, hi)},
		set: func(c *ResourceConfig, raw string) error {
			v, err := strconv.Atoi(raw)
			if err != nil {
				return fmt.Errorf("not an integer")
			}
			if v < lo || v > hi {
				return fmt.Errorf("out of range")
			}
			*field(c) = v
			return nil
		},
		get: func(c *ResourceConfig) string { return strconv.Itoa(*field(c)) },
	}
}

// hostIntSpec is an integer whose 0 keeps the host-derived value.
func hostIntSpec(name, meaning, unit, def string, field func(*ResourceConfig) *int, hi int) spec {
	s := intRangeSpec(name, meaning, unit, def, field, 0, hi)
	set := s.set
	s.set = func(c *ResourceConfig, raw string) error {
		keep := *field(c)
		if err := set(c, raw); err != nil {
			return err
		}
		if *field(c) == 0 {
			*field(c) = keep
		}
		return nil
	}
	return s
}

// specs lists every variable, in documentation order.
var specs = []spec{
	levelSpec("TEMP_ADAPT_C", "Temperature at which the agent adapts: slows down, one CPU node at a time (0 = from the board)", "°C", "from the board's trip points; else 70", func(c *ResourceConfig) *float64 { return &c.TempAdaptC }, 150),
	levelSpec("TEMP_THRESHOLD", "Temperature above which work pauses (0 = from the board)", "°C", "from the board's trip points; else 80", func(c *ResourceConfig) *float64 { return &c.TempThreshold }, 150),
	floatSpec("TEMP_HYSTERESIS_C", "How far below a temperature level the sensor must fall to leave it", "°C", "3", func(c *ResourceConfig) *float64 { return &c.TempHysteresisC }, 0, true, 20, true),
	levelSpec("MEMORY_ADAPT", "Memory use (of host or cgroup limit) at which the agent adapts: pages out, runs fewer nodes (0 = never)", "%", "80", func(c *ResourceConfig) *float64 { return &c.MemoryAdapt }, 100),
	levelSpec("MEMORY_THRESHOLD", "Memory use (of host or cgroup limit) above which work pauses (0 = never)", "%", "85", func(c *ResourceConfig) *float64 { return &c.MemoryThreshold }, 100),
	levelSpec("SWAP_ADAPT", "Swap use at which the agent adapts as for memory (0 = never)", "%", "50", func(c *ResourceConfig) *float64 { return &c.SwapAdapt }, 100),
	levelSpec("SWAP_THRESHOLD", "Swap use above which work pauses (0 = never)", "%", "80", func(c *ResourceConfig) *float64 { return &c.SwapThreshold }, 100),
	levelSpec("DISK_ADAPT", "Usage of the storage file system at which the agent adapts: logs only warnings (0 = never)", "%", "90", func(c *ResourceConfig) *float64 { return &c.DiskAdapt }, 100),
	levelSpec("DISK_THRESHOLD", "Usage of the storage file system above which work pauses (0 = never)", "%", "95", func(c *ResourceConfig) *float64 { return &c.DiskThreshold }, 100),
	levelSpec("CPU_ADAPT", "CPU used by other processes (not this one, its children or its helpers) at which the agent slows down (0 = never)", "% of all CPUs", "70", func(c *ResourceConfig) *float64 { return &c.CPUAdapt }, 100),
	levelSpec("CPU_THRESHOLD", "CPU used by other processes above which work pauses (0 = never)", "% of all CPUs", "95", func(c *ResourceConfig) *float64 { return &c.CPUThreshold }, 100),
	intRangeSpec("CPU_TRIP_AFTER_SAMPLES", "Consecutive samples above CPU_THRESHOLD before work pauses", "samples", "3", func(c *ResourceConfig) *int { return &c.CPUTripAfter }, 1, 100),
	pathlessSpec("CPU_HELPERS", "Processes doing the agent's work elsewhere, whose CPU is the agent's own: pid:N, name:NAME, cgroup:/PATH, endpoint:URL (the LLM endpoint's server on this host is found by default)", "empty", func(c *ResourceConfig) *string { return &c.CPUHelpers }, validHelpers),
	intSpec("MEMORY_SOFT_LIMIT_MB", "Above this much process memory the context pager is asked to page out", "MB", "75 % of effective memory", func(c *ResourceConfig) *int64 { return &c.MemorySoftLimitMB }, 1, maxMB),
	intSpec("MEMORY_HARD_LIMIT_MB", "Above this much process memory work pauses", "MB", "87.5 % of effective memory", func(c *ResourceConfig) *int64 { return &c.MemoryHardLimitMB }, 1, maxMB),
	intRangeSpec("TRIP_AFTER_SAMPLES", "Consecutive samples above a pause level before work pauses (CPU has its own)", "samples", "1", func(c *ResourceConfig) *int { return &c.TripAfter }, 1, 100),
	secondsSpec("COOLDOWN_SECONDS", "Least time work stays paused after the last sample above a pause level (doubles on repeated pauses, decays after as long without one)", "30", func(c *ResourceConfig) *time.Duration { return &c.Cooldown }, 0, 86400),
	secondsSpec("HOLD_SECONDS", "Least time the agent stays adapted after the last sample at an adapt level", "30", func(c *ResourceConfig) *time.Duration { return &c.Hold }, 0, 86400),
	secondsSpec("CHECK_INTERVAL_SECONDS", "How often resources are sampled", "5", func(c *ResourceConfig) *time.Duration { return &c.CheckInterval }, 0, 3600),
	percentSpec("CPU_TARGET_PERCENT", "CPU throttler keeps the agent's paced calls, with their helpers (a local LLM server), at or under this share of the board's CPUs", func(c *ResourceConfig) *float64 { return &c.CPUTargetPercent }, "90"),
	hostIntSpec("CPU_PARALLEL", "Most CPU-bound nodes running at once (0 = host-derived)", "nodes", "max(2, CPUs − 2)", func(c *ResourceConfig) *int { return &c.CPUParallel }, 4096),
	hostIntSpec("IO_PARALLEL", "Most I/O-bound nodes (LLM and HTTP calls) running at once (0 = host-derived)", "nodes", "CPUs × 64, at most half the open-files limit", func(c *ResourceConfig) *int { return &c.IOParallel }, 65536),
	floatSpec("PAGER_MEMORY_LIMIT_MB", "RAM budget of the context pager", "MB", "256, at most 1/8 of effective memory, at least 16", func(c *ResourceConfig) *float64 { return &c.PagerMemoryLimitMB }, 0, false, maxMB, true),
	floatSpec("PAGER_PAGE_SIZE_MB", "Unit of paging; fractions allowed (0.25 = 256 KiB)", "MB", "the pager's default", func(c *ResourceConfig) *float64 { return &c.PagerPageSizeMB }, 0, true, 64, true),
	pathSpec("PAGER_STORAGE_PATH", "Directory of the pager's page file (empty: a temporary directory removed at exit)", "empty", func(c *ResourceConfig) *string { return &c.PagerStoragePath }, true),
	floatSpec("DISK_MAX_WRITE_MBPS", "Write rate limit of throttled files (0 = unlimited)", "MB/s", "0", func(c *ResourceConfig) *float64 { return &c.DiskMaxWriteMBps }, 0, true, 100000, true),
	floatSpec("DISK_MAX_READ_MBPS", "Read rate limit of throttled files (0 = unlimited)", "MB/s", "0", func(c *ResourceConfig) *float64 { return &c.DiskMaxReadMBps }, 0, true, 100000, true),
	pathSpec("THERMAL_SENSOR_PATH", "One temperature file or zone to use instead of the board table", "empty (board table)", func(c *ResourceConfig) *string { return &c.ThermalSensorPath }, true),
	pathSpec("SYSFS_ROOT", "Where sysfs is mounted (thermal zones, throttle flags)", "/sys", func(c *ResourceConfig) *string { return &c.SysfsRoot }, false),
	pathSpec("PROCFS_ROOT", "Where procfs is mounted (CPU, memory, PSI)", "/proc", func(c *ResourceConfig) *string { return &c.ProcfsRoot }, false),
	pathSpec("CGROUP_ROOT", "Where the cgroup file system is mounted", "SYSFS_ROOT/fs/cgroup", func(c *ResourceConfig) *string { return &c.CgroupRoot }, true),
	pathSpec("METRICS_PATH", "JSON Lines file receiving the resource history (empty: none)", "empty", func(c *ResourceConfig) *string { return &c.MetricsPath }, true),
}

// pathlessSpec is a free-form string checked by valid.
func pathlessSpec(name, meaning, def string, field func(*ResourceConfig) *string, valid func(string) error) spec {
	return spec{
		Variable: Variable{Name: name, Meaning: meaning, Unit: "", Default: def, Range: "a comma-separated list, or empty"},
		set: func(c *ResourceConfig, raw string) error {
			if err := valid(raw); err != nil {
				return err
			}
			*field(c) = raw
			return nil
		},
		get: func(c *ResourceConfig) string { return *field(c) },
	}
}

func validHelpers(raw string) error {
	_, err := throttle.ParseHelpers(raw)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "throttle: "))
	}
	return nil
}

// Variables documents every CEMAF_RESOURCE_* variable, in a stable order.
func Variables() []Variable {
	out := make([]Variable, len(specs))
	for i, s := range specs {
		out[i] = s.Variable
	}
	return out
}

func specByName(name string) (spec, bool) {
	for _, s := range specs {
		if s.Name == name {
			return s, true
		}
	}
	return spec{}, false
}
