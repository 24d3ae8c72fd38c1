package factories

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/internal/boundedread"
	"github.com/cemaf-go/cemaf/internal/hostlimits"
	"github.com/cemaf-go/cemaf/thermal"
	"github.com/cemaf-go/cemaf/throttle"
)

// LoadOptions says where Load reads settings from. The zero value reads the
// process environment only and detects the host.
type LoadOptions struct {
	// Environ is the environment as KEY=VALUE strings; nil means
	// os.Environ(). Only CEMAF_RESOURCE_* variables are read.
	Environ []string
	// File, if set, is a config file of KEY=VALUE lines (the format of a
	// systemd EnvironmentFile: '#' comments, optional "export ", optional
	// quotes). Keys are the variable names, with or without the
	// CEMAF_RESOURCE_ prefix.
	File string
	// Flags are explicit settings, such as command-line flags the user
	// set: variable name (with or without the prefix) to value.
	Flags map[string]string
	// Host, if set, replaces detecting the host's CPUs and memory.
	Host *Host
}

// Load builds a ResourceConfig from the defaults and the layers in opts,
// with the precedence flag > file > environment > host-derived default. It
// returns warnings (unknown CEMAF_RESOURCE_* variables, with the nearest
// known name) and an error joining every bad value (errors.Join): each
// names the variable, the value, where it came from and the accepted range,
// and matches ErrInvalidConfig.
func Load(opts LoadOptions) (ResourceConfig, []string, error) {
	var errs []error
	var warnings []string
	env := opts.Environ
	if env == nil {
		env = os.Environ()
	}
	layers := []Layer{envLayer(env, &warnings)}
	if opts.File != "" {
		fl, err := fileLayer(opts.File, &warnings)
		if err != nil {
			errs = append(errs, err)
		} else {
			layers = append(layers, fl)
		}
	}
	if len(opts.Flags) > 0 {
		layers = append(layers, flagLayer(opts.Flags, &warnings))
	}

	// The roots may themselves be configured: resolve them before looking
	// at the host.
	host := opts.Host
	if host == nil {
		probe := DefaultConfig(Host{Cores: 1, MemoryTotalBytes: 1 << 30})
		for _, l := range layers {
			probe.apply(l)
		}
		h, err := DetectHost(probe.ProcfsRoot, probe.SysfsRoot, probe.CgroupRoot)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("could not read the host's memory (%v); memory defaults assume 1024 MB", err))
		}
		host = &h
	}
	c := DefaultConfig(*host)
	for _, l := range layers {
		errs = append(errs, c.apply(l)...)
	}
	if len(errs) == 0 {
		c.deriveTemperature()
		c.fitAdaptLevels()
	}
	errs = append(errs, c.validate()...)
	if len(errs) > 0 {
		return c, warnings, errors.Join(errs...)
	}
	return c, warnings, nil
}

// FromEnv builds a ResourceConfig from the CEMAF_RESOURCE_* environment
// variables and host-derived defaults. Warnings about unknown variables go to
// the default slog logger.
func FromEnv() (ResourceConfig, error) {
	c, warnings, err := Load(LoadOptions{})
	for _, w := range warnings {
		slog.Default().Warn("factories: " + w)
	}
	return c, err
}

// DetectHost reads the usable CPUs (runtime.GOMAXPROCS, which honours the
// cgroup CPU quota), the open-files limit and the effective memory (the
// smaller of the host's MemTotal and the cgroup limit) under the given roots.
func DetectHost(procfsRoot, sysfsRoot, cgroupRoot string) (Host, error) {
	h := Host{Cores: runtime.GOMAXPROCS(0), NoFileSoft: hostlimits.NoFileSoft()}
	s, err := throttle.NewSampler(throttle.SamplerOptions{ProcRoot: procfsRoot, SysRoot: sysfsRoot, CgroupRoot: cgroupRoot, MinCPUWindow: time.Millisecond})
	if err != nil {
		return h, err
	}
	smp, err := s.Sample(time.Now())
	if err != nil {
		return h, err
	}
	if smp.MemoryTotalBytes <= 0 {
		return h, fmt.Errorf("no memory total under %s", procfsRoot)
	}
	h.MemoryTotalBytes = smp.MemoryTotalBytes
	return h, nil
}

