package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cemaf-go/cemaf/internal/promtext"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writes records every Write, to tell streamed output from output written
// at once.
type writes struct {
	mu sync.Mutex
	w  []string
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.w = append(w.w, string(p))
	return len(p), nil
}

func (w *writes) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.w, "")
}

func TestStreamRun(t *testing.T) {
	llm := newFakeLLM(t)
	var out writes
	var errb strings.Builder
	code := cli(context.Background(), []string{"run", "--ephemeral", "--stream"}, []string{"CEMAF_LLM_URL=" + llm.URL, "CEMAF_LLM_MODEL=tiny"}, &out, &errb)
	require.Equal(t, exitOK, code, errb.String())
	calls := llm.calls()
	require.Len(t, calls, 1)
	assert.True(t, calls[0].Stream, "--stream asks for a streamed answer")

	text := out.String()
	assert.True(t, strings.HasPrefix(text, "Q: What does cemaf do"), text)
	assert.Equal(t, 1, strings.Count(text, fakeAnswer), "the answer is printed once, as it streamed:\n%s", text)
	assert.Contains(t, text, "[1] cemaf-overview.md")
	assert.Contains(t, text, "(llm tiny at ")
	tokens := 0
	for _, w := range out.w {
		if strings.Contains(fakeAnswer, w) && strings.TrimSpace(w) != "" {
			tokens++
		}
	}
	assert.Greater(t, tokens, 1, "the tokens were written as they arrived: %q", out.w)
	assert.Contains(t, errb.String(), "[10/10] report", "then the normal report")

	// The extractive answer streams too, in one piece.
	code, plain, errOut := runCLI(t, nil, "run", "--ephemeral", "--stream")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, plain, "(extractive)")
	assert.Equal(t, 1, strings.Count(plain, "Q: "), plain)

	code, _, errOut = runCLI(t, nil, "run", "--ephemeral", "--stream", "--json")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--stream and --json exclude each other")
}

// TestModeProfiles runs with the board hot: the answer's call uses the
// high_temp profile and its record says so.
func TestModeProfiles(t *testing.T) {
	llm := newFakeLLM(t)
	sensor := filepath.Join(t.TempDir(), "temp")
	require.NoError(t, os.WriteFile(sensor, []byte("76000\n"), 0o600)) // 76 °C
	env := []string{"CEMAF_LLM_URL=" + llm.URL, "CEMAF_LLM_MODEL=big", "CEMAF_LLM_MAX_TOKENS=512",
		"CEMAF_LLM_MODEL_HIGH_TEMP=small", "CEMAF_LLM_MAX_TOKENS_HIGH_TEMP=64", "CEMAF_LLM_MAX_CONCURRENT_HIGH_TEMP=1",
		"CEMAF_RESOURCE_THERMAL_SENSOR_PATH=" + sensor, "CEMAF_RESOURCE_TEMP_ADAPT_C=70", "CEMAF_RESOURCE_TEMP_THRESHOLD=95"}
	code, out, errOut := runCLI(t, env, "run", "--ephemeral", "--json")
	require.Equal(t, exitOK, code, errOut)
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	require.NotNil(t, s.Answer)
	require.NotNil(t, s.Answer.LLM)
	assert.Equal(t, "high_temp", s.Answer.LLM.Mode)
	assert.Equal(t, "small", s.Answer.LLM.Model)
	assert.Contains(t, s.Answer.By, "(mode high_temp)")
	calls := llm.calls()
	require.Len(t, calls, 1)
	assert.Equal(t, "small", calls[0].Model)
	assert.Equal(t, 64, calls[0].MaxTokens)
	assert.Equal(t, "small", s.Inputs["llm_model_high_temp"], "the per-mode model is a recorded input")

	// Cool: the base profile.
	require.NoError(t, os.WriteFile(sensor, []byte("40000\n"), 0o600))
	code, out, errOut = runCLI(t, env, "run", "--ephemeral", "--json")
	require.Equal(t, exitOK, code, errOut)
	s = runSummary{}
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	require.NotNil(t, s.Answer.LLM)
	assert.NotEqual(t, "high_temp", s.Answer.LLM.Mode)
	calls = llm.calls()
	require.Len(t, calls, 2)
	assert.Equal(t, "big", calls[1].Model)
	assert.Equal(t, 512, calls[1].MaxTokens)
}

