package factories

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// EnvPrefix is the prefix of every environment variable the module reads.
const EnvPrefix = "CEMAF_RESOURCE_"

// Source says where the value of a setting came from. Higher sources win:
// a flag over a config file, a file over the environment, the environment
// over a default.
type Source int

// The sources, from weakest to strongest.
const (
	SourceDefault Source = iota // a fixed default
	SourceHost                  // derived from this host (CPUs, memory)
	SourceEnv                   // CEMAF_RESOURCE_* environment variable
	SourceFile                  // the config file
	SourceFlag                  // an explicit setting (command-line flag)
)

var sourceNames = [...]string{"default", "host", "env", "file", "flag"}

// String returns "default", "host", "env", "file" or "flag".
func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "source(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText encodes the source as its name.
func (s Source) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a source name written by MarshalText.
func (s *Source) UnmarshalText(b []byte) error {
	for i, n := range sourceNames {
		if n == string(b) {
			*s = Source(i)
			return nil
		}
	}
	return fmt.Errorf("factories: unknown source %q", b)
}

// ResourceConfig is the configuration of the resource-aware runtime. Build
// one with Load (or FromEnv); DefaultConfig gives the defaults for a host.
// Every field corresponds to a CEMAF_RESOURCE_* variable (see Variables).
type ResourceConfig struct {
	// Circuit breaker thresholds.
	CPUThreshold    float64       `json:"cpu_threshold"`    // % of all CPUs
	MemoryThreshold float64       `json:"memory_threshold"` // % of effective memory
	TempThreshold   float64       `json:"temp_threshold"`   // °C
	DiskThreshold   float64       `json:"disk_threshold"`   // % of the storage file system
	Cooldown        time.Duration `json:"cooldown"`
	CheckInterval   time.Duration `json:"check_interval"`
	TripAfter       int           `json:"trip_after"` // consecutive samples

	// Memory guard, CPU throttler.
	MemorySoftLimitMB int64   `json:"memory_soft_limit_mb"`
	MemoryHardLimitMB int64   `json:"memory_hard_limit_mb"`
	CPUTargetPercent  float64 `json:"cpu_target_percent"`

	// Context pager.
	PagerMemoryLimitMB float64 `json:"pager_memory_limit_mb"`
	PagerPageSizeMB    float64 `json:"pager_page_size_mb"`
	PagerStoragePath   string  `json:"pager_storage_path"`

	// Disk I/O limiter.
	DiskMaxWriteMBps float64 `json:"disk_max_write_mbps"`
	DiskMaxReadMBps  float64 `json:"disk_max_read_mbps"`

	// Thermal manager. 0 means derived from the board's trip points.
	ThermalWarningC   float64 `json:"thermal_warning_c"`
	ThermalCriticalC  float64 `json:"thermal_critical_c"`
	ThermalSensorPath string  `json:"thermal_sensor_path"`

	// Executor.
	MaxParallel int `json:"max_parallel"`

	// Where the host's file systems are (containers mount them elsewhere).
	SysfsRoot  string `json:"sysfs_root"`
	ProcfsRoot string `json:"procfs_root"`
	CgroupRoot string `json:"cgroup_root"`

	// MetricsPath, if set, receives the resource history as JSON Lines.
	MetricsPath string `json:"metrics_path"`

	sources map[string]Source
}

// Source returns where the value of the variable name (with or without the
// CEMAF_RESOURCE_ prefix) came from.
func (c *ResourceConfig) Source(name string) Source {
	return c.sources[strings.TrimPrefix(name, EnvPrefix)]
}

// Variable documents one CEMAF_RESOURCE_* variable.
type Variable struct {
	Name    string // without the prefix, e.g. "CPU_THRESHOLD"
	Meaning string
	Unit    string
	Default string // as documented; host-derived defaults describe the rule
	Range   string // accepted values
}

// Env returns the full environment variable name.
func (v Variable) Env() string { return EnvPrefix + v.Name }

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
			*field(c) = time.Duration(v * float64(time.Second))
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

