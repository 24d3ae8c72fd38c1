package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/internal/promtext"
	"github.com/cemaf-go/cemaf/throttle"
)

// device is a scripted sample source: the test sets the memory pressure.
type device struct{ memPercent atomic.Int64 }

func (d *device) Sample(now time.Time) (*throttle.Sample, error) {
	return &throttle.Sample{Time: now, CPUPercent: 10, MemoryUsedPercent: float64(d.memPercent.Load()), MemoryTotalBytes: 4 << 30,
		ProcessAnonBytes: 40 << 20, ProcessRSSBytes: 50 << 20}, nil
}

type testServer struct {
	s    *server
	url  string
	dev  *device
	stop func() error
}

func startServer(t *testing.T, mutate func(*serveOptions)) *testServer {
	t.Helper()
	cfg, _, err := factories.Load(factories.LoadOptions{Environ: []string{
		"CEMAF_RESOURCE_CHECK_INTERVAL_SECONDS=0.02",
		"CEMAF_RESOURCE_COOLDOWN_SECONDS=0.05",
	}, Host: &factories.Host{Cores: 2, MemoryTotalBytes: 4 << 30}})
	require.NoError(t, err)
	docs, err := openCorpus(context.Background(), "")
	require.NoError(t, err)
	o := serveOptions{slots: 2, queue: 0, maxBody: 4096, runTimeout: 30 * time.Second, idleTimeout: time.Hour, drainTimeout: 10 * time.Second,
		readHeaderTimeout: 10 * time.Second, readBodyTimeout: 10 * time.Second, writeTimeout: 10 * time.Second,
		connIdleTimeout: time.Minute, maxConns: 256,
		agentFlags: agentFlags{shards: 4, topK: 4, chunkSize: 900, llmTimeout: 10 * time.Second},
		corpus:     docs, storage: t.TempDir()}
	if mutate != nil {
		mutate(&o)
	}
	dev := &device{}
	dev.memPercent.Store(30)
	logger := slog.New(slog.DiscardHandler)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s, err := newServer(cfg, o, ln, logger, new(slog.LevelVar), factories.GuardOptions{SampleSource: dev, Logger: logger})
	require.NoError(t, err)
	require.NoError(t, s.joinFleet(context.Background())) // serve --nats
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx) }()
	ts := &testServer{s: s, url: "http://" + ln.Addr().String(), dev: dev}
	var once sync.Once
	var stopErr error
	ts.stop = func() error {
		once.Do(func() { cancel(); stopErr = <-done })
		return stopErr
	}
	t.Cleanup(func() { ts.stop() })
	return ts
}

// setMemory changes the scripted memory use and waits for a sample that
// carries it.
func (ts *testServer) setMemory(pct int64) {
	ts.dev.memPercent.Store(pct)
	for range 2 {
		<-ts.s.rt.Guard.Monitor.Next()
	}
}

func post(t *testing.T, url, body string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Post(url+"/v1/runs", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestServeRunHealthMetrics(t *testing.T) {
	ts := startServer(t, nil)
	code, _, body := post(t, ts.url, `{"question":"How fast do SD cards write?"}`)
	require.Equal(t, http.StatusOK, code, string(body))
	var rr runResponse
	require.NoError(t, json.Unmarshal(body, &rr))
	require.NotNil(t, rr.Answer)
	assert.Contains(t, rr.Answer.Text, "MB/s")
	assert.Equal(t, "sd-card-storage.md", rr.Passages[0].Name)
	assert.Len(t, rr.Nodes, 3)

	resp, err := http.Get(ts.url + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	resp, err = http.Get(ts.url + "/health/detailed")
	require.NoError(t, err)
	var d map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&d))
	resp.Body.Close()
	for _, k := range []string{"memory", "swap", "temperature", "mode", "ladders", "cpu", "concurrency", "index", "llm", "pager", "config"} {
		assert.Contains(t, d, k)
	}
	conc := d["concurrency"].(map[string]any)
	assert.EqualValues(t, 2, conc["slots"])
	assert.EqualValues(t, 2, conc["free"])
	assert.Equal(t, true, d["index"].(map[string]any)["loaded"])
	assert.Equal(t, "CEMAF_RESOURCE_MEMORY_THRESHOLD", d["config"].(map[string]any)["memory_threshold"].(map[string]any)["variable"])

	resp, err = http.Get(ts.url + "/health/detailed")
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var doc any
	require.NoError(t, json.Unmarshal(raw, &doc))
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				assert.Regexp(t, snake, k, "key %s/%s", path, k)
				walk(path+"/"+k, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case string:
			assert.False(t, strings.HasPrefix(v, "0001-01-01"), "zero time at %s", path)
		}
	}
	walk("", doc)

	resp, err = http.Get(ts.url + "/metrics")
	require.NoError(t, err)
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "text/plain; version=0.0.4; charset=utf-8", resp.Header.Get("Content-Type"))
	types, err := promtext.Families(string(m)) // one valid page: no family twice
	require.NoError(t, err)
	for name, typ := range map[string]string{
		"cemaf_memory_used_percent":   "gauge",   // the device signals
		"cemaf_ladder_rung":           "gauge",   // the ladders
		"cemaf_runs_total":            "counter", // the runtime's run metrics
		"cemaf_node_duration_seconds": "histogram",
		"cemaf_mode":                  "gauge",
		"cemaf_serve_runs_total":      "counter", // serve's own
		"cemaf_llm_calls_in_flight":   "gauge",
	} {
		assert.Equal(t, typ, types[name], "family %s", name)
	}
	assert.Contains(t, string(m), `cemaf_http_requests_total{code="200"} 1`)
	assert.Contains(t, string(m), `cemaf_serve_runs_total{outcome="ok"} 1`)
	assert.Contains(t, string(m), `cemaf_runs_total{status="succeeded"} 2`) // the index's build and the question
	assert.Contains(t, string(m), "cemaf_index_loaded 1")
	assert.Contains(t, string(m), "cemaf_llm_client_loaded 0") // no endpoint: extractive answers
	require.NoError(t, ts.stop())
}