func TestLLMVariablesValidated(t *testing.T) {
	env := []string{"CEMAF_LLM_URL=http://127.0.0.1:1", "CEMAF_LLM_MODEL_HOT=x", "CEMAF_LLM_MAX_TOKENS_HIGH_TEMP=abc",
		"CEMAF_LLM_MAX_CONCURRENT=0", "CEMAF_LLM_MODEL_LOW_MEMORY="}
	for _, cmd := range []string{"run", "serve"} {
		code, _, errOut := runCLI(t, env, cmd, "--storage", t.TempDir(), "--addr", "127.0.0.1:0")
		if cmd == "run" {
			code, _, errOut = runCLI(t, env, cmd, "--storage", t.TempDir())
		}
		assert.Equal(t, exitError, code, cmd)
		assert.Contains(t, errOut, `CEMAF_LLM_MODEL_HOT = "x" from environment: "HOT" is not a device mode; accepted: CEMAF_LLM_MODEL_NORMAL, CEMAF_LLM_MODEL_LOW_MEMORY, CEMAF_LLM_MODEL_HIGH_TEMP, CEMAF_LLM_MODEL_LOW_DISK`, cmd)
		assert.Contains(t, errOut, `CEMAF_LLM_MAX_TOKENS_HIGH_TEMP = "abc" from environment: not an integer; accepted: an integer in [1, 1048576]`, cmd)
		assert.Contains(t, errOut, `CEMAF_LLM_MAX_CONCURRENT = "0" from environment: out of range; accepted: an integer in [1, 256]`, cmd)
		assert.Contains(t, errOut, `CEMAF_LLM_MODEL_LOW_MEMORY = "" from environment: empty`, cmd)
	}
}

// TestClarifyAcrossProcesses: a question nothing matches makes the run
// wait for input; the process exits saying how to answer; pi-agent runs
// lists it as waiting with its question; a new process answers it.
func TestClarifyAcrossProcesses(t *testing.T) {
	code, _, errOut := runCLI(t, nil, "run", "--ephemeral", "--clarify")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--clarify and --ephemeral exclude each other")

	storage := t.TempDir()
	c := startPiAgent(t, nil, "run", "--storage", storage, "--clarify", "--question", "zyzzyva quokka?")
	require.Equal(t, exitWaiting, c.exitCode(), c.stderr())
	out := c.stderr()
	assert.Contains(t, out, `answer     waiting for input: No passage of the corpus matches "zyzzyva quokka?". Ask it in other words.`)
	m := regexp.MustCompile(`answer with: pi-agent run --resume (\S+) --storage (\S+) --input 'TEXT'`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	id := m[1]
	assert.Equal(t, storage, m[2])
	assert.Contains(t, out, "is waiting for input")
	assert.Contains(t, out, "(no answer yet: the run waits for input)")

	code, listing, _ := runCLI(t, nil, "runs", "--storage", storage)
	require.Equal(t, exitOK, code)
	assert.Regexp(t, regexp.QuoteMeta(id)+`\s+waiting\s+8/10`, listing)
	assert.Contains(t, listing, id+` waits for input (node answer): No passage of the corpus matches "zyzzyva quokka?"`)
	assert.Contains(t, listing, "pi-agent run --resume "+id+" --storage "+storage+" --input 'TEXT'")

	// Resuming without the input says what is asked; --input without
	// --resume and on a run that does not wait are refused.
	code, _, errOut = runCLI(t, nil, "run", "--storage", storage, "--resume", id)
	assert.Equal(t, exitWaiting, code)
	assert.Contains(t, errOut, "answer asks: No passage")
	code, _, errOut = runCLI(t, nil, "run", "--storage", storage, "--input", "x")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--input answers a waiting run: give it with --resume ID")

	// Other words that match nothing either: asked again.
	code, _, errOut = runCLI(t, nil, "run", "--storage", storage, "--resume", id, "--input", "xylophone wombat")
	assert.Equal(t, exitWaiting, code, errOut)
	assert.Contains(t, errOut, `matches "xylophone wombat" either`)

	a := startPiAgent(t, nil, "run", "--storage", storage, "--resume", id, "--input", "What does PMIC-Die read on a Jetson Nano?", "--stream")
	require.Equal(t, exitOK, a.exitCode(), a.stderr())
	out = a.stderr()
	assert.Contains(t, out, "Q: What does PMIC-Die read on a Jetson Nano?", "streamed, under the words given")
	assert.NotContains(t, out, "Q: zyzzyva")
	assert.Contains(t, out, "jetson-thermal.md")
	assert.Contains(t, out, "[9/10] answer ")
	raw, err := os.ReadFile(filepath.Join(storage, "reports", id+".md"))
	require.NoError(t, err)
	assert.Contains(t, string(raw), "Question: What does PMIC-Die read on a Jetson Nano?")

	code, listing, _ = runCLI(t, nil, "runs", "--storage", storage)
	require.Equal(t, exitOK, code)
	assert.Regexp(t, regexp.QuoteMeta(id)+`\s+succeeded\s+10/10`, listing)
	code, _, errOut = runCLI(t, nil, "run", "--storage", storage, "--resume", id, "--input", "again")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "the run already finished")
}

