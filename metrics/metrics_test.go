package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/internal/promtext"
	"github.com/cemaf-go/cemaf/metrics"
)

// gate is closed while closed is set; Wait returns when it opens.
type gate struct {
	mu     sync.Mutex
	closed bool
	opened chan struct{}
}

func (g *gate) set(closed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed && !closed {
		close(g.opened)
		g.opened = make(chan struct{})
	}
	g.closed = closed
}

func (g *gate) Check() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("hot")
	}
	return nil
}

func (g *gate) Wait(ctx context.Context) error {
	g.mu.Lock()
	closed, opened := g.closed, g.opened
	g.mu.Unlock()
	if !closed {
		return nil
	}
	select {
	case <-opened:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A run with a success, a retry, a failure and its skipped dependent, a
// branch and its unchosen arm, a pause, then mode changes and LLM calls:
// the exact exposition (durations are exact under synctest's clock).
func TestMetricsExposition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := metrics.New(metrics.Options{Buckets: []float64{1, 10, 60}})
		require.NoError(t, err)
		g := &gate{opened: make(chan struct{})}
		e, err := executor.New(executor.Options{Observers: []executor.Observer{m}, FailurePolicy: executor.Continue, Gate: g, Limits: executor.Limits{CPU: 1}})
		require.NoError(t, err)
		sleep := func(d time.Duration) dag.Func {
			return func(context.Context, dag.State) error { time.Sleep(d); return nil }
		}
		flaky := 0
		graph, err := dag.New(
			dag.Node{ID: "load", Run: func(context.Context, dag.State) error {
				g.set(true) // the board gets hot
				time.AfterFunc(20*time.Second, func() { g.set(false) })
				time.Sleep(5 * time.Second)
				return nil
			}},
			dag.Node{ID: "embed", DependsOn: []string{"load"}, Retry: &dag.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Second, Jitter: -1}, Run: func(context.Context, dag.State) error {
				time.Sleep(2 * time.Second)
				if flaky++; flaky == 1 {
					return errors.New("busy")
				}
				return nil
			}},
			dag.Node{ID: "fetch", Run: func(context.Context, dag.State) error { return errors.New("offline") }},
			dag.Node{ID: "merge", DependsOn: []string{"fetch"}, Run: sleep(time.Second)},
			dag.Node{ID: "route", Branch: true, DependsOn: []string{"embed"}, Run: func(ctx context.Context, _ dag.State) error {
				return executor.Choose(ctx, "short")
			}},
			dag.Node{ID: "short", DependsOn: []string{"route"}, Run: sleep(30 * time.Second)},
			dag.Node{ID: "long", DependsOn: []string{"route"}, Run: sleep(time.Second)},
		)
		require.NoError(t, err)
		_, err = e.Run(context.Background(), graph, dag.NewMemoryState())
		require.ErrorContains(t, err, "offline")

		m.ModeChanged("normal", "high_temp")
		m.ModeChanged("high_temp", "normal")
		require.NoError(t, m.ObserveLLMCall(metrics.LLMCall{Model: "qwen2.5:1.5b", PromptTokens: 812, CompletionTokens: 96, Latency: 14 * time.Second}))
		require.NoError(t, m.ObserveLLMCall(metrics.LLMCall{Model: "qwen2.5:1.5b", Latency: 90 * time.Second, Failed: true}))
		assert.ErrorContains(t, m.ObserveLLMCall(metrics.LLMCall{Model: "x", Latency: -1}), "LLMCall.Latency = -1ns: must be ≥ 0")
		assert.ErrorContains(t, m.ObserveLLMCall(metrics.LLMCall{Model: "x", PromptTokens: -3}), "LLMCall.PromptTokens = -3")

		var buf bytes.Buffer
		require.NoError(t, m.WritePrometheus(&buf))
		want := `# HELP cemaf_runs_started_total Runs started.
# TYPE cemaf_runs_started_total counter
cemaf_runs_started_total 1
# HELP cemaf_runs_total Runs ended, by status (succeeded, failed, cancelled, waiting).
# TYPE cemaf_runs_total counter
cemaf_runs_total{status="failed"} 1
# HELP cemaf_runs_in_progress Runs in progress.
# TYPE cemaf_runs_in_progress gauge
cemaf_runs_in_progress 0
# HELP cemaf_run_duration_seconds Duration of ended runs.
# TYPE cemaf_run_duration_seconds histogram
cemaf_run_duration_seconds_bucket{le="1"} 0
cemaf_run_duration_seconds_bucket{le="10"} 0
cemaf_run_duration_seconds_bucket{le="60"} 1
cemaf_run_duration_seconds_bucket{le="+Inf"} 1
cemaf_run_duration_seconds_sum 55
cemaf_run_duration_seconds_count 1
# HELP cemaf_nodes_total Nodes ended, by status.
# TYPE cemaf_nodes_total counter
cemaf_nodes_total{status="failed"} 1
cemaf_nodes_total{status="skipped"} 2
cemaf_nodes_total{status="succeeded"} 4
# HELP cemaf_node_duration_seconds Time from a node's first start to its end, retries included, for nodes that ran.
# TYPE cemaf_node_duration_seconds histogram
cemaf_node_duration_seconds_bucket{le="1"} 2
cemaf_node_duration_seconds_bucket{le="10"} 4
cemaf_node_duration_seconds_bucket{le="60"} 5
cemaf_node_duration_seconds_bucket{le="+Inf"} 5
cemaf_node_duration_seconds_sum 40
cemaf_node_duration_seconds_count 5
# HELP cemaf_node_retries_total Node attempts that failed and were retried.
# TYPE cemaf_node_retries_total counter
cemaf_node_retries_total 1
# HELP cemaf_nodes_skipped_total Nodes skipped, by reason (upstream_failed, not_chosen, waiting_input, run_stopped).
# TYPE cemaf_nodes_skipped_total counter
cemaf_nodes_skipped_total{reason="not_chosen"} 1
cemaf_nodes_skipped_total{reason="upstream_failed"} 1
# HELP cemaf_pauses_total Times the resource gate paused a run.
# TYPE cemaf_pauses_total counter
cemaf_pauses_total 1
# HELP cemaf_pause_seconds_total Time runs spent paused by the resource gate.
# TYPE cemaf_pause_seconds_total counter
cemaf_pause_seconds_total 15
# HELP cemaf_mode_changes_total Changes of the device mode, by previous and new mode.
# TYPE cemaf_mode_changes_total counter
cemaf_mode_changes_total{from="high_temp",to="normal"} 1
cemaf_mode_changes_total{from="normal",to="high_temp"} 1
# HELP cemaf_mode The device mode in force (1) since the last change.
# TYPE cemaf_mode gauge
cemaf_mode{mode="high_temp"} 0
cemaf_mode{mode="normal"} 1
# HELP cemaf_llm_calls_total LLM calls, by model and result (ok, error).
# TYPE cemaf_llm_calls_total counter
cemaf_llm_calls_total{model="qwen2.5:1.5b",result="error"} 1
cemaf_llm_calls_total{model="qwen2.5:1.5b",result="ok"} 1
# HELP cemaf_llm_tokens_total LLM tokens, by model and kind (prompt, completion).
# TYPE cemaf_llm_tokens_total counter
cemaf_llm_tokens_total{kind="completion",model="qwen2.5:1.5b"} 96
cemaf_llm_tokens_total{kind="prompt",model="qwen2.5:1.5b"} 812
# HELP cemaf_llm_call_duration_seconds Latency of LLM calls, queueing included, by model.
# TYPE cemaf_llm_call_duration_seconds histogram
cemaf_llm_call_duration_seconds_bucket{model="qwen2.5:1.5b",le="1"} 0
cemaf_llm_call_duration_seconds_bucket{model="qwen2.5:1.5b",le="10"} 0
cemaf_llm_call_duration_seconds_bucket{model="qwen2.5:1.5b",le="60"} 1
cemaf_llm_call_duration_seconds_bucket{model="qwen2.5:1.5b",le="+Inf"} 2
cemaf_llm_call_duration_seconds_sum{model="qwen2.5:1.5b"} 104
cemaf_llm_call_duration_seconds_count{model="qwen2.5:1.5b"} 2
`
		assert.Equal(t, want, buf.String())
		checkExposition(t, buf.String())
	})
}