func envLayer(environ []string, warnings *[]string) Layer {
	l := Layer{Source: SourceEnv, Origin: "environment", Values: map[string]string{}}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		name := strings.TrimPrefix(k, EnvPrefix)
		if _, known := specByName(name); !known {
			*warnings = append(*warnings, unknownVar(k, "environment"))
			continue
		}
		l.Values[name] = v
	}
	return l
}

func flagLayer(flags map[string]string, warnings *[]string) Layer {
	l := Layer{Source: SourceFlag, Origin: "flags", Values: map[string]string{}}
	for k, v := range flags {
		name := strings.TrimPrefix(strings.ToUpper(k), EnvPrefix)
		if _, known := specByName(name); !known {
			*warnings = append(*warnings, unknownVar(k, "flags"))
			continue
		}
		l.Values[name] = v
	}
	return l
}

// maxConfigFileBytes bounds a config file: a few hundred lines.
const maxConfigFileBytes = 1 << 20

func fileLayer(path string, warnings *[]string) (Layer, error) {
	l := Layer{Source: SourceFile, Origin: path, Values: map[string]string{}}
	b, err := boundedread.ReadFile(path, maxConfigFileBytes)
	if err != nil {
		return l, fmt.Errorf("factories: config file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	var errs []error
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			errs = append(errs, fmt.Errorf("factories: %s:%d: %q is not KEY=VALUE", path, n, line))
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		name := strings.TrimPrefix(k, EnvPrefix)
		if _, known := specByName(name); !known {
			*warnings = append(*warnings, unknownVar(k, fmt.Sprintf("%s:%d", path, n)))
			continue
		}
		l.Values[name] = v
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("factories: config file %s: %w", path, err))
	}
	return l, errors.Join(errs...)
}

// unknownVar words the warning for an unknown variable, suggesting the
// nearest known name.
func unknownVar(name, origin string) string {
	suffix := strings.TrimPrefix(strings.ToUpper(name), EnvPrefix)
	best, bestD := "", 1<<30
	for _, s := range specs {
		if d := editDistance(suffix, s.Name); d < bestD {
			best, bestD = s.Name, d
		}
	}
	msg := fmt.Sprintf("unknown variable %s (from %s)", name, origin)
	if bestD <= max(3, len(suffix)/2) {
		msg += "; did you mean " + EnvPrefix + best + "?"
	}
	return msg
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// KnownNames returns the full names of every variable, sorted.
func KnownNames() []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Env()
	}
	slices.Sort(out)
	return out
}

// deriveTemperature takes the temperature levels the configuration leaves
// open (0, or the fixed default) from the board's trip points, through the
// thermal package, and records where they came from.
func (c *ResourceConfig) deriveTemperature() {
	userAdapt := c.Source("TEMP_ADAPT_C") > SourceBoard && c.TempAdaptC > 0
	userPause := c.Source("TEMP_THRESHOLD") > SourceBoard && c.TempThreshold > 0
	o := thermal.Options{SysfsRoot: c.SysfsRoot, SensorPath: c.ThermalSensorPath}
	if userAdapt {
		o.AdaptC = c.TempAdaptC
	}
	if userPause {
		o.PauseC = c.TempThreshold
	}
	m, err := thermal.New(o)
	if err != nil {
		// No sensors (or a bad sensor path, reported when the guard is
		// built): keep the defaults for an adapt or pause level left at 0.
		if c.TempAdaptC == 0 {
			c.TempAdaptC = thermal.DefaultAdaptC
		}
		if c.TempThreshold == 0 {
			c.TempThreshold = thermal.DefaultPauseC
		}
		return
	}
	l := m.Levels()
	set := func(name string, dst *float64, v float64, from string) {
		*dst = v
		if from == "default" {
			c.sources[name] = SourceDefault
			return
		}
		c.sources[name] = SourceBoard
		c.setNote(name, from)
	}
	if !userAdapt {
		set("TEMP_ADAPT_C", &c.TempAdaptC, l.AdaptC, l.AdaptFrom)
	}
	if !userPause {
		set("TEMP_THRESHOLD", &c.TempThreshold, l.PauseC, l.PauseFrom)
	}
}
