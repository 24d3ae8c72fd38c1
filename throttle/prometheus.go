package throttle

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Handler returns an http.Handler serving the latest sample in the
// Prometheus text exposition format (version 0.0.4). Metric names start with
// "cemaf_". It reads the Snapshot only; it never samples.
func (m *Monitor) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = m.WritePrometheus(w)
	})
}

// WritePrometheus writes the latest sample and the monitor's counters in
// the Prometheus text exposition format, for callers that assemble one
// /metrics page from several sources. Absent signals are left out.
func (m *Monitor) WritePrometheus(w io.Writer) error {
	pw := promWriter{w: bufio.NewWriter(w)}
	pw.metric("cemaf_samples_total", "counter", "Samples published by the monitor.")
	pw.value(nil, float64(m.stats.samples.Load()))
	pw.metric("cemaf_sample_failures_total", "counter", "Samples that could not be taken.")
	pw.value(nil, float64(m.stats.failures.Load()))
	if m.metricsPath != "" {
		pw.metric("cemaf_metrics_export_failures_total", "counter", "Failed JSON Lines exports.")
		pw.value(nil, float64(m.exp.errors.Load()))
	}

	snap := m.Snapshot()
	s := snap.Sample
	if s == nil {
		return pw.flush()
	}
	gauge := func(name, help string, v float64) {
		pw.metric(name, "gauge", help)
		pw.value(nil, v)
	}
	gauge("cemaf_sample_age_seconds", "Age of the latest sample.", snap.Age.Seconds())
	gauge("cemaf_sample_partial_errors", "Partial read failures in the latest sample.", float64(len(s.Errors)))
	gauge("cemaf_cpu_percent", "Busy share of all online CPUs, percent.", s.CPUPercent)
	gauge("cemaf_process_cpu_percent", "This process's share of all online CPUs, percent.", s.ProcessCPUPercent)
	gauge("cemaf_helpers_cpu_percent", "Share of all online CPUs used by this process's helpers and children, percent.", s.HelpersCPUPercent)
	gauge("cemaf_cpu_others_percent", "CPU contention: share of all online CPUs used by other processes, percent.", s.OthersCPUPercent)
	gauge("cemaf_memory_used_percent", "Memory in use relative to the effective limit, percent.", s.MemoryUsedPercent)
	gauge("cemaf_memory_available_bytes", "Memory available under the effective limit.", float64(s.MemoryAvailableBytes))
	gauge("cemaf_memory_total_bytes", "Effective memory: the smaller of host memory and the cgroup limit.", float64(s.MemoryTotalBytes))
	gauge("cemaf_memory_limited_by_cgroup", "1 when the cgroup limit is the effective memory.", boolFloat(s.MemoryLimitedByCgroup))
	gauge("cemaf_swap_used_percent", "Swap in use, percent.", s.SwapUsedPercent)
	gauge("cemaf_swap_total_bytes", "Swap size.", float64(s.SwapTotalBytes))
	gauge("cemaf_process_resident_bytes", "Resident set size of this process.", float64(s.ProcessRSSBytes))
	gauge("cemaf_process_anon_bytes", "Anonymous resident memory of this process.", float64(s.ProcessAnonBytes))

	pw.metric("cemaf_load_average", "gauge", "Load average.")
	pw.value([]string{"window", "1m"}, s.Load1)
	pw.value([]string{"window", "5m"}, s.Load5)
	pw.value([]string{"window", "15m"}, s.Load15)

	if s.PSI.Available {
		pw.metric("cemaf_pressure_avg10_percent", "gauge", "Pressure stall information, share of the last 10 s stalled.")
		pw.value([]string{"resource", "cpu", "kind", "some"}, s.PSI.CPUSomeAvg10)
		pw.value([]string{"resource", "memory", "kind", "some"}, s.PSI.MemorySomeAvg10)
		pw.value([]string{"resource", "memory", "kind", "full"}, s.PSI.MemoryFullAvg10)
		pw.value([]string{"resource", "io", "kind", "some"}, s.PSI.IOSomeAvg10)
		pw.value([]string{"resource", "io", "kind", "full"}, s.PSI.IOFullAvg10)
	}
	if len(s.Disks) > 0 {
		pw.metric("cemaf_disk_used_percent", "gauge", "File system usage of a configured path, percent.")
		for _, d := range s.Disks {
			pw.value([]string{"path", d.Path}, d.UsedPercent)
		}
		pw.metric("cemaf_disk_free_bytes", "gauge", "Space available to unprivileged users.")
		for _, d := range s.Disks {
			pw.value([]string{"path", d.Path}, float64(d.FreeBytes))
		}
		pw.metric("cemaf_disk_total_bytes", "gauge", "File system size.")
		for _, d := range s.Disks {
			pw.value([]string{"path", d.Path}, float64(d.TotalBytes))
		}
	}
	if len(s.Signals) > 0 {
		pw.metric("cemaf_signal", "gauge", "Extra signals, by name and unit.")
		for _, v := range s.Signals {
			pw.value([]string{"name", v.Name, "unit", v.Unit}, v.Value)
		}
	}
	return pw.flush()
}

// promWriter writes the text format, remembering the first write error.
type promWriter struct {
	w    *bufio.Writer
	name string
}

func (p *promWriter) metric(name, typ, help string) {
	p.name = name
	p.w.WriteString("# HELP " + name + " " + help + "\n")
	p.w.WriteString("# TYPE " + name + " " + typ + "\n")
}

// value writes one sample line; labels alternate names and values.
func (p *promWriter) value(labels []string, v float64) {
	p.w.WriteString(p.name)
	if len(labels) > 0 {
		p.w.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				p.w.WriteByte(',')
			}
			p.w.WriteString(labels[i])
			p.w.WriteString(`="`)
			p.w.WriteString(escapeLabel(labels[i+1]))
			p.w.WriteByte('"')
		}
		p.w.WriteByte('}')
	}
	p.w.WriteByte(' ')
	p.w.WriteString(formatPromFloat(v))
	p.w.WriteByte('\n')
}

func (p *promWriter) flush() error { return p.w.Flush() }

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func formatPromFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// WritePrometheus writes every ladder's rung and levels in the Prometheus
// text format: cemaf_ladder_rung (0 normal, 1 adapt, 2 pause),
// cemaf_ladder_level (adapt and pause levels) and cemaf_ladder_trips.
func (b *Breaker) WritePrometheus(w io.Writer) error {
	st := b.Status()
	pw := promWriter{w: bufio.NewWriter(w)}
	pw.metric("cemaf_paused", "gauge", "1 while a ladder is on its pause rung.")
	pw.value(nil, boolFloat(st.Paused))
	pw.metric("cemaf_ladder_rung", "gauge", "Rung of a signal's ladder: 0 normal, 1 adapt, 2 pause.")
	for _, l := range st.Ladders {
		pw.value([]string{"signal", l.Signal}, float64(l.Rung))
	}
	pw.metric("cemaf_ladder_level", "gauge", "Levels of a signal's ladder, in the signal's unit (0: no such rung).")
	for _, l := range st.Ladders {
		pw.value([]string{"signal", l.Signal, "rung", "adapt"}, l.Adapt)
		pw.value([]string{"signal", l.Signal, "rung", "pause"}, l.Pause)
	}
	pw.metric("cemaf_ladder_trips", "gauge", "Pauses of a signal since its cooldown last decayed.")
	for _, l := range st.Ladders {
		pw.value([]string{"signal", l.Signal}, float64(l.Trips))
	}
	return pw.flush()
}
