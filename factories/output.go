package factories

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/cemaf-go/cemaf/throttle"
)

// LadderRow is one signal's ladder as the configuration sets it, with the
// variables and sources of its levels: what `pi-agent config` prints.
type LadderRow struct {
	throttle.Ladder
	Unit        string `json:"unit,omitempty"`
	AdaptVar    string `json:"adapt_var"`
	PauseVar    string `json:"pause_var"`
	AdaptSource Source `json:"adapt_source"`
	PauseSource Source `json:"pause_source"`
	// AdaptFrom and PauseFrom detail a derived level ("hot trip point of
	// CPU-therm (98.5 °C) − 5").
	AdaptFrom string `json:"adapt_from,omitempty"`
	PauseFrom string `json:"pause_from,omitempty"`
}

// LadderRows describes every ladder of the configuration.
func (c *ResourceConfig) LadderRows() []LadderRow {
	bySignal := map[string]throttle.Ladder{}
	for _, l := range c.Ladders() {
		bySignal[l.Signal] = l
	}
	rows := make([]LadderRow, 0, len(ladderVars))
	for _, lv := range ladderVars {
		rows = append(rows, LadderRow{Ladder: bySignal[lv.signal], Unit: lv.unit,
			AdaptVar: EnvPrefix + lv.adapt, PauseVar: EnvPrefix + lv.pause,
			AdaptSource: c.Source(lv.adapt), PauseSource: c.Source(lv.pause),
			AdaptFrom: c.Note(lv.adapt), PauseFrom: c.Note(lv.pause)})
	}
	return rows
}

// WriteTo prints the ladders, every rung with its source, then every
// variable with its value and source.
func (c *ResourceConfig) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	tw := tabwriter.NewWriter(cw, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LADDER\tADAPT AT\tFROM\tPAUSE ABOVE\tFROM\tHYSTERESIS\tTRIP AFTER\tCOOLDOWN\tHOLD")
	for _, r := range c.LadderRows() {
		level := func(v float64, src Source, from string) (string, string) {
			if v == 0 {
				return "never", src.String()
			}
			s := src.String()
			if from != "" {
				s += ": " + from
			}
			return strconv.FormatFloat(v, 'f', -1, 64) + " " + r.Unit, s
		}
		a, af := level(r.Adapt, r.AdaptSource, r.AdaptFrom)
		p, pf := level(r.Pause, r.PauseSource, r.PauseFrom)
		hyst := "5 %"
		if r.Hysteresis > 0 {
			hyst = strconv.FormatFloat(r.Hysteresis, 'f', -1, 64) + " " + r.Unit
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%v\t%v\n", r.Signal, a, af, p, pf, hyst, r.TripAfter, r.Cooldown, r.Hold)
	}
	fmt.Fprintln(tw)
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
		out[s.Env()] = EffectiveValue{Value: s.get(c), Source: c.Source(s.Name), From: c.Note(s.Name)}
	}
	return out
}

// EffectiveValue is one setting of Effective.
type EffectiveValue struct {
	Value  string `json:"value"`
	Source Source `json:"source"`
	// From details a derived value (ResourceConfig.Note).
	From string `json:"from,omitempty"`
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