// sse is one server-sent event.
type sse struct {
	name string
	data string
}

// postSSE posts body to path and reads the server-sent events of the
// answer.
func postSSE(t *testing.T, url, body string) (*http.Response, []sse) {
	t.Helper()
	return postSSEFunc(t, url, body, func(sse) {})
}

// postSSEFunc is postSSE calling each with every event as it is read.
func postSSEFunc(t *testing.T, url, body string, each func(sse)) (*http.Response, []sse) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var evs []sse
	var cur sse
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		case line == "":
			each(cur)
			evs = append(evs, cur)
			cur = sse{}
		}
	}
	require.NoError(t, sc.Err())
	return resp, evs
}

func TestServeStreams(t *testing.T) {
	llm := newFakeLLM(t)
	llm.hold = make(chan struct{})
	ts := startServer(t, func(o *serveOptions) { o.llmURL = llm.URL; o.llmModel = "tiny" })
	// The first token reaches the client while the model holds the rest.
	first := ""
	resp, evs := postSSEFunc(t, ts.url+"/v1/runs", `{"question":"What does cemaf do when hot?","stream":true}`, func(e sse) {
		if e.name == "token" && first == "" {
			first = e.data
			close(llm.hold)
		}
	})
	assert.Equal(t, `{"text":"It "}`, first)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	var text strings.Builder
	tokens, progress := 0, map[string]string{}
	require.NotEmpty(t, evs)
	for _, e := range evs[:len(evs)-1] {
		switch e.name {
		case "token":
			var d struct{ Text string }
			require.NoError(t, json.Unmarshal([]byte(e.data), &d))
			text.WriteString(d.Text)
			tokens++
		case "progress":
			var p sseProgress
			require.NoError(t, json.Unmarshal([]byte(e.data), &p))
			progress[p.Node] = p.Status
		default:
			t.Errorf("unexpected event %q", e.name)
		}
	}
	assert.Equal(t, fakeAnswer, text.String())
	assert.Greater(t, tokens, 1, "the tokens came as they were generated")
	assert.Equal(t, map[string]string{"question": "succeeded", "retrieve": "succeeded", "answer": "succeeded"}, progress)
	last := evs[len(evs)-1]
	require.Equal(t, "result", last.name)
	var res sseResult
	require.NoError(t, json.Unmarshal([]byte(last.data), &res))
	assert.Equal(t, http.StatusOK, res.Code)
	require.NotNil(t, res.Answer)
	assert.Equal(t, fakeAnswer, res.Answer.Text)
	assert.NotEmpty(t, res.Passages)
	require.Len(t, llm.calls(), 1)
	assert.True(t, llm.calls()[0].Stream)

	// Without "stream", plain JSON.
	code, hdr, body := post(t, ts.url, `{"question":"What does cemaf do when hot?"}`)
	require.Equal(t, http.StatusOK, code, string(body))
	assert.Equal(t, "application/json", hdr.Get("Content-Type"))
	assert.False(t, llm.calls()[1].Stream)

	// Both calls are on /metrics, with the client's gauges.
	resp, err := http.Get(ts.url + "/metrics")
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, err = promtext.Families(string(page))
	require.NoError(t, err)
	for _, want := range []string{
		`cemaf_llm_calls_total{model="tiny",result="ok"} 2`,
		`cemaf_llm_call_duration_seconds_count{model="tiny"} 2`,
		"cemaf_llm_client_loaded 1",
		"cemaf_llm_calls_in_flight 0",
		"cemaf_llm_attempts_total 2",
		"cemaf_llm_retries_total 0",
	} {
		assert.Contains(t, string(page), want+"\n")
	}
	// Idle unloading drops the client; its counters stay.
	require.True(t, ts.s.unload("idle"))
	resp, err = http.Get(ts.url + "/metrics")
	require.NoError(t, err)
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"cemaf_llm_client_loaded 0", "cemaf_llm_attempts_total 2", `cemaf_llm_calls_total{model="tiny",result="ok"} 2`} {
		assert.Contains(t, string(page), want+"\n")
	}
	require.NoError(t, ts.stop())
}

