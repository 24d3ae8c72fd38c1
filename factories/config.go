package factories

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/internal/hostlimits"
	"github.com/cemaf-go/cemaf/thermal"
	"github.com/cemaf-go/cemaf/throttle"
)

// EnvPrefix is the prefix of every environment variable the module reads.
const EnvPrefix = "CEMAF_RESOURCE_"

// Source says where the value of a setting came from. Higher sources win:
// a flag over a config file, a file over the environment, the environment
// over a derived or fixed default.
type Source int

// The sources, from weakest to strongest.
const (
	SourceDefault Source = iota // a fixed default
	SourceHost                  // derived from this host (CPUs, memory, open-files limit)
	SourceBoard                 // derived from the board's thermal trip points
	SourceEnv                   // CEMAF_RESOURCE_* environment variable
	SourceFile                  // the config file
	SourceFlag                  // an explicit setting (command-line flag)
)

var sourceNames = [...]string{"default", "host", "board", "env", "file", "flag"}

// String returns "default", "host", "board", "env", "file" or "flag".
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
//
// The ladder of each signal (see throttle.Ladder) comes from here and from
// nowhere else: an adapt level, where the adaptive executor slows, narrows
// or pages, and a pause level (the *_THRESHOLD variables), where work
// pauses. Ladders returns them.
type ResourceConfig struct {
	// Temperature ladder, °C. Derived from the board's trip points when
	// the board has them (Source reports SourceBoard, TempLevelsFrom says
	// which trip point).
	TempAdaptC      float64 `json:"temp_adapt_c"`
	TempThreshold   float64 `json:"temp_threshold"`
	TempHysteresisC float64 `json:"temp_hysteresis_c"`
	// Memory in use, % of the effective memory (host or cgroup limit).
	MemoryAdapt     float64 `json:"memory_adapt"`
	MemoryThreshold float64 `json:"memory_threshold"`
	// Swap in use, %.
	SwapAdapt     float64 `json:"swap_adapt"`
	SwapThreshold float64 `json:"swap_threshold"`
	// Usage of the file systems holding the storage directories, %.
	DiskAdapt     float64 `json:"disk_adapt"`
	DiskThreshold float64 `json:"disk_threshold"`
	// CPU contention: CPU used by processes other than this one and its
	// helpers, % of all CPUs.
	CPUAdapt     float64 `json:"cpu_adapt"`
	CPUThreshold float64 `json:"cpu_threshold"`
	CPUTripAfter int     `json:"cpu_trip_after"`
	// This process's anonymous memory, MB: reclaim (page out) above the
	// soft limit, pause above the hard limit.
	MemorySoftLimitMB int64 `json:"memory_soft_limit_mb"`
	MemoryHardLimitMB int64 `json:"memory_hard_limit_mb"`
	// Timing of every ladder.
	Cooldown      time.Duration `json:"cooldown_ns"`
	Hold          time.Duration `json:"hold_ns"`
	CheckInterval time.Duration `json:"check_interval_ns"`
	TripAfter     int           `json:"trip_after"` // consecutive samples

	// CPUHelpers names the processes doing the agent's work elsewhere (a
	// local LLM server), in throttle.ParseHelpers syntax.
	CPUHelpers string `json:"cpu_helpers"`
	// CPUTargetPercent is the share of the board's CPUs the agent's paced
	// calls (with their helpers) may use on average.
	CPUTargetPercent float64 `json:"cpu_target_percent"`

	// Concurrency classes of the executor: CPU-bound and I/O-bound nodes.
	CPUParallel int `json:"cpu_parallel"`
	IOParallel  int `json:"io_parallel"`

	// Context pager.
	PagerMemoryLimitMB float64 `json:"pager_memory_limit_mb"`
	PagerPageSizeMB    float64 `json:"pager_page_size_mb"`
	PagerStoragePath   string  `json:"pager_storage_path"`

	// Disk I/O limiter.
	DiskMaxWriteMBps float64 `json:"disk_max_write_mbps"`
	DiskMaxReadMBps  float64 `json:"disk_max_read_mbps"`

	// ThermalSensorPath, if set, is the one temperature sensor to use.
	ThermalSensorPath string `json:"thermal_sensor_path"`

	// Where the host's file systems are (containers mount them elsewhere).
	SysfsRoot  string `json:"sysfs_root"`
	ProcfsRoot string `json:"procfs_root"`
	CgroupRoot string `json:"cgroup_root"`

	// MetricsPath, if set, receives the resource history as JSON Lines.
	MetricsPath string `json:"metrics_path"`

	sources map[string]Source
	notes   map[string]string // how derived values were derived
}

