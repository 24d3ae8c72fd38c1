package executor

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A run's inputs (RunOptions.Inputs) are recorded when it starts and
// checked when it resumes: see RunOptions.Inputs.

// ErrInputsChanged is matched by the *InputsChangedError of a resume whose
// inputs differ from those the run recorded when it started.
var ErrInputsChanged = errors.New("inputs changed since the run started")

// MaxInputBytes bounds the length of one input value (RunOptions.Inputs).
// Inputs are meant to be short: a question, a knob's value, a content hash.
// Pass a fingerprint of anything larger (a corpus: the SHA-256 of its
// content).
const MaxInputBytes = 64 << 10

// InputChange is one difference between the inputs a run recorded and those
// a resume gave.
type InputChange struct {
	Name string `json:"name"`
	// Recorded is the value the run recorded ("" when Added).
	Recorded string `json:"recorded,omitempty"`
	// Given is the value the resume gave ("" when Removed).
	Given string `json:"given,omitempty"`
	// Added: the resume gave an input the run did not record.
	Added bool `json:"added,omitempty"`
	// Removed: the run recorded an input the resume did not give.
	Removed bool `json:"removed,omitempty"`
}

// String describes the change, long values shortened (see InputsChangedError).
func (c InputChange) String() string {
	switch {
	case c.Added:
		return c.Name + " added (" + shortValue(c.Given) + ")"
	case c.Removed:
		return c.Name + " not given (was " + shortValue(c.Recorded) + ")"
	}
	return c.Name + " " + shortValue(c.Recorded) + " -> " + shortValue(c.Given)
}

// InputsChangedError is the error of a resume whose inputs differ from those
// recorded when the run started. It matches ErrInputsChanged. Changed is
// sorted by name.
type InputsChangedError struct {
	RunID   string
	Changed []InputChange
}

// Error names every changed input with its recorded and given values;
// values longer than 48 bytes are shown by their first 32 bytes and their
// length.
func (e *InputsChangedError) Error() string {
	given := false
	for _, c := range e.Changed {
		given = given || !c.Removed
	}
	hint := ""
	if !given {
		hint = " (the resume gave none of them)"
	}
	return fmt.Sprintf("executor: cannot resume run %q: %v: %s%s; resume with the recorded inputs, or start a new run",
		e.RunID, ErrInputsChanged, e.changes(), hint)
}

// changes lists the changes, separated by "; ".
func (e *InputsChangedError) changes() string {
	parts := make([]string, len(e.Changed))
	for i, c := range e.Changed {
		parts[i] = c.String()
	}
	return strings.Join(parts, "; ")
}

// Is matches ErrInputsChanged.
func (e *InputsChangedError) Is(target error) bool { return target == ErrInputsChanged }

// shortValue quotes v, shortened to its first 32 bytes (on a character
// boundary) and its length when it is longer than 48 bytes.
func shortValue(v string) string {
	const limit, head = 48, 32
	if len(v) <= limit {
		return strconv.Quote(v)
	}
	cut := head
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return strconv.Quote(v[:cut]) + "… (" + strconv.Itoa(len(v)) + " bytes)"
}

// diffInputs lists the differences between recorded and given, by name.
func diffInputs(recorded, given map[string]string) []InputChange {
	var out []InputChange
	for _, name := range slices.Sorted(maps.Keys(recorded)) {
		g, ok := given[name]
		switch {
		case !ok:
			out = append(out, InputChange{Name: name, Recorded: recorded[name], Removed: true})
		case g != recorded[name]:
			out = append(out, InputChange{Name: name, Recorded: recorded[name], Given: g})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(given)) {
		if _, ok := recorded[name]; !ok {
			out = append(out, InputChange{Name: name, Given: given[name], Added: true})
		}
	}
	slices.SortStableFunc(out, func(a, b InputChange) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// validateInputs checks RunOptions.Inputs: names non-empty, values at most
// MaxInputBytes.
func validateInputs(in map[string]string) error {
	if len(in) == 0 {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(in)) {
		switch v := in[name]; {
		case name == "":
			return errors.New("executor: RunOptions.Inputs: an input has an empty name")
		case len(v) > MaxInputBytes:
			return fmt.Errorf("executor: RunOptions.Inputs[%q]: %d bytes: must be ≤ %d; pass a fingerprint of large inputs (the SHA-256 of their content)", name, len(v), MaxInputBytes)
		}
	}
	return nil
}

// inputsRecord is what the store keeps of a run's inputs, apart from its
// info record (which every commit rewrites).
type inputsRecord struct {
	Inputs map[string]string `json:"inputs,omitempty"`
	// Accepted lists the changes resumes with IgnoreInputs accepted,
	// oldest first.
	Accepted []InputChange `json:"accepted,omitempty"`
}
