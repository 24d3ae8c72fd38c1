package factories_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/internal/llmstub"
	"github.com/cemaf-go/cemaf/llm"
)

// hotPi is a Raspberry Pi 4 whose temperature the test sets: a copy of
// the pi4 sysfs fixture, with the procfs and cgroup fixtures in place of
// this machine's (whose load must not change the mode), sampled every
// 10 ms, with ladders that adapt at 70 °C, pause above 85 °C and leave
// the adapt rung 10 ms after the last hot sample.
type hotPi struct {
	t    *testing.T
	temp string // the zone's temp file
	cfg  factories.ResourceConfig
}

func newHotPi(t *testing.T) *hotPi {
	t.Helper()
	sysfs := filepath.Join(t.TempDir(), "sys")
	require.NoError(t, os.CopyFS(sysfs, os.DirFS("../thermal/testdata/pi4")))
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		require.NoError(t, err)
		return a
	}
	cfg, _, err := factories.Load(factories.LoadOptions{
		Environ: []string{
			"CEMAF_RESOURCE_SYSFS_ROOT=" + sysfs,
			"CEMAF_RESOURCE_PROCFS_ROOT=" + abs("../throttle/testdata/cgroupv2/proc"),
			"CEMAF_RESOURCE_CGROUP_ROOT=" + abs("../throttle/testdata/cgroupv2/sys/fs/cgroup"),
			"CEMAF_RESOURCE_PAGER_STORAGE_PATH=" + filepath.Join(t.TempDir(), "pages"),
			"CEMAF_RESOURCE_CHECK_INTERVAL_SECONDS=0.01",
			"CEMAF_RESOURCE_HOLD_SECONDS=0.01",
			"CEMAF_RESOURCE_TEMP_ADAPT_C=70",
			"CEMAF_RESOURCE_TEMP_THRESHOLD=85",
		},
		Host: pi4,
	})
	require.NoError(t, err)
	return &hotPi{t: t, temp: filepath.Join(sysfs, "class/thermal/thermal_zone0/temp"), cfg: cfg}
}

// set writes the zone's temperature, in °C, in the kernel's millidegrees.
// The file is replaced, not rewritten in place, so that the sampler never
// reads it empty: a sysfs attribute always holds a value.
func (p *hotPi) set(c float64) {
	p.t.Helper()
	tmp := p.temp + ".new"
	require.NoError(p.t, os.WriteFile(tmp, fmt.Appendf(nil, "%d\n", int(c*1000)), 0o644))
	require.NoError(p.t, os.Rename(tmp, p.temp))
}

// models is a stand-in LLM server on 127.0.0.1 that records the model each
// request asks for.
type models struct {
	stub llmstub.Handler
	mu   sync.Mutex
	got  []string
}

func (m *models) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req struct {
		Model string `json:"model"`
	}
	_ = json.Unmarshal(body, &req)
	m.mu.Lock()
	m.got = append(m.got, req.Model)
	m.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	m.stub.ServeHTTP(w, r)
}

func (m *models) asked() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.got...)
}

