package main

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The typed settings of pi-agent's commands: flags, some of them backed by a
// CEMAF_SERVE_* variable. A flag only records its text while the command
// line is parsed; resolve then parses every value, the flag's or else the
// variable's, and reports every bad one at once (like factories.Load does for
// CEMAF_RESOURCE_*), each naming the flag or variable, the value, where it
// came from and the accepted range. NaN, infinities, negative and
// sub-nanosecond durations are refused.

// serveEnvPrefix is the prefix of the serve command's variables.
const serveEnvPrefix = "CEMAF_SERVE_"

// setting is one typed flag, optionally backed by an environment variable.
type setting struct {
	name     string // flag name, without dashes
	env      string // variable name, or ""
	def      string // the default as text ("" when derived)
	accepted string // the accepted values, for messages
	// parse checks raw and stores it; its error says what is wrong
	// ("not an integer", "out of range").
	parse func(raw string) error
	// show returns the effective value as text.
	show func() string

	raw    string // the flag's text, when given
	given  bool   // the flag was given
	origin string // "default", "env" or "flag" once resolved
}

// Set records the flag's text; resolve parses it.
func (s *setting) Set(v string) error {
	s.raw, s.given = v, true
	return nil
}

// String is the default, as the flag package prints it.
func (s *setting) String() string { return s.def }

// settings is the typed flags of one command.
type settings struct {
	fs   *flag.FlagSet
	list []*setting
}

func (ss *settings) add(s *setting, usage string) {
	if s.env != "" {
		usage += " (" + s.env + ")"
	}
	s.origin = "default"
	ss.list = append(ss.list, s)
	ss.fs.Var(s, s.name, usage)
}

// intVar registers an integer flag in [lo, hi]. usage names the unit in
// backquotes ("`n` runs at once").
func (ss *settings) intVar(p *int, name, env string, def, lo, hi int, usage string) {
	*p = def
	ss.add(&setting{name: name, env: env, def: strconv.Itoa(def), accepted: fmt.Sprintf("an integer in [%d, %d]", lo, hi),
		parse: func(raw string) error {
			v, err := strconv.ParseInt(raw, 10, 64)
			if err != nil {
				return errors.New("not an integer")
			}
			if v < int64(lo) || v > int64(hi) {
				return errors.New("out of range")
			}
			*p = int(v)
			return nil
		},
		show: func() string { return strconv.Itoa(*p) }}, usage)
}

// durationVar registers a duration flag in [lo, hi]; lo 0 allows 0.
func (ss *settings) durationVar(p *time.Duration, name, env string, def, lo, hi time.Duration, usage string) {
	*p = def
	ss.add(&setting{name: name, env: env, def: formatDuration(def),
		accepted: fmt.Sprintf("a duration in [%s, %s] (such as 30s, 2m, 1h30m, or seconds: 0.5)", formatDuration(lo), formatDuration(hi)),
		parse: func(raw string) error {
			d, err := parseDuration(raw)
			if err != nil {
				return err
			}
			if d < lo || d > hi {
				return errors.New("out of range")
			}
			*p = d
			return nil
		},
		show: func() string { return formatDuration(*p) }}, usage)
}

// stringVar registers a string flag checked by check (nil: any value).
func (ss *settings) stringVar(p *string, name, env, def, accepted string, check func(string) error, usage string) {
	*p = def
	ss.add(&setting{name: name, env: env, def: def, accepted: accepted,
		parse: func(raw string) error {
			if check != nil {
				if err := check(raw); err != nil {
					return err
				}
			}
			*p = raw
			return nil
		},
		show: func() string { return *p }}, usage)
}

// settingError is one bad value.
type settingError struct {
	Name     string // "--slots" or "CEMAF_SERVE_SLOTS"
	Value    string
	Origin   string // "the command line" or "environment"
	Problem  string
	Accepted string
}

func (e *settingError) Error() string {
	return fmt.Sprintf("%s = %q from %s: %s; accepted: %s", e.Name, e.Value, e.Origin, e.Problem, e.Accepted)
}

// invalidSettings is every bad value of a command line and environment,
// reported together.
type invalidSettings struct{ errs []error }