// Note says how the value of a derived variable was derived ("hot trip
// point of CPU-therm (98.5 °C) − 5", "lowered below TEMP_THRESHOLD"), or ""
// for a value given or fixed.
func (c *ResourceConfig) Note(name string) string {
	return c.notes[strings.TrimPrefix(name, EnvPrefix)]
}

func (c *ResourceConfig) setNote(name, note string) {
	if c.notes == nil {
		c.notes = map[string]string{}
	}
	c.notes[name] = note
}

// ladderVars names the adapt and pause variables of each ladder.
var ladderVars = []struct{ signal, adapt, pause, unit string }{
	{throttle.SignalTemperatureC, "TEMP_ADAPT_C", "TEMP_THRESHOLD", "°C"},
	{throttle.SignalMemoryPercent, "MEMORY_ADAPT", "MEMORY_THRESHOLD", "%"},
	{throttle.SignalProcessMemoryMB, "MEMORY_SOFT_LIMIT_MB", "MEMORY_HARD_LIMIT_MB", "MB"},
	{throttle.SignalSwapPercent, "SWAP_ADAPT", "SWAP_THRESHOLD", "%"},
	{throttle.SignalDiskPercent, "DISK_ADAPT", "DISK_THRESHOLD", "%"},
	{throttle.SignalCPUOthersPercent, "CPU_ADAPT", "CPU_THRESHOLD", "%"},
}

// fitAdaptLevels lowers an adapt level that was not given (a default, or
// derived) and is not below the pause level the user gave, so that setting
// only MEMORY_THRESHOLD=70 works: memory then adapts at 65. Levels both
// given in the wrong order are left for validate to report.
func (c *ResourceConfig) fitAdaptLevels() {
	for _, lv := range ladderVars {
		if lv.signal == throttle.SignalProcessMemoryMB {
			continue
		}
		a, _ := c.float(lv.adapt)
		p, _ := c.float(lv.pause)
		if *p <= 0 || *a < *p || c.Source(lv.adapt) >= SourceEnv {
			continue
		}
		step := 5.0
		if lv.unit == "°C" {
			step = 10
		}
		*a = max(*p-step, *p/2)
		c.setNote(lv.adapt, "lowered below "+EnvPrefix+lv.pause)
	}
}

