package throttle

import (
	"strconv"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/limit"
)

// PauseError is the error of Check while work is paused. It lists the
// signals on their Pause rung, and only those.
type PauseError struct {
	// Until is the earliest time every pause can end (the latest of the
	// signals' ends).
	Until time.Time
	// Signals are the paused signals, in ladder order.
	Signals []PausedSignal
}

// PausedSignal is one signal on its Pause rung.
type PausedSignal struct {
	Signal string     `json:"signal"`
	Kind   limit.Kind `json:"kind"`
	// Value is the latest value (Known false: the latest sample had none).
	Value float64 `json:"value"`
	Known bool    `json:"known"`
	Unit  string  `json:"unit,omitempty"`
	// Pause is the level that tripped; the pause ends once the signal is
	// below ResumeBelow, at or after Until.
	Pause       float64   `json:"pause"`
	ResumeBelow float64   `json:"resume_below"`
	Until       time.Time `json:"until"`
}

// limit.Error returns the paused signal as a *limit.Error.
func (p PausedSignal) LimitError() *limit.Error {
	e := &limit.Error{Kind: p.Kind, Subject: p.Signal, Current: p.Value, Limit: p.Pause, Unit: p.Unit}
	var d strings.Builder
	if !p.Known {
		d.WriteString("no reading now; ")
	}
	d.WriteString("until at least ")
	d.WriteString(p.Until.UTC().Format(time.RFC3339))
	d.WriteString(" and below ")
	d.WriteString(FormatValue(p.ResumeBelow, p.Unit))
	e.Detail = d.String()
	return e
}

// Error lists the paused signals: "throttle: paused: temperature
// (temperature_c) limit exceeded: 86 °C > 80 °C: paused until at least ...".
func (e *PauseError) Error() string {
	var b strings.Builder
	b.WriteString("throttle: paused: ")
	for i, s := range e.Signals {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s.LimitError().Error())
	}
	return b.String()
}

// Unwrap returns one *limit.Error per paused signal.
func (e *PauseError) Unwrap() []error {
	errs := make([]error, len(e.Signals))
	for i, s := range e.Signals {
		errs[i] = s.LimitError()
	}
	return errs
}

// Is reports whether target is ErrPaused or limit.ErrExceeded.
func (e *PauseError) Is(target error) bool { return target == ErrPaused || target == limit.ErrExceeded }

// FormatValue formats a signal's value with its unit, one decimal, as
// every message of the module shows levels: "86.0 °C", "72.5%", "3072.0 MB".
func FormatValue(v float64, unit string) string {
	s := strconv.FormatFloat(v, 'f', 1, 64)
	switch unit {
	case "":
		return s
	case "%":
		return s + "%"
	}
	return s + " " + unit
}
