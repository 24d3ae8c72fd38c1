package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeLLM is an OpenAI-compatible chat-completions server on 127.0.0.1.
type fakeLLM struct {
	*httptest.Server
	mu       sync.Mutex
	requests []chatRequest
	headers  []http.Header
	failures atomic.Int32 // answer 503 this many times first
}

func newFakeLLM(t *testing.T) *fakeLLM { return newFakeLLMAt(t, "127.0.0.1:0") }

// newFakeLLMAt starts the fake LLM at addr: a resumed run must find its
// endpoint where the run recorded it.
func newFakeLLMAt(t *testing.T, addr string) *fakeLLM {
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	f := &fakeLLM{}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var req chatRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, req)
		f.headers = append(f.headers, r.Header.Clone())
		f.mu.Unlock()
		if f.failures.Add(-1) >= 0 {
			http.Error(w, `{"error":{"message":"model loading"}}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"model": "tiny-q4",
			"choices": []map[string]any{{"index": 0, "message": map[string]string{"role": "assistant",
				"content": "It slows down between steps when hot and runs fewer nodes when short of memory [1]."}}},
		})
	}))
	f.Listener.Close()
	f.Listener = ln
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func TestLLMAnswer(t *testing.T) {
	llm := newFakeLLM(t)
	llm.failures.Store(2) // two 503s, then an answer: retries succeed
	env := []string{"CEMAF_LLM_URL=" + llm.URL, "CEMAF_LLM_MODEL=tiny-q4", "CEMAF_LLM_API_KEY=secret"}
	code, out, errOut := runCLI(t, env, "run", "--ephemeral", "--json", "--llm-backoff", "5ms")
	require.Equal(t, exitOK, code, errOut)
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	require.NotNil(t, s.Answer)
	assert.Contains(t, s.Answer.Text, "fewer nodes")
	assert.Equal(t, "llm tiny-q4 at "+llm.URL+"/v1/chat/completions", s.Answer.By)
	assert.Equal(t, []string{"[1] cemaf-overview.md"}, s.Answer.Sources)
	for _, n := range s.Nodes {
		if n.ID == "answer" {
			assert.Equal(t, 3, n.Attempts)
		}
	}

	llm.mu.Lock()
	defer llm.mu.Unlock()
	require.Len(t, llm.requests, 3)
	req := llm.requests[2]
	assert.Equal(t, "tiny-q4", req.Model)
	require.Len(t, req.Messages, 2)
	assert.Equal(t, "system", req.Messages[0].Role)
	assert.Contains(t, req.Messages[1].Content, "Question: What does cemaf do")
	assert.Contains(t, req.Messages[1].Content, "[1] (cemaf-overview.md)")
	assert.Equal(t, "Bearer secret", llm.headers[2].Get("Authorization"))
	key := llm.headers[0].Get("Idempotency-Key")
	assert.True(t, strings.HasSuffix(key, "/answer"), key)
	assert.Equal(t, key, llm.headers[2].Get("Idempotency-Key"), "the same key on every attempt")
}

func TestUnreachableLLM(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	storage := t.TempDir()
	code, out, errOut := runCLI(t, []string{"CEMAF_LLM_URL=" + url}, "run", "--storage", storage, "--llm-backoff", "5ms")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "answer     FAILED after 3 attempts")
	assert.Contains(t, errOut, "LLM endpoint "+url+"/v1/chat/completions unreachable")
	assert.Contains(t, errOut, "the report keeps the retrieved passages")
	assert.Contains(t, out, "(no answer)")
	reports, _ := filepath.Glob(filepath.Join(storage, "reports", "*.md"))
	require.Len(t, reports, 1)
	report, _ := os.ReadFile(reports[0])
	assert.Contains(t, string(report), "No answer: the answer step failed")
	assert.Contains(t, string(report), "cemaf-overview.md", "the passages are kept")
}

// TestResumeAfterInterruption interrupts a run while the LLM is answering,
// then resumes it: the finished nodes are not run again.
func TestResumeAfterInterruption(t *testing.T) {
	storage := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // read the prompt, as a real server does
		cancel()                    // the operator presses ctrl-c while the model thinks
		<-r.Context().Done()
	}))
	defer hang.Close()
	var out, errb strings.Builder
	code := cli(ctx, []string{"run", "--storage", storage}, []string{"CEMAF_LLM_URL=" + hang.URL}, &out, &errb)
	require.Equal(t, exitError, code, errb.String())
	assert.Contains(t, errb.String(), "resume with: pi-agent run --resume ")
	id := errb.String()[strings.Index(errb.String(), "--resume ")+len("--resume "):]
	id = strings.Fields(id)[0]
	id = strings.TrimSuffix(id, ")")

	code, listing, _ := runCLI(t, nil, "runs", "--storage", storage)
	require.Equal(t, exitOK, code)
	assert.Contains(t, listing, id)
	assert.Contains(t, listing, "cancelled")

	assert.Contains(t, errb.String(), "--resume "+id+" --storage "+storage+")", "the hint names the storage directory")
	assert.Contains(t, listing, "pi-agent run --resume "+id+" --storage "+storage)

	hang.Close()
	llm := newFakeLLMAt(t, strings.TrimPrefix(hang.URL, "http://"))
	code, _, errOut := runCLI(t, []string{"CEMAF_LLM_URL=" + llm.URL}, "run", "--storage", storage, "--resume", id)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, errOut, "pi-agent: resuming run "+id+": 8 of 10 nodes already done")
	assert.Contains(t, errOut, "[9/10] answer ", "the numbering continues")
	assert.Contains(t, errOut, "[10/10] report ")
	assert.NotContains(t, errOut, "[1/10]")
	raw, err := os.ReadFile(filepath.Join(storage, "reports", id+".md"))
	require.NoError(t, err)
	assert.Contains(t, string(raw), "(answered by llm")
}

// A resumed run reports like a fresh one in JSON.
func TestResumeJSON(t *testing.T) {
	storage := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		cancel()
		<-r.Context().Done()
	}))
	defer hang.Close()
	var out, errb strings.Builder
	code := cli(ctx, []string{"run", "--storage", storage, "--json"}, []string{"CEMAF_LLM_URL=" + hang.URL}, &out, &errb)
	require.Equal(t, exitError, code, errb.String())
	var first runSummary
	require.NoError(t, json.Unmarshal([]byte(out.String()), &first))
	id := first.RunID

	hang.Close()
	llm := newFakeLLMAt(t, strings.TrimPrefix(hang.URL, "http://"))
	code, outJSON, errOut := runCLI(t, nil, "run", "--storage", storage, "--resume", id, "--json")
	require.Equal(t, exitOK, code, errOut)
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(outJSON), &s))
	assert.True(t, s.Resumed)
	llm.mu.Lock()
	assert.Len(t, llm.requests, 1, "with no CEMAF_LLM_URL, the resume calls the endpoint the run recorded")
	llm.mu.Unlock()
	restored := 0
	for _, n := range s.Nodes {
		if n.Restored {
			restored++
		}
	}
	assert.Equal(t, 8, restored, "load, chunk, 4 index nodes, question and retrieve were done")
	require.NotNil(t, s.Answer)
	assert.Contains(t, s.Answer.By, "llm")
}