func TestServeInput(t *testing.T) {
	ts := startServer(t, nil)
	code, _, body := post(t, ts.url, `{"question":"zyzzyva quokka?","clarify":true}`)
	require.Equal(t, http.StatusAccepted, code, string(body))
	var rr runResponse
	require.NoError(t, json.Unmarshal(body, &rr))
	assert.Equal(t, "waiting", rr.Status)
	require.Len(t, rr.Waiting, 1)
	assert.Equal(t, "answer", rr.Waiting[0].Node)
	assert.Contains(t, rr.Waiting[0].Text, `matches "zyzzyva quokka?"`)
	assert.Nil(t, rr.Answer)

	input := func(id, body string) (int, []byte) {
		resp, err := http.Post(ts.url+"/v1/runs/"+id+"/input", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		var b strings.Builder
		_, err = bufio.NewReader(resp.Body).WriteTo(&b)
		require.NoError(t, err)
		return resp.StatusCode, []byte(b.String())
	}
	code, body = input(rr.RunID, `{"input":""}`)
	assert.Equal(t, http.StatusBadRequest, code, string(body))
	code, body = input(rr.RunID, `{"input":"under-voltage","bogus":1}`)
	assert.Equal(t, http.StatusBadRequest, code, string(body))

	resp, evs := postSSE(t, ts.url+"/v1/runs/"+rr.RunID+"/input", `{"input":"under-voltage","stream":true}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.NotEmpty(t, evs)
	last := evs[len(evs)-1]
	require.Equal(t, "result", last.name)
	var res sseResult
	require.NoError(t, json.Unmarshal([]byte(last.data), &res))
	assert.Equal(t, http.StatusOK, res.Code, last.data)
	assert.Equal(t, rr.RunID, res.RunID)
	assert.Equal(t, "under-voltage", res.Question)
	require.NotNil(t, res.Answer)
	assert.Equal(t, "power-supply.md", res.Passages[0].Name)

	code, body = input(rr.RunID, `{"input":"under-voltage"}`)
	assert.Equal(t, http.StatusNotFound, code, "answered once")
	assert.Contains(t, string(body), "is waiting for input")
	require.NoError(t, ts.stop())
}

// TestStreamRestart: a stream cut after its first word is retried; the
// printed answer and the SSE client are told it starts over.
func TestStreamRestart(t *testing.T) {
	llm := newFakeLLM(t)
	llm.cut.Store(true)
	code, out, errOut := runCLI(t, []string{"CEMAF_LLM_URL=" + llm.URL}, "run", "--ephemeral", "--stream", "--llm-backoff", "1ms")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "It \n[the answer was cut off; starting over: attempt 2]\n"+fakeAnswer+"\n", out)
	assert.Len(t, llm.calls(), 2)

	llm.cut.Store(true)
	ts := startServer(t, func(o *serveOptions) { o.llmURL = llm.URL })
	_, evs := postSSE(t, ts.url+"/v1/runs", `{"question":"What does cemaf do when hot?","stream":true}`)
	var names []string
	var text strings.Builder
	for _, e := range evs {
		if e.name == "restart" {
			names = append(names, e.name)
			text.Reset()
		}
		if e.name == "token" {
			var d struct{ Text string }
			require.NoError(t, json.Unmarshal([]byte(e.data), &d))
			text.WriteString(d.Text)
		}
	}
	assert.Equal(t, []string{"restart"}, names)
	assert.Equal(t, fakeAnswer, text.String(), "after the restart, the whole answer")
	require.NoError(t, ts.stop())
}

func TestWaitingRunsBounded(t *testing.T) {
	var w waitingRuns
	t0 := time.Unix(1e9, 0)
	for i := range maxWaitingRuns + 10 {
		w.add(fmt.Sprint("run-", i), waitingRun{question: "q", since: t0.Add(time.Duration(i) * time.Second)}, time.Hour)
	}
	assert.Equal(t, maxWaitingRuns, w.len(), "past the bound the oldest are forgotten")
	_, ok := w.take("run-0", t0.Add(time.Hour), time.Hour)
	assert.False(t, ok, "the oldest was forgotten")
	r, ok := w.take("run-10", t0.Add(time.Hour), time.Hour)
	require.True(t, ok)
	assert.Equal(t, "q", r.question)
	_, ok = w.take("run-10", t0.Add(time.Hour), time.Hour)
	assert.False(t, ok, "taken once")
	_, ok = w.take("run-11", t0.Add(2*time.Hour), time.Hour)
	assert.False(t, ok, "waited longer than the timeout")
	w.add("late", waitingRun{since: t0.Add(10 * time.Hour)}, time.Hour)
	assert.Equal(t, 1, w.len(), "adding forgets the expired ones")
}

// A run's input refused at admission (every slot busy) leaves it waiting.
func TestServeInputRefusedStillWaits(t *testing.T) {
	llm := newBlockingLLM(t)
	ts := startServer(t, func(o *serveOptions) { o.slots = 1; o.llmURL = llm.url })
	code, _, body := post(t, ts.url, `{"question":"zyzzyva quokka?","clarify":true}`)
	require.Equal(t, http.StatusAccepted, code, string(body))
	var rr runResponse
	require.NoError(t, json.Unmarshal(body, &rr))

	held := make(chan int, 1)
	go func() { code, _, _ := post(t, ts.url, `{"question":"under-voltage"}`); held <- code }()
	<-llm.entered // that run holds the only slot
	inputURL := ts.url + "/v1/runs/" + rr.RunID + "/input"
	resp, err := http.Post(inputURL, "application/json", strings.NewReader(`{"input":"under-voltage"}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	close(llm.release)
	assert.Equal(t, http.StatusOK, <-held)

	resp, err = http.Post(inputURL, "application/json", strings.NewReader(`{"input":"under-voltage"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "still waiting after the refusal")
	var res runResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&res))
	require.NotNil(t, res.Answer)
	assert.Equal(t, "held answer [1]", res.Answer.Text)
	require.NoError(t, ts.stop())
}

// The per-mode models and --clarify are recorded inputs: a resume that
// changes them is refused, naming the variable or flag; one that leaves
// them out takes the recorded ones.
func TestResumeChecksModeModels(t *testing.T) {
	storage := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		cancel()
		<-r.Context().Done()
	}))
	defer hang.Close()
	env := []string{"CEMAF_LLM_URL=" + hang.URL, "CEMAF_LLM_MODEL=tiny", "CEMAF_LLM_MODEL_HIGH_TEMP=small"}
	var out, errb strings.Builder
	code := cli(ctx, []string{"run", "--storage", storage, "--json"}, env, &out, &errb)
	require.Equal(t, exitError, code, errb.String())
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(out.String()), &s))
	id := s.RunID

	code, _, errOut := runCLI(t, []string{"CEMAF_LLM_URL=" + hang.URL, "CEMAF_LLM_MODEL=tiny", "CEMAF_LLM_MODEL_HIGH_TEMP=other"}, "run", "--storage", storage, "--resume", id)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, `llm_model_high_temp "small" -> "other"`)
	assert.Contains(t, errOut, "leave out or set back CEMAF_LLM_MODEL_HIGH_TEMP")
	code, _, errOut = runCLI(t, []string{"CEMAF_LLM_URL=" + hang.URL, "CEMAF_LLM_MODEL=tiny"}, "run", "--storage", storage, "--resume", id)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, `llm_model_high_temp not given (was "small")`)
	code, _, errOut = runCLI(t, nil, "run", "--storage", storage, "--resume", id, "--clarify")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "leave out or set back --clarify")

	hang.Close()
	llm := newFakeLLMAt(t, strings.TrimPrefix(hang.URL, "http://"))
	code, outJSON, errOut := runCLI(t, nil, "run", "--storage", storage, "--resume", id, "--json")
	require.Equal(t, exitOK, code, errOut)
	s = runSummary{}
	require.NoError(t, json.Unmarshal([]byte(outJSON), &s))
	assert.Equal(t, "small", s.Inputs["llm_model_high_temp"], "the recorded per-mode model")
	assert.Len(t, llm.calls(), 1)
}
