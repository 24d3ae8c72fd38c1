package llm

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// The device modes whose names Options.Profiles accepts (those of package
// adaptive).
var modes = [...]string{"normal", "low_memory", "high_temp", "low_disk"}

// defaultMode is the mode of a call when Options.Mode is nil or says "".
const defaultMode = "normal"

// Profile is what calls use in a device mode: which model, how long an
// answer, how many at once. In Options.Profiles, zero fields take the value
// of Options.Profile.
type Profile struct {
	// Model is the model name sent to the server. Required in
	// Options.Profile.
	Model string
	// MaxTokens caps each answer's tokens (max_tokens); 0 leaves it to
	// the server.
	MaxTokens int
	// Temperature is the sampling temperature in [0, 2]; nil leaves it to
	// the server.
	Temperature *float64
	// MaxConcurrent is how many calls to Model may be under way at once
	// while this profile is in force; further calls wait by priority.
	// Default 1. Two profiles with the same model share its slots, each
	// admitting calls up to its own limit.
	MaxConcurrent int
}

// merge returns p with its zero fields taken from base.
func (p Profile) merge(base Profile) Profile {
	if p.Model == "" {
		p.Model = base.Model
	}
	if p.MaxTokens == 0 {
		p.MaxTokens = base.MaxTokens
	}
	if p.Temperature == nil {
		p.Temperature = base.Temperature
	}
	if p.MaxConcurrent == 0 {
		p.MaxConcurrent = base.MaxConcurrent
	}
	return p
}

func (p Profile) validate(field string) error {
	switch {
	case strings.TrimSpace(p.Model) == "":
		return fmt.Errorf("llm: %s.Model is empty: a model name is required", field)
	case p.MaxTokens < 0:
		return fmt.Errorf("llm: %s.MaxTokens = %d: must be ≥ 0", field, p.MaxTokens)
	case p.MaxConcurrent < 0:
		return fmt.Errorf("llm: %s.MaxConcurrent = %d: must be ≥ 0 (0 for 1)", field, p.MaxConcurrent)
	}
	if p.Temperature != nil {
		if err := checkTemperature(field+".Temperature", *p.Temperature); err != nil {
			return err
		}
	}
	return nil
}

func checkTemperature(field string, t float64) error {
	if math.IsNaN(t) || t < 0 || t > 2 {
		return fmt.Errorf("llm: %s = %v: must be in [0, 2]", field, t)
	}
	return nil
}

// resolveProfiles validates the profiles of opts and returns the base
// profile and that of every known mode, defaults applied.
func resolveProfiles(base Profile, per map[string]Profile) (Profile, map[string]Profile, error) {
	if base.MaxConcurrent == 0 {
		base.MaxConcurrent = 1
	}
	if err := base.validate("Options.Profile"); err != nil {
		return Profile{}, nil, err
	}
	out := make(map[string]Profile, len(modes))
	for _, m := range modes {
		out[m] = base
	}
	for m, p := range per {
		if !slices.Contains(modes[:], m) {
			return Profile{}, nil, fmt.Errorf("llm: Options.Profiles[%q]: unknown mode; known modes are %s", m, strings.Join(modes[:], ", "))
		}
		p = p.merge(base)
		if err := p.validate(fmt.Sprintf("Options.Profiles[%q]", m)); err != nil {
			return Profile{}, nil, err
		}
		out[m] = p
	}
	return base, out, nil
}