// specs lists every variable, in documentation order.
var specs = []spec{
	percentSpec("CPU_THRESHOLD", "Circuit breaker pauses work while total CPU use is above this", func(c *ResourceConfig) *float64 { return &c.CPUThreshold }, "90"),
	percentSpec("MEMORY_THRESHOLD", "Circuit breaker pauses work while memory use (of host or cgroup limit) is above this", func(c *ResourceConfig) *float64 { return &c.MemoryThreshold }, "85"),
	floatSpec("TEMP_THRESHOLD", "Circuit breaker pauses work while the hottest chosen sensor is above this", "°C", "80", func(c *ResourceConfig) *float64 { return &c.TempThreshold }, 0, false, 150, true),
	percentSpec("DISK_THRESHOLD", "Circuit breaker and disk guard pause work while the storage file system is fuller than this", func(c *ResourceConfig) *float64 { return &c.DiskThreshold }, "95"),
	secondsSpec("COOLDOWN_SECONDS", "Least time the breaker stays open after tripping (doubles on repeated trips)", "30", func(c *ResourceConfig) *time.Duration { return &c.Cooldown }, 0, 86400),
	secondsSpec("CHECK_INTERVAL_SECONDS", "How often resources are sampled", "5", func(c *ResourceConfig) *time.Duration { return &c.CheckInterval }, 0, 3600),
	{
		Variable: Variable{Name: "TRIP_AFTER_SAMPLES", Meaning: "Consecutive samples over a threshold before the breaker opens", Unit: "samples", Default: "2", Range: "integer in [1, 100]"},
		set: func(c *ResourceConfig, raw string) error {
			v, err := strconv.Atoi(raw)
			if err != nil {
				return fmt.Errorf("not an integer")
			}
			if v < 1 || v > 100 {
				return fmt.Errorf("out of range")
			}
			c.TripAfter = v
			return nil
		},
		get: func(c *ResourceConfig) string { return strconv.Itoa(c.TripAfter) },
	},
	intSpec("MEMORY_SOFT_LIMIT_MB", "Above this much process memory the context pager is asked to page out", "MB", "75 % of effective memory", func(c *ResourceConfig) *int64 { return &c.MemorySoftLimitMB }, 1, maxMB),
	intSpec("MEMORY_HARD_LIMIT_MB", "Above this much process memory new nodes wait", "MB", "87.5 % of effective memory", func(c *ResourceConfig) *int64 { return &c.MemoryHardLimitMB }, 1, maxMB),
	percentSpec("CPU_TARGET_PERCENT", "CPU throttler keeps this process at or under this share of one core (LLM calls)", func(c *ResourceConfig) *float64 { return &c.CPUTargetPercent }, "70"),
	floatSpec("PAGER_MEMORY_LIMIT_MB", "RAM budget of the context pager", "MB", "256, at most 1/8 of effective memory, at least 16", func(c *ResourceConfig) *float64 { return &c.PagerMemoryLimitMB }, 0, false, maxMB, true),
	floatSpec("PAGER_PAGE_SIZE_MB", "Unit of paging; fractions allowed (0.25 = 256 KiB)", "MB", "the pager's default", func(c *ResourceConfig) *float64 { return &c.PagerPageSizeMB }, 0, true, 64, true),
	pathSpec("PAGER_STORAGE_PATH", "Directory of the pager's page file (empty: a temporary directory removed at exit)", "empty", func(c *ResourceConfig) *string { return &c.PagerStoragePath }, true),
	floatSpec("DISK_MAX_WRITE_MBPS", "Write rate limit of throttled files (0 = unlimited)", "MB/s", "0", func(c *ResourceConfig) *float64 { return &c.DiskMaxWriteMBps }, 0, true, 100000, true),
	floatSpec("DISK_MAX_READ_MBPS", "Read rate limit of throttled files (0 = unlimited)", "MB/s", "0", func(c *ResourceConfig) *float64 { return &c.DiskMaxReadMBps }, 0, true, 100000, true),
	floatSpec("THERMAL_WARNING_C", "Temperature at which the thermal manager warns (0 = from the board's trip points)", "°C", "0 (derived; else 75)", func(c *ResourceConfig) *float64 { return &c.ThermalWarningC }, 0, true, 150, true),
	floatSpec("THERMAL_CRITICAL_C", "Temperature at which the thermal guard pauses work (0 = from the board's trip points)", "°C", "0 (derived; else 85)", func(c *ResourceConfig) *float64 { return &c.ThermalCriticalC }, 0, true, 150, true),
	pathSpec("THERMAL_SENSOR_PATH", "One temperature file or zone to use instead of the board table", "empty (board table)", func(c *ResourceConfig) *string { return &c.ThermalSensorPath }, true),
	{
		Variable: Variable{Name: "MAX_PARALLEL", Meaning: "Most nodes running at once (0 = usable CPUs)", Unit: "nodes", Default: "usable CPUs (GOMAXPROCS)", Range: "integer in [0, 4096]"},
		set: func(c *ResourceConfig, raw string) error {
			v, err := strconv.Atoi(raw)
			if err != nil {
				return fmt.Errorf("not an integer")
			}
			if v < 0 || v > 4096 {
				return fmt.Errorf("out of range")
			}
			if v > 0 { // 0 keeps the host-derived value
				c.MaxParallel = v
			}
			return nil
		},
		get: func(c *ResourceConfig) string { return strconv.Itoa(c.MaxParallel) },
	},
	pathSpec("SYSFS_ROOT", "Where sysfs is mounted (thermal zones, throttle flags)", "/sys", func(c *ResourceConfig) *string { return &c.SysfsRoot }, false),
	pathSpec("PROCFS_ROOT", "Where procfs is mounted (CPU, memory, PSI)", "/proc", func(c *ResourceConfig) *string { return &c.ProcfsRoot }, false),
	pathSpec("CGROUP_ROOT", "Where the cgroup file system is mounted", "SYSFS_ROOT/fs/cgroup", func(c *ResourceConfig) *string { return &c.CgroupRoot }, true),
	pathSpec("METRICS_PATH", "JSON Lines file receiving the resource history (empty: none)", "empty", func(c *ResourceConfig) *string { return &c.MetricsPath }, true),
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

// Host is what host-derived defaults are computed from.
type Host struct {
	Cores            int   // usable CPUs
	MemoryTotalBytes int64 // effective memory: host or cgroup limit
}

// DefaultConfig returns the defaults for host, every value's source being
// SourceDefault or SourceHost.
func DefaultConfig(host Host) ResourceConfig {
	c := ResourceConfig{
		CPUThreshold:     90,
		MemoryThreshold:  85,
		TempThreshold:    80,
		DiskThreshold:    95,
		Cooldown:         30 * time.Second,
		CheckInterval:    5 * time.Second,
		TripAfter:        2,
		CPUTargetPercent: 70,
		SysfsRoot:        "/sys",
		ProcfsRoot:       "/proc",
		sources:          map[string]Source{},
	}
	for _, s := range specs {
		c.sources[s.Name] = SourceDefault
	}
	memMB := host.MemoryTotalBytes >> 20
	if memMB <= 0 {
		memMB = 1024 // unknown: assume a small board
	}
	c.MemorySoftLimitMB = max(memMB*3/4, 1)
	c.MemoryHardLimitMB = max(memMB*7/8, c.MemorySoftLimitMB)
	c.PagerMemoryLimitMB = float64(max(min(256, memMB/8), 16))
	c.MaxParallel = max(host.Cores, 1)
	for _, n := range []string{"MEMORY_SOFT_LIMIT_MB", "MEMORY_HARD_LIMIT_MB", "PAGER_MEMORY_LIMIT_MB", "MAX_PARALLEL"} {
		c.sources[n] = SourceHost
	}
	return c
}

// Layer is one source of raw values: variable name (without the prefix) to
// text, as read from the environment, a file or flags.
type Layer struct {
	Source Source
	// Origin names the layer in messages: "environment", a file path,
	// "flags".
	Origin string
	Values map[string]string
}

// apply parses the layer's values over c. Errors name the variable, the
// value, the origin and the accepted range.
func (c *ResourceConfig) apply(l Layer) []error {
	var errs []error
	names := make([]string, 0, len(l.Values))
	for n := range l.Values {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		raw := strings.TrimSpace(l.Values[n])
		s, ok := specByName(n)
		if !ok {
			continue // unknown names are reported as warnings by the loader
		}
		if err := s.set(c, raw); err != nil {
			errs = append(errs, &VarError{Name: s.Env(), Value: raw, Origin: l.Origin, Problem: err.Error(), Accepted: s.Range, Unit: s.Unit})
			continue
		}
		c.sources[n] = l.Source
	}
	return errs
}

// validate checks the relations between settings.
func (c *ResourceConfig) validate() []error {
	var errs []error
	if c.MemorySoftLimitMB > c.MemoryHardLimitMB {
		errs = append(errs, fmt.Errorf("factories: %sMEMORY_SOFT_LIMIT_MB = %d (%s) is above %sMEMORY_HARD_LIMIT_MB = %d (%s): the soft limit must be ≤ the hard limit",
			EnvPrefix, c.MemorySoftLimitMB, c.Source("MEMORY_SOFT_LIMIT_MB"), EnvPrefix, c.MemoryHardLimitMB, c.Source("MEMORY_HARD_LIMIT_MB")))
	}
	if c.ThermalWarningC > 0 && c.ThermalCriticalC > 0 && c.ThermalWarningC >= c.ThermalCriticalC {
		errs = append(errs, fmt.Errorf("factories: %sTHERMAL_WARNING_C = %g must be below %sTHERMAL_CRITICAL_C = %g",
			EnvPrefix, c.ThermalWarningC, EnvPrefix, c.ThermalCriticalC))
	}
	if c.PagerPageSizeMB > 0 && c.PagerPageSizeMB*4 > c.PagerMemoryLimitMB {
		errs = append(errs, fmt.Errorf("factories: %sPAGER_PAGE_SIZE_MB = %g is too large for %sPAGER_MEMORY_LIMIT_MB = %g: the budget must hold at least 4 pages",
			EnvPrefix, c.PagerPageSizeMB, EnvPrefix, c.PagerMemoryLimitMB))
	}
	return errs
}

// VarError is the error of one bad variable value.
type VarError struct {
	Name     string // full variable name
	Value    string
	Origin   string // "environment", a file path, "flags"
	Problem  string // "not a number", "out of range", …
	Accepted string // the accepted range
	Unit     string
}

// Error names the variable, the value, where it came from and what is accepted.
func (e *VarError) Error() string {
	unit := ""
	if e.Unit != "" && e.Unit != "path" {
		unit = " (" + e.Unit + ")"
	}
	return fmt.Sprintf("factories: %s = %q from %s: %s; accepted: %s%s", e.Name, e.Value, e.Origin, e.Problem, e.Accepted, unit)
}

// ErrInvalidConfig is matched by every error Load returns for bad values.
var ErrInvalidConfig = errors.New("invalid configuration")

// Is matches ErrInvalidConfig.
func (e *VarError) Is(target error) bool { return target == ErrInvalidConfig }

// WriteTo prints the effective configuration, one variable a line with its
// value and source.
func (c *ResourceConfig) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	tw := tabwriter.NewWriter(cw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tVALUE\tSOURCE")
	for _, s := range specs {
		v := s.get(c)
		if v == "" {
			v = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Env(), v, c.Source(s.Name))
	}
	err := tw.Flush()
	return cw.n, err
}

// Effective returns the configuration as variable → {value, source}, for
// JSON output (a /health/detailed page, --json).
func (c *ResourceConfig) Effective() map[string]EffectiveValue {
	out := make(map[string]EffectiveValue, len(specs))
	for _, s := range specs {
		out[s.Env()] = EffectiveValue{Value: s.get(c), Source: c.Source(s.Name)}
	}
	return out
}

// EffectiveValue is one setting of Effective.
type EffectiveValue struct {
	Value  string `json:"value"`
	Source Source `json:"source"`
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