// float returns the field of a float variable.
func (c *ResourceConfig) float(name string) (*float64, bool) {
	switch name {
	case "TEMP_ADAPT_C":
		return &c.TempAdaptC, true
	case "TEMP_THRESHOLD":
		return &c.TempThreshold, true
	case "MEMORY_ADAPT":
		return &c.MemoryAdapt, true
	case "MEMORY_THRESHOLD":
		return &c.MemoryThreshold, true
	case "SWAP_ADAPT":
		return &c.SwapAdapt, true
	case "SWAP_THRESHOLD":
		return &c.SwapThreshold, true
	case "DISK_ADAPT":
		return &c.DiskAdapt, true
	case "DISK_THRESHOLD":
		return &c.DiskThreshold, true
	case "CPU_ADAPT":
		return &c.CPUAdapt, true
	case "CPU_THRESHOLD":
		return &c.CPUThreshold, true
	}
	return new(float64), false
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

// Host is what host-derived defaults are computed from.
type Host struct {
	Cores            int    // usable CPUs
	MemoryTotalBytes int64  // effective memory: host or cgroup limit
	NoFileSoft       uint64 // RLIMIT_NOFILE soft limit; 0: unknown
}

// DefaultConfig returns the defaults for host, every value's source being
// SourceDefault or SourceHost. The temperature levels are the generic ones
// (70/80 °C); Load derives them from the board when it has trip points.
func DefaultConfig(host Host) ResourceConfig {
	c := ResourceConfig{
		CheckInterval:    5 * time.Second,
		Cooldown:         throttle.DefaultCooldown,
		Hold:             throttle.DefaultHold,
		TripAfter:        1,
		CPUTripAfter:     3,
		TempHysteresisC:  thermal.DefaultHysteresisC,
		CPUTargetPercent: 90,
		SysfsRoot:        "/sys",
		ProcfsRoot:       "/proc",
		sources:          map[string]Source{},
	}
	for _, l := range throttle.DefaultLadders() {
		switch l.Signal {
		case throttle.SignalTemperatureC:
			c.TempAdaptC, c.TempThreshold = l.Adapt, l.Pause
		case throttle.SignalMemoryPercent:
			c.MemoryAdapt, c.MemoryThreshold = l.Adapt, l.Pause
		case throttle.SignalSwapPercent:
			c.SwapAdapt, c.SwapThreshold = l.Adapt, l.Pause
		case throttle.SignalDiskPercent:
			c.DiskAdapt, c.DiskThreshold = l.Adapt, l.Pause
		case throttle.SignalCPUOthersPercent:
			c.CPUAdapt, c.CPUThreshold = l.Adapt, l.Pause
		}
	}
	for _, s := range specs {
		c.sources[s.Name] = SourceDefault
	}
	memMB := host.MemoryTotalBytes >> 20
	if memMB <= 0 {
		memMB = 1024 // unknown: assume a small board
	}
	c.MemorySoftLimitMB = max(memMB*3/4, 1)
	c.MemoryHardLimitMB = max(memMB*7/8, c.MemorySoftLimitMB+1)
	c.PagerMemoryLimitMB = float64(max(min(256, memMB/8), 16))
	hl := hostlimits.Derive(host.Cores, host.NoFileSoft)
	c.CPUParallel, c.IOParallel = hl.CPU, hl.IO
	for _, n := range []string{"MEMORY_SOFT_LIMIT_MB", "MEMORY_HARD_LIMIT_MB", "PAGER_MEMORY_LIMIT_MB", "CPU_PARALLEL", "IO_PARALLEL"} {
		c.sources[n] = SourceHost
	}
	return c
}

// Helpers returns CPUHelpers parsed. Load has validated it.
func (c *ResourceConfig) Helpers() throttle.Helpers {
	h, _ := throttle.ParseHelpers(c.CPUHelpers)
	return h
}

// Ladders returns the ladder of every signal: the one place they are built.
func (c *ResourceConfig) Ladders() []throttle.Ladder {
	ladder := func(signal string, adapt, pause float64) throttle.Ladder {
		return throttle.Ladder{Signal: signal, Adapt: adapt, Pause: pause, TripAfter: c.TripAfter, Cooldown: c.Cooldown, Hold: c.Hold}
	}
	temp := ladder(throttle.SignalTemperatureC, c.TempAdaptC, c.TempThreshold)
	temp.Hysteresis = c.TempHysteresisC
	disk := ladder(throttle.SignalDiskPercent, c.DiskAdapt, c.DiskThreshold)
	disk.Hysteresis = 2
	cpu := ladder(throttle.SignalCPUOthersPercent, c.CPUAdapt, c.CPUThreshold)
	cpu.Hysteresis, cpu.TripAfter = 10, c.CPUTripAfter
	return []throttle.Ladder{
		temp,
		ladder(throttle.SignalMemoryPercent, c.MemoryAdapt, c.MemoryThreshold),
		ladder(throttle.SignalProcessMemoryMB, float64(c.MemorySoftLimitMB), float64(c.MemoryHardLimitMB)),
		ladder(throttle.SignalSwapPercent, c.SwapAdapt, c.SwapThreshold),
		disk,
		cpu,
	}
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

// validate checks the relations between settings, naming the variables.
func (c *ResourceConfig) validate() []error {
	var errs []error
	order := func(lo, hi string, a, b float64, rel string) {
		if a > 0 && b > 0 && !(a < b || rel == "≤" && a == b) {
			errs = append(errs, fmt.Errorf("factories: %s%s = %g (%s) must be %s %s%s = %g (%s)",
				EnvPrefix, lo, a, c.Source(lo), rel, EnvPrefix, hi, b, c.Source(hi)))
		}
	}
	for _, lv := range ladderVars {
		if lv.signal == throttle.SignalProcessMemoryMB {
			order(lv.adapt, lv.pause, float64(c.MemorySoftLimitMB), float64(c.MemoryHardLimitMB), "<")
			continue
		}
		a, _ := c.float(lv.adapt)
		p, _ := c.float(lv.pause)
		order(lv.adapt, lv.pause, *a, *p, "<")
	}
	if c.PagerPageSizeMB > 0 && c.PagerPageSizeMB*4 > c.PagerMemoryLimitMB {
		errs = append(errs, fmt.Errorf("factories: %sPAGER_PAGE_SIZE_MB = %g is too large for %sPAGER_MEMORY_LIMIT_MB = %g: the budget must hold at least 4 pages",
			EnvPrefix, c.PagerPageSizeMB, EnvPrefix, c.PagerMemoryLimitMB))
	}
	if len(errs) == 0 {
		if _, err := throttle.NewBreaker(throttle.BreakerOptions{Ladders: c.Ladders()}); err != nil {
			errs = append(errs, fmt.Errorf("factories: the ladders of this configuration are not valid: %w", err))
		}
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
