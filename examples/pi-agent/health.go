package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/metrics"
	"github.com/cemaf-go/cemaf/paging"
	"github.com/cemaf-go/cemaf/throttle"
)

func (s *server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":"draining"}`+"\n")
		return
	}
	io.WriteString(w, `{"status":"ok"}`+"\n")
}

// detailed is the /health/detailed document. Every key is snake_case;
// times that never happened are left out.
type detailed struct {
	Status      string                 `json:"status"`
	Time        time.Time              `json:"time"`
	CPU         map[string]any         `json:"cpu,omitempty"`
	Memory      map[string]any         `json:"memory,omitempty"`
	Swap        map[string]any         `json:"swap,omitempty"`
	Temperature map[string]any         `json:"temperature"`
	Mode        adaptive.Status        `json:"mode"`
	Ladders     throttle.BreakerStatus `json:"ladders"`
	Concurrency map[string]int64       `json:"concurrency"`
	Connections map[string]int64       `json:"connections"`
	Index       map[string]any         `json:"index"`
	LLM         map[string]any         `json:"llm"`
	Pager       *paging.Stats          `json:"pager,omitempty"`
	Config      map[string]configEntry `json:"config"`
	Serve       map[string]any         `json:"serve"`
	Storage     map[string]string      `json:"storage"`
	Fleet       *fleetHealth           `json:"fleet,omitempty"` // serve --nats
}

// configEntry is one CEMAF_RESOURCE_* setting in /health/detailed, keyed
// by its snake_case name ("memory_threshold").
type configEntry struct {
	Variable string           `json:"variable"`
	Value    string           `json:"value"`
	Source   factories.Source `json:"source"`
	From     string           `json:"from,omitempty"`
}

// configEntries keys the effective configuration by snake_case names.
func configEntries(cfg factories.ResourceConfig) map[string]configEntry {
	out := map[string]configEntry{}
	for name, v := range cfg.Effective() {
		key := strings.ToLower(strings.TrimPrefix(name, factories.EnvPrefix))
		out[key] = configEntry{Variable: name, Value: v.Value, Source: v.Source, From: v.From}
	}
	return out
}

func (s *server) handleDetailed(w http.ResponseWriter, r *http.Request) {
	d := detailed{Status: "ok", Time: time.Now(), Config: configEntries(s.cfg), Mode: s.rt.Executor.Status(), Fleet: s.fleetHealth(r.Context())}
	if s.draining.Load() {
		d.Status = "draining"
	}
	g := s.rt.Guard
	if smp := g.Monitor.Snapshot().Sample; smp != nil {
		d.Memory = map[string]any{"percent": smp.MemoryUsedPercent, "available_mb": smp.MemoryAvailableBytes >> 20,
			"total_mb": smp.MemoryTotalBytes >> 20, "process_rss_mb": smp.ProcessRSSBytes >> 20}
		d.Swap = map[string]any{"percent": smp.SwapUsedPercent, "total_mb": smp.SwapTotalBytes >> 20}
		d.CPU = map[string]any{"percent": smp.CPUPercent, "process_percent": smp.ProcessCPUPercent, "helpers_percent": smp.HelpersCPUPercent,
			"others_percent": smp.OthersCPUPercent, "helpers": smp.Helpers}
		if lim, _ := s.pressure(); lim != nil && d.Status == "ok" {
			d.Status = "degraded"
		}
	}
	if tm := g.Thermal; tm != nil {
		st := tm.Status()
		d.Temperature = map[string]any{"available": true, "celsius": st.TempC, "sensor": st.Sensor, "adapt_c": st.Levels.AdaptC, "pause_c": st.Levels.PauseC, "below_pause_c": st.BelowPauseC}
	} else {
		d.Temperature = map[string]any{"available": false}
	}
	d.Ladders = g.Breaker.Status()
	used := s.inFlight.Load()
	d.Concurrency = map[string]int64{"slots": int64(s.opts.slots), "in_use": used, "free": int64(s.opts.slots) - used, "queue": int64(s.opts.queue), "queued": s.queued.Load()}
	d.Connections = map[string]int64{"open": int64(s.conns.Open()), "limit": int64(s.opts.maxConns), "refused": s.conns.refused.Load(), "evicted": s.conns.evicted.Load()}
	s.mu.Lock()
	idx, llm := s.index, s.llm
	s.mu.Unlock()
	d.Index = map[string]any{"loaded": idx != nil, "corpus": s.opts.corpus.Label, "idle_timeout_seconds": s.opts.idleTimeout.Seconds()}
	if idx != nil {
		d.Index["docs"], d.Index["chunks"], d.Index["built_at"] = idx.docs, idx.chunks, idx.built
		ps := idx.pager.Stats()
		d.Pager = &ps
	}
	d.LLM = map[string]any{"configured": s.opts.llmURL != "", "loaded": llm != nil, "waiting_runs": s.waiting.len()}
	if s.opts.llmURL != "" {
		d.LLM["url"] = endpointURL(s.opts.llmURL)
	}
	d.Serve = map[string]any{"max_body_bytes": s.opts.maxBody, "max_conns": s.opts.maxConns,
		"run_timeout_seconds": s.opts.runTimeout.Seconds(), "drain_timeout_seconds": s.opts.drainTimeout.Seconds(),
		"read_header_timeout_seconds": s.opts.readHeaderTimeout.Seconds(), "read_body_timeout_seconds": s.opts.readBodyTimeout.Seconds(),
		"write_timeout_seconds": s.opts.writeTimeout.Seconds(), "conn_idle_timeout_seconds": s.opts.connIdleTimeout.Seconds()}
	d.Storage = map[string]string{"dir": s.opts.storage, "index_pages": s.indexDir(), "run_pages": filepath.Join(s.opts.storage, "serve", "runs"), "waiting_runs": s.waitingDir()}
	w.Header().Set("Content-Type", "application/json")
	writeJSON(w, d)
}