// A run of sequential LLM nodes on a device that heats up and cools down
// mid-run: the calls made while it is hot ask for the small model with
// fewer tokens, the others for the big one, and each call's record says
// which mode chose its model.
func TestModeSwitchesTheModelMidRun(t *testing.T) {
	pi := newHotPi(t)
	pi.set(48.686)
	rt, err := factories.NewRuntime(pi.cfg, factories.RuntimeOptions{})
	require.NoError(t, err)
	defer rt.Close()
	require.Equal(t, "normal", rt.Mode(), "a cool device")

	changes := make(chan adaptive.Mode, 16)
	rt.Executor.OnModeChange(func(c adaptive.ModeChange) {
		select {
		case changes <- c.To: // called on the monitor's goroutine: never block it
		default:
		}
	})
	srv := &models{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c, err := rt.NewLLMClient(ts.URL, llm.Options{
		Profile:  llm.Profile{Model: "qwen2.5:3b", MaxTokens: 512, MaxConcurrent: 4},
		Profiles: map[string]llm.Profile{"high_temp": {Model: "qwen2.5:0.5b", MaxTokens: 64, MaxConcurrent: 1}},
	})
	require.NoError(t, err)
	defer c.CloseIdleConnections()

	var (
		mu      sync.Mutex
		records []llm.Record
	)
	ask := func(ctx context.Context, _ dag.State) error {
		resp, err := c.Chat(ctx, llm.Request{Messages: []llm.Message{llm.User("status?")}})
		rt.ObserveLLM(resp.Record)
		mu.Lock()
		records = append(records, resp.Record)
		mu.Unlock()
		return err
	}
	// reach sets the temperature and waits until the mode follows.
	reach := func(temp float64, want adaptive.Mode) dag.Func {
		return func(ctx context.Context, _ dag.State) error {
			pi.set(temp)
			for {
				select {
				case m := <-changes:
					if m == want {
						return nil
					}
				case <-ctx.Done():
					return fmt.Errorf("waiting for mode %s at %v °C: %w", want, temp, ctx.Err())
				}
			}
		}
	}
	g, err := dag.New(
		dag.Node{ID: "ask-1", Class: dag.IO, Run: ask},
		dag.Node{ID: "ask-2", Class: dag.IO, DependsOn: []string{"ask-1"}, Run: ask},
		dag.Node{ID: "heat", DependsOn: []string{"ask-2"}, Run: reach(76, adaptive.HighTemp)},
		dag.Node{ID: "ask-3", Class: dag.IO, DependsOn: []string{"heat"}, Run: ask},
		dag.Node{ID: "ask-4", Class: dag.IO, DependsOn: []string{"ask-3"}, Run: ask},
		dag.Node{ID: "cool", DependsOn: []string{"ask-4"}, Run: reach(45, adaptive.Normal)},
		dag.Node{ID: "ask-5", Class: dag.IO, DependsOn: []string{"cool"}, Run: ask},
	)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // fails, not hangs, if a mode never comes
	defer cancel()
	_, err = rt.Executor.Run(ctx, g, rt.State())
	require.NoError(t, err)

	assert.Equal(t, []string{"qwen2.5:3b", "qwen2.5:3b", "qwen2.5:0.5b", "qwen2.5:0.5b", "qwen2.5:3b"}, srv.asked(),
		"the model each request asked for")
	require.Len(t, records, 5)
	var modes, model []string
	for _, r := range records {
		modes, model = append(modes, r.Mode), append(model, r.Model)
		assert.Empty(t, r.Err)
		assert.Equal(t, 1, r.Attempts)
	}
	assert.Equal(t, []string{"normal", "normal", "high_temp", "high_temp", "normal"}, modes, "the mode in force at each call")
	assert.Equal(t, srv.asked(), model)
	assert.Equal(t, llm.Profile{Model: "qwen2.5:0.5b", MaxTokens: 64, MaxConcurrent: 1}, c.ProfileFor("high_temp"))

	hist := rt.Executor.History()
	require.Len(t, hist, 2)
	assert.Equal(t, adaptive.HighTemp, hist[0].To)
	assert.Contains(t, hist[0].Reason, "temperature")
	assert.Equal(t, adaptive.Normal, hist[1].To)

	var page strings.Builder
	require.NoError(t, rt.WritePrometheus(&page))
	for _, want := range []string{
		`cemaf_mode_changes_total{from="normal",to="high_temp"} 1`,
		`cemaf_mode_changes_total{from="high_temp",to="normal"} 1`,
		`cemaf_mode{mode="normal"} 1`,
		`cemaf_mode{mode="high_temp"} 0`,
		`cemaf_llm_calls_total{model="qwen2.5:0.5b",result="ok"} 2`,
		`cemaf_llm_calls_total{model="qwen2.5:3b",result="ok"} 3`,
		`cemaf_signal{name="temperature_c",unit="°C"} 45`, // the device signals are on the same page
	} {
		assert.Contains(t, page.String(), want)
	}
}

// Mode is the adaptive executor's mode, and a client made by NewLLMClient
// follows it; one made without Mode would not.
func TestNewLLMClientWiresTheRuntime(t *testing.T) {
	pi := newHotPi(t)
	pi.set(78) // hot from the start
	rt, err := factories.NewRuntime(pi.cfg, factories.RuntimeOptions{})
	require.NoError(t, err)
	defer rt.Close()
	require.Equal(t, "high_temp", rt.Mode())

	srv := &models{}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	opts := llm.Options{
		Profile:  llm.Profile{Model: "big"},
		Profiles: map[string]llm.Profile{"high_temp": {Model: "small"}},
	}
	wired, err := rt.NewLLMClient(ts.URL, opts)
	require.NoError(t, err)
	defer wired.CloseIdleConnections()
	plain, err := llm.New(ts.URL, opts)
	require.NoError(t, err)
	defer plain.CloseIdleConnections()
	req := llm.Request{Messages: []llm.Message{llm.User("hi")}}
	for _, cl := range []*llm.Client{wired, plain} {
		_, err := cl.Chat(context.Background(), req)
		require.NoError(t, err)
	}
	assert.Equal(t, []string{"small", "big"}, srv.asked())

	// A mode function the caller gives is kept.
	opts.Mode = func() string { return "normal" }
	own, err := rt.NewLLMClient(ts.URL, opts)
	require.NoError(t, err)
	defer own.CloseIdleConnections()
	resp, err := own.Chat(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, "normal", resp.Record.Mode)
	assert.Equal(t, "big", resp.Record.Model)
}

func TestLLMCallClampsBadValues(t *testing.T) {
	c := factories.LLMCall(llm.Record{Model: "m", Latency: -time.Second, Usage: llm.Usage{PromptTokens: -3, CompletionTokens: 7}, Err: "llm: boom"})
	assert.Equal(t, "m", c.Model)
	assert.Zero(t, c.Latency)
	assert.Zero(t, c.PromptTokens)
	assert.Equal(t, 7, c.CompletionTokens)
	assert.True(t, c.Failed)
}