func (e *invalidSettings) Error() string {
	msgs := make([]string, len(e.errs))
	for i, err := range e.errs {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

func (e *invalidSettings) Unwrap() []error { return e.errs }

// fromFlags says whether a bad value came from the command line (a usage
// error) rather than from the environment or a file.
func (e *invalidSettings) fromFlags() bool {
	for _, err := range e.errs {
		var se *settingError
		if errors.As(err, &se) && se.Origin == "the command line" {
			return true
		}
	}
	return false
}

// resolve parses every setting: the flag's text when given, else the
// variable's, else the default stays. It returns warnings (unknown
// CEMAF_SERVE_* variables, when this command reads any) and the errors of
// every bad value.
func (ss *settings) resolve(env []string) (warnings []string, errs []error) {
	known := map[string]bool{}
	for _, s := range ss.list {
		if s.env != "" {
			known[s.env] = true
		}
		var raw, origin string
		switch {
		case s.given:
			raw, origin = s.raw, "the command line"
		case s.env != "":
			v, ok := lookupEnv(env, s.env)
			if !ok {
				continue
			}
			raw, origin = v, "environment"
		default:
			continue
		}
		name := "--" + s.name
		if !s.given {
			name = s.env
		}
		if err := s.parse(strings.TrimSpace(raw)); err != nil {
			errs = append(errs, &settingError{Name: name, Value: raw, Origin: origin, Problem: err.Error(), Accepted: s.accepted})
			continue
		}
		if s.given {
			s.origin = "flag"
		} else {
			s.origin = "env"
		}
	}
	if len(known) > 0 {
		for _, kv := range env {
			k, _, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(k, serveEnvPrefix) && !known[k] {
				names := slices.Sorted(maps.Keys(known))
				warnings = append(warnings, fmt.Sprintf("unknown variable %s (from environment); known: %s", k, strings.Join(names, ", ")))
			}
		}
	}
	return warnings, errs
}

// lookup returns the setting of a flag name.
func (ss *settings) lookup(name string) *setting {
	for _, s := range ss.list {
		if s.name == name {
			return s
		}
	}
	return nil
}

func lookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// parseDuration accepts a Go duration ("30s", "1h30m") or a number of
// seconds ("30", "0.5"). It refuses NaN, infinities, negative durations,
// durations too long for time.Duration, and non-zero durations below the
// nanosecond the clock counts in (1e-320 is not 0).
func parseDuration(raw string) (time.Duration, error) {
	if raw == "" {
		return 0, errors.New("empty")
	}
	if d, err := time.ParseDuration(raw); err == nil {
		switch {
		case d < 0:
			return 0, errors.New("negative")
		case d == 0 && strings.ContainsAny(raw, "123456789"):
			return 0, errors.New("below the nanosecond the clock counts in")
		}
		return d, nil
	}
	v, err := strconv.ParseFloat(raw, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return 0, errors.New("not a duration (such as 30s, 2m, 1h30m) or a number of seconds")
	case math.IsNaN(v):
		return 0, errors.New("not a number (NaN)")
	case math.IsInf(v, 0):
		return 0, errors.New("not a finite number")
	case v >= math.MaxInt64/float64(time.Second):
		return 0, errors.New("too long")
	case v < 0:
		return 0, errors.New("negative")
	}
	d := time.Duration(v * float64(time.Second))
	if d == 0 && (v != 0 || nonZeroMantissa(raw)) || errors.Is(err, strconv.ErrRange) {
		return 0, errors.New("below the nanosecond the clock counts in")
	}
	return d, nil
}

// formatDuration prints 24h rather than 24h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// nonZeroMantissa says whether the number raw has a non-zero digit before
// its exponent: 1e-400 parses as 0 but is not zero.
func nonZeroMantissa(raw string) bool {
	m := strings.ToLower(raw)
	if strings.HasPrefix(strings.TrimLeft(m, "+-"), "0x") {
		m, _, _ = strings.Cut(strings.TrimLeft(m, "+-")[2:], "p")
		return strings.ContainsAny(m, "123456789abcdef")
	}
	m, _, _ = strings.Cut(m, "e")
	return strings.ContainsAny(m, "123456789")
}
