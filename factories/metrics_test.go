package factories_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/internal/llmstub"
	"github.com/cemaf-go/cemaf/internal/promtext"
	"github.com/cemaf-go/cemaf/llm"
	"github.com/cemaf-go/cemaf/metrics"
)

// checkExposition checks that page is one valid Prometheus text
// exposition (promtext.Families) and returns its families' types.
func checkExposition(t *testing.T, page string) map[string]string {
	t.Helper()
	types, err := promtext.Families(page)
	require.NoError(t, err)
	return types
}

// After a run with a retry, a branch and an LLM call, one scrape of the
// runtime's handler has the device signals, the ladders and the run
// metrics together.
func TestMetricsHandlerScrapesEverything(t *testing.T) {
	pi := newHotPi(t)
	pi.set(48.686)
	rt, err := factories.NewRuntime(pi.cfg, factories.RuntimeOptions{
		Executor: executor.Options{Retry: &dag.RetryPolicy{MaxAttempts: 2, InitialBackoff: 1, Jitter: -1}},
	})
	require.NoError(t, err)
	defer rt.Close()

	llmSrv := httptest.NewServer(&llmstub.Handler{})
	defer llmSrv.Close()
	c, err := rt.NewLLMClient(llmSrv.URL, llm.Options{Profile: llm.Profile{Model: "qwen2.5:3b"}})
	require.NoError(t, err)
	defer c.CloseIdleConnections()

	var flaky atomic.Int32
	g, err := dag.New(
		dag.Node{ID: "ask", Class: dag.IO, Run: func(ctx context.Context, s dag.State) error {
			resp, err := c.Chat(ctx, llm.Request{Messages: []llm.Message{llm.User("hi")}})
			rt.ObserveLLM(resp.Record)
			return err
		}},
		dag.Node{ID: "flaky", DependsOn: []string{"ask"}, Branch: true, Run: func(ctx context.Context, _ dag.State) error {
			if flaky.Add(1) == 1 {
				return errors.New("first attempt fails")
			}
			return executor.Choose(ctx, "left")
		}},
		dag.Node{ID: "left", DependsOn: []string{"flaky"}, Run: func(context.Context, dag.State) error { return nil }},
		dag.Node{ID: "right", DependsOn: []string{"flaky"}, Run: func(context.Context, dag.State) error { return nil }},
	)
	require.NoError(t, err)
	_, err = rt.Executor.Run(context.Background(), g, rt.State())
	require.NoError(t, err)

	scrape := httptest.NewServer(rt.MetricsHandler())
	defer scrape.Close()
	resp, err := http.Get(scrape.URL + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, metrics.ContentType, resp.Header.Get("Content-Type"))
	page := string(body)

	types := checkExposition(t, page)
	for name, typ := range map[string]string{
		"cemaf_samples_total":             "counter", // the Monitor
		"cemaf_memory_used_percent":       "gauge",
		"cemaf_signal":                    "gauge",
		"cemaf_ladder_rung":               "gauge", // the Breaker
		"cemaf_paused":                    "gauge",
		"cemaf_runs_total":                "counter", // the run metrics
		"cemaf_node_duration_seconds":     "histogram",
		"cemaf_node_retries_total":        "counter",
		"cemaf_nodes_skipped_total":       "counter",
		"cemaf_llm_calls_total":           "counter",
		"cemaf_llm_tokens_total":          "counter",
		"cemaf_llm_call_duration_seconds": "histogram",
		"cemaf_mode":                      "gauge", // set from the start
	} {
		assert.Equal(t, typ, types[name], "family %s", name)
	}
	for _, want := range []string{
		`cemaf_signal{name="temperature_c",unit="°C"} 48.686`,
		`cemaf_ladder_level{signal="temperature_c",rung="adapt"} 70`,
		`cemaf_runs_total{status="succeeded"} 1`,
		`cemaf_nodes_total{status="succeeded"} 3`,
		`cemaf_nodes_total{status="skipped"} 1`,
		`cemaf_node_retries_total 1`,
		`cemaf_nodes_skipped_total{reason="not_chosen"} 1`,
		`cemaf_node_duration_seconds_count 3`,
		`cemaf_llm_calls_total{model="qwen2.5:3b",result="ok"} 1`,
		`cemaf_llm_tokens_total{kind="prompt",model="qwen2.5:3b"} 10`,
		`cemaf_llm_tokens_total{kind="completion",model="qwen2.5:3b"} 8`,
		`cemaf_llm_call_duration_seconds_count{model="qwen2.5:3b"} 1`,
		`cemaf_mode{mode="normal"} 1`, // no change yet
	} {
		assert.Contains(t, page, want+"\n")
	}

	// WritePrometheus writes the same families, and still does after Close.
	require.NoError(t, rt.Close())
	var after strings.Builder
	require.NoError(t, rt.WritePrometheus(&after))
	assert.Equal(t, types, checkExposition(t, after.String()))
	assert.Contains(t, after.String(), `cemaf_runs_total{status="succeeded"} 1`)
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWritePrometheusReportsWriteErrors(t *testing.T) {
	pi := newHotPi(t)
	pi.set(40)
	rt, err := factories.NewRuntime(pi.cfg, factories.RuntimeOptions{})
	require.NoError(t, err)
	defer rt.Close()
	err = rt.WritePrometheus(failingWriter{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "factories: writing metrics: disk full")
}

func TestRuntimeRefusesBadMetricsOptions(t *testing.T) {
	pi := newHotPi(t)
	_, err := factories.NewRuntime(pi.cfg, factories.RuntimeOptions{Metrics: metrics.Options{Buckets: []float64{1, 0.5}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "metrics: Options.Buckets[1] = 0.5")
}
