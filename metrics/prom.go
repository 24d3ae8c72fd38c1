package metrics

import (
	"bufio"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Writing the Prometheus text exposition format, version 0.0.4.

// labels is a series' label pairs, name then value, in a fixed order.
type labels []string

// key identifies a series of a family by its label values (a family's
// label names are fixed). One label costs no allocation.
func (l labels) key() string {
	switch len(l) {
	case 0:
		return ""
	case 2:
		return l[1]
	}
	var b strings.Builder
	for i := 1; i < len(l); i += 2 {
		b.WriteString(l[i])
		b.WriteByte(0)
	}
	return b.String()
}

// family is one metric family: a name, its help and type, and its series.
type family struct {
	name, help, typ string
	// series by labels key; counters and gauges hold value, histograms h.
	series map[string]*series
}

type series struct {
	labels labels
	value  float64
	h      *histogram
}

func newFamily(name, help, typ string) *family {
	return &family{name: name, help: help, typ: typ, series: map[string]*series{}}
}

// get returns the series with labels l, creating it (with a histogram over
// bounds, for a histogram family).
func (f *family) get(bounds []float64, l ...string) *series {
	k := labels(l).key()
	s, ok := f.series[k]
	if !ok {
		s = &series{labels: slices.Clone(l)}
		if f.typ == "histogram" {
			s.h = &histogram{bounds: bounds, counts: make([]uint64, len(bounds))}
		}
		f.series[k] = s
	}
	return s
}

// histogram counts observations per bucket (not cumulated) and their sum.
type histogram struct {
	bounds []float64 // upper bounds, ascending; +Inf is implicit
	counts []uint64
	count  uint64
	sum    float64
}

func (h *histogram) observe(v float64) {
	h.count++
	h.sum += v
	if i, _ := slices.BinarySearch(h.bounds, v); i < len(h.bounds) {
		h.counts[i]++
	}
}

// write writes the family; series are sorted by their labels.
func (f *family) write(w *bufio.Writer) {
	if len(f.series) == 0 {
		return
	}
	w.WriteString("# HELP " + f.name + " " + escapeHelp(f.help) + "\n")
	w.WriteString("# TYPE " + f.name + " " + f.typ + "\n")
	keys := make([]string, 0, len(f.series))
	for k := range f.series {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s := f.series[k]
		if s.h == nil {
			writeSample(w, f.name, s.labels, "", "", s.value)
			continue
		}
		var cum uint64
		for i, b := range s.h.bounds {
			cum += s.h.counts[i]
			writeSample(w, f.name+"_bucket", s.labels, "le", formatFloat(b), float64(cum))
		}
		writeSample(w, f.name+"_bucket", s.labels, "le", "+Inf", float64(s.h.count))
		writeSample(w, f.name+"_sum", s.labels, "", "", s.h.sum)
		writeSample(w, f.name+"_count", s.labels, "", "", float64(s.h.count))
	}
}

func writeSample(w *bufio.Writer, name string, l labels, extraName, extraValue string, v float64) {
	w.WriteString(name)
	if len(l) > 0 || extraName != "" {
		w.WriteByte('{')
		for i := 0; i+1 < len(l); i += 2 {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(l[i] + `="` + escapeLabel(l[i+1]) + `"`)
		}
		if extraName != "" {
			if len(l) > 0 {
				w.WriteByte(',')
			}
			w.WriteString(extraName + `="` + extraValue + `"`)
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
