package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cemaf-go/cemaf/executor"
)

// DefaultBuckets returns the default upper bounds, in seconds, of the
// duration histograms: 5 ms to 10 minutes.
func DefaultBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
}

// Options configures New. The zero value is valid.
type Options struct {
	// Buckets are the upper bounds, in seconds, of the duration histograms
	// (runs, nodes, LLM calls): ascending, finite and positive. nil means
	// DefaultBuckets.
	Buckets []float64
	// NodeLabel, if set, maps a node ID to the value of a "node" label on
	// the node series (durations, statuses, retries, skips), such as the
	// ID without its shard number. nil means no node label: one series
	// for all nodes. Each distinct value is a series kept for the life of
	// the Metrics.
	NodeLabel func(node string) string
}

// ModeSink receives the device mode's changes, such as the adaptive
// executor's (adaptive.Executor.OnModeChange: pass string(c.From) and
// string(c.To)). *Metrics implements it.
type ModeSink interface {
	ModeChanged(from, to string)
}

// LLMSink receives the calls of an LLM client. *Metrics implements it.
type LLMSink interface {
	ObserveLLMCall(LLMCall) error
}

// LLMCall is one call to a model, as an LLM client reports it.
type LLMCall struct {
	// Model is the model called (a label: keep model names few).
	Model string
	// PromptTokens and CompletionTokens are the tokens in and out.
	PromptTokens, CompletionTokens int
	// Latency is the whole call, waiting for a slot included.
	Latency time.Duration
	// Failed is set when the call returned an error.
	Failed bool
}

// Metrics aggregates metrics of runs, nodes, modes and LLM calls and
// writes them in the Prometheus text format. Make one with New. It is safe
// for concurrent use.
type Metrics struct {
	buckets   []float64
	nodeLabel func(string) string

	// mu guards the families and mode.
	mu         sync.Mutex
	runsStart  *family
	runs       *family
	inProgress *family
	runDur     *family
	nodes      *family
	nodeDur    *family
	retries    *family
	skipped    *family
	pauses     *family
	pauseSecs  *family
	modeChange *family
	mode       *family
	llmCalls   *family
	llmTokens  *family
	llmDur     *family
	curMode    string
}

var (
	_ executor.Observer = (*Metrics)(nil)
	_ ModeSink          = (*Metrics)(nil)
	_ LLMSink           = (*Metrics)(nil)
	_ http.Handler      = (*Metrics)(nil)
)

// New returns an empty Metrics. It fails, naming the field, when
// Options.Buckets is not ascending, finite and positive.
func New(opts Options) (*Metrics, error) {
	b := opts.Buckets
	if b == nil {
		b = DefaultBuckets()
	}
	for i, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 || (i > 0 && v <= b[i-1]) {
			return nil, fmt.Errorf("metrics: Options.Buckets[%d] = %v: bounds must be finite, positive and strictly ascending", i, v)
		}
	}
	return &Metrics{
		buckets:    slices.Clone(b),
		nodeLabel:  opts.NodeLabel,
		runsStart:  newFamily("cemaf_runs_started_total", "Runs started.", "counter"),
		runs:       newFamily("cemaf_runs_total", "Runs ended, by status (succeeded, failed, cancelled, waiting).", "counter"),
		inProgress: newFamily("cemaf_runs_in_progress", "Runs in progress.", "gauge"),
		runDur:     newFamily("cemaf_run_duration_seconds", "Duration of ended runs.", "histogram"),
		nodes:      newFamily("cemaf_nodes_total", "Nodes ended, by status.", "counter"),
		nodeDur:    newFamily("cemaf_node_duration_seconds", "Time from a node's first start to its end, retries included, for nodes that ran.", "histogram"),
		retries:    newFamily("cemaf_node_retries_total", "Node attempts that failed and were retried.", "counter"),
		skipped:    newFamily("cemaf_nodes_skipped_total", "Nodes skipped, by reason (upstream_failed, not_chosen, waiting_input, run_stopped).", "counter"),
		pauses:     newFamily("cemaf_pauses_total", "Times the resource gate paused a run.", "counter"),
		pauseSecs:  newFamily("cemaf_pause_seconds_total", "Time runs spent paused by the resource gate.", "counter"),
		modeChange: newFamily("cemaf_mode_changes_total", "Changes of the device mode, by previous and new mode.", "counter"),
		mode:       newFamily("cemaf_mode", "The device mode in force (1) since the last change.", "gauge"),
		llmCalls:   newFamily("cemaf_llm_calls_total", "LLM calls, by model and result (ok, error).", "counter"),
		llmTokens:  newFamily("cemaf_llm_tokens_total", "LLM tokens, by model and kind (prompt, completion).", "counter"),
		llmDur:     newFamily("cemaf_llm_call_duration_seconds", "Latency of LLM calls, queueing included, by model.", "histogram"),
	}, nil
}