// checkExposition checks text against the text format (promtext.Families).
func checkExposition(t *testing.T, text string) {
	t.Helper()
	_, err := promtext.Families(text)
	require.NoError(t, err)
}

func TestMetricsNodeLabelAndEscaping(t *testing.T) {
	m, err := metrics.New(metrics.Options{NodeLabel: func(id string) string { return strings.TrimRight(id, "0123456789") }})
	require.NoError(t, err)
	e, err := executor.New(executor.Options{Observers: []executor.Observer{m}})
	require.NoError(t, err)
	g, err := dag.New(
		dag.Node{ID: "shard1", Run: func(context.Context, dag.State) error { return nil }},
		dag.Node{ID: "shard2", Run: func(context.Context, dag.State) error { return nil }},
		dag.Node{ID: `odd"one` + "\n", Run: func(context.Context, dag.State) error { return nil }},
	)
	require.NoError(t, err)
	_, err = e.Run(context.Background(), g, dag.NewMemoryState())
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, m.WritePrometheus(&buf))
	assert.Contains(t, buf.String(), `cemaf_nodes_total{node="shard",status="succeeded"} 2`)
	assert.Contains(t, buf.String(), `cemaf_nodes_total{node="odd\"one\n",status="succeeded"} 1`)
	checkExposition(t, buf.String())

	_, err = metrics.New(metrics.Options{Buckets: []float64{1, 1}})
	assert.ErrorContains(t, err, "Options.Buckets[1] = 1")
}

func TestMetricsHTTP(t *testing.T) {
	m, err := metrics.New(metrics.Options{})
	require.NoError(t, err)
	m.ModeChanged("normal", "low_memory")
	srv := httptest.NewServer(m)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, metrics.ContentType, resp.Header.Get("Content-Type"))
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Contains(t, string(body), `cemaf_mode{mode="low_memory"} 1`)
}

// SetMode gives cemaf_mode its series before any change and counts none;
// a later change zeroes it.
func TestSetMode(t *testing.T) {
	m, err := metrics.New(metrics.Options{})
	require.NoError(t, err)
	page := func() string {
		var buf bytes.Buffer
		require.NoError(t, m.WritePrometheus(&buf))
		if buf.Len() > 0 {
			checkExposition(t, buf.String())
		}
		return buf.String()
	}
	m.SetMode("")
	assert.NotContains(t, page(), "cemaf_mode{")
	m.SetMode("normal")
	p := page()
	assert.Contains(t, p, `cemaf_mode{mode="normal"} 1`)
	assert.NotContains(t, p, "cemaf_mode_changes_total{")
	m.ModeChanged("normal", "low_disk")
	p = page()
	assert.Contains(t, p, `cemaf_mode{mode="normal"} 0`)
	assert.Contains(t, p, `cemaf_mode{mode="low_disk"} 1`)
	assert.Contains(t, p, `cemaf_mode_changes_total{from="normal",to="low_disk"} 1`)
}