// handleMetrics writes one Prometheus page: the runtime's (device signals,
// ladders, runs and nodes, mode, the LLM calls of serve's client), then
// serve's own families (requests, slots, connections, the LLM client's
// gauges, the pager). Family names do not repeat, so the page is one
// valid exposition.
func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if err := s.rt.WritePrometheus(&buf); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(&buf, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
	}
	counter := func(name, help string, v int64) {
		fmt.Fprintf(&buf, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	fmt.Fprintf(&buf, "# HELP cemaf_http_requests_total Run requests answered, by status code.\n# TYPE cemaf_http_requests_total counter\n")
	s.codes.Range(func(k, v any) bool {
		fmt.Fprintf(&buf, "cemaf_http_requests_total{code=\"%d\"} %d\n", k.(int), v.(*atomic.Int64).Load())
		return true
	})
	fmt.Fprintf(&buf, "# HELP cemaf_serve_runs_total Run requests that ran, by outcome (ok: answered).\n# TYPE cemaf_serve_runs_total counter\ncemaf_serve_runs_total{outcome=\"ok\"} %d\ncemaf_serve_runs_total{outcome=\"failed\"} %d\n", s.runsOK.Load(), s.runsFail.Load())
	gauge("cemaf_run_slots", "Run slots.", float64(s.opts.slots))
	gauge("cemaf_runs_in_flight", "Runs holding a slot.", float64(s.inFlight.Load()))
	gauge("cemaf_runs_queued", "Runs waiting for a slot.", float64(s.queued.Load()))
	gauge("cemaf_runs_waiting_input", "Runs waiting for input (POST /v1/runs/{id}/input).", float64(s.waiting.len()))
	gauge("cemaf_http_connections_open", "Connections open.", float64(s.conns.Open()))
	gauge("cemaf_http_connections_limit", "Most connections open at once.", float64(s.opts.maxConns))
	counter("cemaf_http_connections_refused_total", "Connections refused at the limit, every open one being busy.", s.conns.refused.Load())
	counter("cemaf_http_connections_evicted_total", "Idle connections closed to make room for a new one.", s.conns.evicted.Load())
	s.mu.Lock()
	idx, client, ls := s.index, s.llm, s.llmDropped
	s.mu.Unlock()
	if client != nil {
		ls = client.Stats().Add(ls) // the live client's gauges
	}
	gauge("cemaf_llm_client_loaded", "Whether the LLM client is loaded (idle unloading drops it).", b2f(client != nil))
	gauge("cemaf_llm_calls_in_flight", "LLM calls holding one of the client's slots.", float64(ls.InFlight))
	gauge("cemaf_llm_calls_waiting", "LLM calls waiting for one of the client's slots.", float64(ls.Waiting))
	counter("cemaf_llm_attempts_total", "HTTP requests sent to the LLM endpoint, retries included.", int64(ls.Attempts))
	counter("cemaf_llm_retries_total", "LLM requests sent again after a failed attempt.", int64(ls.Retries))
	counter("cemaf_llm_tool_calls_total", "Tool calls run by tool loops.", int64(ls.ToolCalls))
	counter("cemaf_llm_tool_errors_total", "Tool calls that failed (error, panic, unknown tool, bad arguments).", int64(ls.ToolErrors))
	if idx != nil {
		ps := idx.pager.Stats()
		gauge("cemaf_pager_bytes_in_memory", "Value bytes resident in RAM.", float64(ps.BytesInMemory))
		gauge("cemaf_pager_pages_on_disk", "Pages in the page file.", float64(ps.PagesOnDisk))
		gauge("cemaf_pager_hit_rate", "Page hit rate.", ps.HitRate)
	}
	gauge("cemaf_index_loaded", "Whether the corpus index is loaded.", b2f(idx != nil))
	w.Header().Set("Content-Type", metrics.ContentType)
	_, _ = w.Write(buf.Bytes())
}

// b2f is 1 for true, 0 for false: a Prometheus boolean.
func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