func TestServeAdmission(t *testing.T) {
	ts := startServer(t, nil)
	// 413: declared too large, and too large while streaming (no length).
	code, _, body := post(t, ts.url, `{"question":"`+strings.Repeat("x", 5000)+`"}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, code)
	assert.Contains(t, string(body), `"kind":"message_size"`)
	req, _ := http.NewRequest(http.MethodPost, ts.url+"/v1/runs", io.MultiReader(strings.NewReader(`{"question":"`), strings.NewReader(strings.Repeat("y", 5000))))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)

	// 400s.
	for _, b := range []string{`{"question":`, `{}`, `{"question":"   "}`, `{"question":"hi","extra":1}`, `[1,2]`, `{"question":"a"}{"question":"b"}`} {
		code, _, body := post(t, ts.url, b)
		assert.Equal(t, http.StatusBadRequest, code, b)
		assert.Contains(t, string(body), `"error"`)
	}

	// 503 with Retry-After under memory pressure.
	ts.setMemory(95)
	code, hdr, body := post(t, ts.url, `{"question":"swap?"}`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.NotEmpty(t, hdr.Get("Retry-After"))
	assert.Contains(t, string(body), "memory (memory_percent) limit exceeded: 95% > 85%")
	ts.setMemory(30)
	require.Eventually(t, func() bool {
		code, _, _ := post(t, ts.url, `{"question":"swap?"}`)
		return code == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond, "work resumes after the cooldown")
	require.NoError(t, ts.stop())
}

// blockingLLM answers only when released.
type blockingLLM struct {
	srv     *http.Server
	url     string
	release chan struct{}
	entered chan struct{}
}

func newBlockingLLM(t *testing.T) *blockingLLM {
	b := &blockingLLM{release: make(chan struct{}), entered: make(chan struct{}, 100)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b.url = "http://" + ln.Addr().String()
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		b.entered <- struct{}{}
		<-b.release
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"model":"m","choices":[{"message":{"role":"assistant","content":"held answer [1]"}}]}`)
	})}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func TestServeSlotsAndQueue(t *testing.T) {
	llm := newBlockingLLM(t)
	ts := startServer(t, func(o *serveOptions) { o.slots = 1; o.queue = 1; o.llmURL = llm.url })
	results := make(chan int, 3)
	go func() { code, _, _ := post(t, ts.url, `{"question":"first"}`); results <- code }()
	<-llm.entered // the first run holds the only slot
	go func() { code, _, _ := post(t, ts.url, `{"question":"second"}`); results <- code }()
	require.Eventually(t, func() bool { return ts.s.queued.Load() == 1 }, 5*time.Second, time.Millisecond, "the second waits in the queue")
	code, hdr, body := post(t, ts.url, `{"question":"third"}`)
	assert.Equal(t, http.StatusTooManyRequests, code, string(body))
	assert.Equal(t, "2", hdr.Get("Retry-After"))
	assert.Contains(t, string(body), "all 1 run slots are busy")
	close(llm.release)
	assert.Equal(t, http.StatusOK, <-results)
	assert.Equal(t, http.StatusOK, <-results)
	require.NoError(t, ts.stop())
}

func TestServeIdleUnloading(t *testing.T) {
	ts := startServer(t, func(o *serveOptions) { o.idleTimeout = time.Minute })
	code, _, _ := post(t, ts.url, `{"question":"under-voltage"}`)
	require.Equal(t, http.StatusOK, code)
	assert.False(t, ts.s.unloadIfIdle(time.Now()), "not idle long enough")
	assert.True(t, ts.s.unloadIfIdle(time.Now().Add(2*time.Minute)))
	ts.s.mu.Lock()
	assert.Nil(t, ts.s.index, "the index is released")
	ts.s.mu.Unlock()
	code, _, body := post(t, ts.url, `{"question":"under-voltage"}`)
	require.Equal(t, http.StatusOK, code, "rebuilt on the next request: %s", body)
	assert.Contains(t, string(body), "power-supply.md")
	require.NoError(t, ts.stop())
}

func TestServeDrainsInFlightRuns(t *testing.T) {
	llm := newBlockingLLM(t)
	ts := startServer(t, func(o *serveOptions) { o.llmURL = llm.url })
	result := make(chan int, 1)
	go func() { code, _, _ := post(t, ts.url, `{"question":"in flight"}`); result <- code }()
	<-llm.entered
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }() // SIGTERM
	require.Eventually(t, ts.s.draining.Load, 5*time.Second, time.Millisecond)
	select {
	case <-stopped:
		t.Fatal("serve returned before the in-flight run finished")
	default:
	}
	close(llm.release)
	assert.Equal(t, http.StatusOK, <-result, "the in-flight run gets its answer")
	assert.NoError(t, <-stopped)
}

// TestServeLoad sends many concurrent requests, a mix of valid, oversized
// and malformed ones, while memory pressure comes and goes: every response
// is the intended code, every accepted run gets its answer, the heap stays
// bounded, and the server shuts down cleanly.
func TestServeLoad(t *testing.T) {
	requests, workers := 400, 32
	if testing.Short() {
		requests, workers = 80, 8
	}
	ts := startServer(t, func(o *serveOptions) { o.slots = 2; o.queue = 4 })
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()

	var mu sync.Mutex
	got := map[string]map[int]int{} // kind → code → count
	var answered, bad atomic.Int64
	var maxHeap atomic.Uint64
	stopHeap := make(chan struct{})
	heapDone := make(chan struct{})
	go func() {
		defer close(heapDone)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > maxHeap.Load() {
				maxHeap.Store(v)
			}
			select {
			case <-stopHeap:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				kind, body := "valid", fmt.Sprintf(`{"question":"question %d: how hot may a Raspberry Pi get?"}`, i)
				switch i % 10 {
				case 7:
					kind, body = "oversized", `{"question":"`+strings.Repeat("z", 8000)+`"}`
				case 9:
					kind, body = "malformed", `{"question": 42`
				}
				resp, err := client.Post(ts.url+"/v1/runs", "application/json", bytes.NewReader([]byte(body)))
				if err != nil {
					bad.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mu.Lock()
				if got[kind] == nil {
					got[kind] = map[int]int{}
				}
				got[kind][resp.StatusCode]++
				mu.Unlock()
				if resp.StatusCode == http.StatusOK {
					var rr runResponse
					if json.Unmarshal(b, &rr) == nil && rr.Answer != nil && rr.Answer.Text != "" && len(rr.Passages) > 0 {
						answered.Add(1)
					} else {
						bad.Add(1)
					}
				}
			}
		})
	}
	for i := range requests {
		switch i {
		case requests / 3:
			ts.dev.memPercent.Store(95) // memory pressure for a while
		case requests / 2:
			ts.dev.memPercent.Store(30)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(stopHeap)
	<-heapDone

	t.Logf("responses: %v; answered %d; max heap %.1f MiB", got, answered.Load(), float64(maxHeap.Load())/(1<<20))
	assert.Zero(t, bad.Load(), "transport errors or 200s without an answer")
	for code := range got["valid"] {
		assert.Contains(t, []int{http.StatusOK, http.StatusTooManyRequests, http.StatusServiceUnavailable}, code)
	}
	assert.Equal(t, map[int]int{http.StatusRequestEntityTooLarge: requests / 10}, got["oversized"])
	for code := range got["malformed"] {
		assert.Contains(t, []int{http.StatusBadRequest, http.StatusTooManyRequests, http.StatusServiceUnavailable}, code)
	}
	assert.Positive(t, got["valid"][http.StatusOK])
	assert.EqualValues(t, got["valid"][http.StatusOK], answered.Load(), "every accepted run got its answer")
	assert.Less(t, maxHeap.Load(), uint64(96<<20), "heap bounded")
	require.NoError(t, ts.stop())
}

// When the drain timeout passes, the runs still in flight are cancelled and
// their clients get a clear 503, not a closed connection; the answer node
// records why it stopped, not an unreachable endpoint.
func TestServeDrainTimeoutAnswers503(t *testing.T) {
	llm := newBlockingLLM(t)
	defer close(llm.release)
	ts := startServer(t, func(o *serveOptions) { o.llmURL = llm.url; o.drainTimeout = 50 * time.Millisecond })
	type result struct {
		code int
		hdr  http.Header
		body []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Post(ts.url+"/v1/runs", "application/json", strings.NewReader(`{"question":"in flight"}`))
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, resp.Header, b, err}
	}()
	<-llm.entered
	require.NoError(t, ts.stop())
	r := <-got
	require.NoError(t, r.err, "the client gets an answer")
	assert.Equal(t, http.StatusServiceUnavailable, r.code, "%s", r.body)
	assert.NotEmpty(t, r.hdr.Get("Retry-After"))
	var rr runResponse
	require.NoError(t, json.Unmarshal(r.body, &rr))
	assert.Equal(t, errDrainTimeout.Error(), rr.Error)
	for _, n := range rr.Nodes {
		assert.NotContains(t, n.Error, "unreachable", n.ID)
	}
}

func TestRunRequestParsing(t *testing.T) {
	tests := []struct {
		body string
		want string // the question, or the error
		code int
	}{
		{`{"question":"  How hot?  "}`, "How hot?", 0},
		{`{"question":"a"}` + "\n\t ", "a", 0},
		{`{"question":"a"}{"question":"b"}`, "more than one JSON value", http.StatusBadRequest},
		{`{"question":"a"} {"question":"b"}`, "more than one JSON value", http.StatusBadRequest},
		{`{"question":"a"} x`, "more than one JSON value", http.StatusBadRequest},
		{`{"question":"a"}]`, "more than one JSON value", http.StatusBadRequest},
		{`{"question":"a","question":"b"}`, "b", 0},
		{`{"question":1}`, "malformed JSON", http.StatusBadRequest},
		{`{"question":null}`, `missing "question"`, http.StatusBadRequest},
		{`{"q":"a"}`, `unknown field "q"`, http.StatusBadRequest},
		{`"a"`, "malformed JSON", http.StatusBadRequest},
		{``, "malformed JSON", http.StatusBadRequest},
		{`{"question":"` + strings.Repeat("é", 2049) + `"}`, "question longer than 4096 bytes", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.body[:min(len(tt.body), 40)], func(t *testing.T) {
			req, err := parseRunRequest([]byte(tt.body))
			if tt.code == 0 {
				require.Nil(t, err)
				assert.Equal(t, tt.want, req.Question)
				return
			}
			require.NotNil(t, err)
			assert.Equal(t, tt.code, err.code)
			assert.Contains(t, err.msg, tt.want)
		})
	}
}

// FuzzParseRunRequest: no body panics the parser; an accepted body yields a
// trimmed, non-empty, valid UTF-8 question within the bound, which a body
// built from it yields again.
func FuzzParseRunRequest(f *testing.F) {
	for _, s := range []string{`{"question":"How hot?"}`, `{"question":"a"}{"question":"b"}`, `{"question":"\u00e9\ud800"}`,
		`{"question":"` + strings.Repeat("x", 5000) + `"}`, `[1,2]`, `{"question":" "}`, "{\"question\":\"a\xff\"}", `nul`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseRunRequest(body)
		if err != nil {
			if err.code != http.StatusBadRequest || err.msg == "" {
				t.Fatalf("refusal %d %q", err.code, err.msg)
			}
			return
		}
		q := req.Question
		if q == "" || q != strings.TrimSpace(q) || len(q) > maxQuestionBytes || !utf8.ValidString(q) {
			t.Fatalf("accepted question %q", q)
		}
		again, _ := json.Marshal(runRequest{Question: q})
		req2, err := parseRunRequest(again)
		if err != nil || req2.Question != q {
			t.Fatalf("%q does not round-trip: %v", q, err)
		}
	})
}