// nodeLabels returns the label pairs of node series for node id, plus
// extra pairs.
func (m *Metrics) nodeLabels(id string, extra ...string) []string {
	if m.nodeLabel == nil {
		return extra
	}
	return append([]string{"node", m.nodeLabel(id)}, extra...)
}

// OnEvent counts ev (executor.Observer).
func (m *Metrics) OnEvent(ev executor.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch ev.Kind {
	case executor.RunStarted:
		m.runsStart.get(nil).value++
		m.inProgress.get(nil).value++
	case executor.RunFinished:
		m.inProgress.get(nil).value--
		m.runs.get(nil, "status", ev.RunStatus).value++
		m.runDur.get(m.buckets).h.observe(ev.Duration.Seconds())
	case executor.NodeSucceeded, executor.NodeFailed:
		m.nodes.get(nil, m.nodeLabels(ev.Node, "status", ev.Status.String())...).value++
		m.nodeDur.get(m.buckets, m.nodeLabels(ev.Node)...).h.observe(ev.Duration.Seconds())
	case executor.NodeCancelled, executor.NodeWaiting:
		m.nodes.get(nil, m.nodeLabels(ev.Node, "status", ev.Status.String())...).value++
	case executor.NodeSkipped:
		m.nodes.get(nil, m.nodeLabels(ev.Node, "status", ev.Status.String())...).value++
		m.skipped.get(nil, m.nodeLabels(ev.Node, "reason", skipReason(ev.Err))...).value++
	case executor.NodeRetrying:
		m.retries.get(nil, m.nodeLabels(ev.Node)...).value++
	case executor.Resumed:
		m.pauses.get(nil).value++
		m.pauseSecs.get(nil).value += ev.Duration.Seconds()
	}
}

func skipReason(err error) string {
	switch {
	case errors.Is(err, executor.ErrUpstream):
		return "upstream_failed"
	case errors.Is(err, executor.ErrNotChosen):
		return "not_chosen"
	case errors.Is(err, executor.ErrInterrupted):
		return "waiting_input"
	}
	return "run_stopped"
}

// ModeChanged counts a change of the device mode and makes to the mode in
// force (ModeSink).
func (m *Metrics) ModeChanged(from, to string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.modeChange.get(nil, "from", from, "to", to).value++
	m.setModeLocked(to)
}

// SetMode makes mode the mode in force without counting a change: for the
// mode a program starts in, so that cemaf_mode has a series before the
// first change. An empty mode is ignored.
func (m *Metrics) SetMode(mode string) {
	if mode == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setModeLocked(mode)
}

// setModeLocked sets the cemaf_mode gauge: 1 for mode, 0 for the mode in
// force before. Called with mu held.
func (m *Metrics) setModeLocked(mode string) {
	if m.curMode != "" {
		m.mode.get(nil, "mode", m.curMode).value = 0
	}
	m.mode.get(nil, "mode", mode).value = 1
	m.curMode = mode
}

// ObserveLLMCall counts an LLM call, its tokens and its latency (LLMSink).
// It refuses, naming the field, negative token counts and a negative
// latency.
func (m *Metrics) ObserveLLMCall(c LLMCall) error {
	switch {
	case c.PromptTokens < 0:
		return fmt.Errorf("metrics: LLMCall.PromptTokens = %d: must be ≥ 0", c.PromptTokens)
	case c.CompletionTokens < 0:
		return fmt.Errorf("metrics: LLMCall.CompletionTokens = %d: must be ≥ 0", c.CompletionTokens)
	case c.Latency < 0:
		return fmt.Errorf("metrics: LLMCall.Latency = %v: must be ≥ 0", c.Latency)
	}
	result := "ok"
	if c.Failed {
		result = "error"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.llmCalls.get(nil, "model", c.Model, "result", result).value++
	m.llmTokens.get(nil, "kind", "completion", "model", c.Model).value += float64(c.CompletionTokens)
	m.llmTokens.get(nil, "kind", "prompt", "model", c.Model).value += float64(c.PromptTokens)
	m.llmDur.get(m.buckets, "model", c.Model).h.observe(c.Latency.Seconds())
	return nil
}

// WritePrometheus writes every series in the Prometheus text format
// (version 0.0.4), families in a fixed order and series sorted by labels,
// so that a program can append them to its own exposition. Families with
// no series yet are left out.
func (m *Metrics) WritePrometheus(w io.Writer) error {
	// Render under the lock into memory, write to w (which may be slow)
	// without it.
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	m.mu.Lock()
	for _, f := range []*family{m.runsStart, m.runs, m.inProgress, m.runDur, m.nodes, m.nodeDur, m.retries, m.skipped,
		m.pauses, m.pauseSecs, m.modeChange, m.mode, m.llmCalls, m.llmTokens, m.llmDur} {
		f.write(bw)
	}
	bw.Flush()
	m.mu.Unlock()
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("metrics: write: %w", err)
	}
	return nil
}

// ContentType is the media type of WritePrometheus' output.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// ServeHTTP serves WritePrometheus' output, for a /metrics endpoint.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", ContentType)
	_ = m.WritePrometheus(w)
}
