package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeRequest is what the fake LLM reads of a chat-completions request.
type fakeRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	Stream    bool `json:"stream"`
	MaxTokens int  `json:"max_tokens"`
}

// fakeAnswer is the fake LLM's answer.
const fakeAnswer = "It slows down between steps when hot and runs fewer nodes when short of memory [1]."

// fakeLLM is an OpenAI-compatible chat-completions server on 127.0.0.1: a
// plain or streamed (server-sent events, a word an event) answer.
type fakeLLM struct {
	*httptest.Server
	mu       sync.Mutex
	requests []fakeRequest
	headers  []http.Header
	failures atomic.Int32 // answer 503 this many times first
	// hold, when set, holds a streamed answer after its first word until
	// it is closed.
	hold chan struct{}
	// cut, when set, makes the next streamed answer end after its first
	// word, as a dropped connection does.
	cut atomic.Bool
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
		var req fakeRequest
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
		if req.Stream {
			w.Header().Set("Content-Type", "text/event-stream")
			for i, word := range strings.SplitAfter(fakeAnswer, " ") {
				b, _ := json.Marshal(map[string]any{"model": req.Model, "choices": []any{map[string]any{"index": 0, "delta": map[string]string{"content": word}}}})
				fmt.Fprintf(w, "data: %s\n\n", b)
				w.(http.Flusher).Flush()
				if i == 0 && f.cut.CompareAndSwap(true, false) {
					return
				}
				if i == 0 && f.hold != nil {
					select {
					case <-f.hold:
					case <-r.Context().Done():
						return
					}
				}
			}
			fmt.Fprintf(w, "data: {\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n", req.Model)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"model": req.Model,
			"choices": []map[string]any{{"index": 0, "finish_reason": "stop", "message": map[string]string{"role": "assistant",
				"content": fakeAnswer}}},
		})
	}))
	f.Listener.Close()
	f.Listener = ln
	f.Start()
	t.Cleanup(f.Close)
	return f
}

// calls returns the requests received so far.
func (f *fakeLLM) calls() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...)
}

func TestLLMAnswer(t *testing.T) {
	llm := newFakeLLM(t)
	llm.failures.Store(2) // two 503s, then an answer: the client's retries succeed
	env := []string{"CEMAF_LLM_URL=" + llm.URL, "CEMAF_LLM_MODEL=tiny-q4", "CEMAF_LLM_API_KEY=secret"}
	code, out, errOut := runCLI(t, env, "run", "--ephemeral", "--json", "--llm-backoff", "5ms")
	require.Equal(t, exitOK, code, errOut)
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	require.NotNil(t, s.Answer)
	assert.Contains(t, s.Answer.Text, "fewer nodes")
	assert.True(t, strings.HasPrefix(s.Answer.By, "llm tiny-q4 at "+llm.URL+"/v1/chat/completions (mode "), s.Answer.By)
	assert.Equal(t, []string{"[1] cemaf-overview.md"}, s.Answer.Sources)
	require.NotNil(t, s.Answer.LLM, "the call's record is kept")
	assert.Equal(t, 3, s.Answer.LLM.Attempts)
	assert.Equal(t, "tiny-q4", s.Answer.LLM.Model)
	assert.NotEmpty(t, s.Answer.LLM.Mode, "the record names the mode in force")
	assert.Contains(t, s.Answer.By, "(mode "+s.Answer.LLM.Mode+")")

	llm.mu.Lock()
	defer llm.mu.Unlock()
	require.Len(t, llm.requests, 3)
	req := llm.requests[2]
	assert.Equal(t, "tiny-q4", req.Model)
	assert.False(t, req.Stream, "not streamed without --stream")
	require.Len(t, req.Messages, 2)
	assert.Equal(t, "system", req.Messages[0].Role)
	assert.Contains(t, req.Messages[1].Content, "Question: What does cemaf do")
	assert.Contains(t, req.Messages[1].Content, "[1] (cemaf-overview.md)")
	assert.Equal(t, "Bearer secret", llm.headers[2].Get("Authorization"))
	key := llm.headers[0].Get("Idempotency-Key")
	assert.True(t, strings.HasSuffix(key, "/answer"), key)
	assert.Equal(t, key, llm.headers[2].Get("Idempotency-Key"), "the same key on every attempt")
}

// TestUnreachableLLM: the answer node fails after the client's attempts,
// so the run fails and can be resumed; the report keeps the passages, and
// the hint resumes it.
func TestUnreachableLLM(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	url := "http://" + addr
	ln.Close() // nothing listens there now
	storage := t.TempDir()
	code, out, errOut := runCLI(t, []string{"CEMAF_LLM_URL=" + url}, "run", "--storage", storage, "--llm-backoff", "5ms")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "answer     FAILED after 1 attempt")
	assert.Contains(t, errOut, "(after 3 attempts)")
	assert.Contains(t, errOut, url+"/v1/chat/completions")
	assert.Contains(t, errOut, "the report keeps the retrieved passages")
	assert.Contains(t, out, "(no answer)")
	assert.Regexp(t, `\(resume with: pi-agent run --resume \S+ --storage `+regexp.QuoteMeta(storage)+`\)`, errOut)
	reports, _ := filepath.Glob(filepath.Join(storage, "reports", "*.md"))
	require.Len(t, reports, 1)
	id := strings.TrimSuffix(filepath.Base(reports[0]), ".md")
	report, _ := os.ReadFile(reports[0])
	assert.Contains(t, string(report), "No answer yet: the answer step failed")
	assert.Contains(t, string(report), "pi-agent run --resume "+id)
	assert.Contains(t, string(report), "cemaf-overview.md", "the passages are kept")

	code, listing, _ := runCLI(t, nil, "runs", "--storage", storage)
	require.Equal(t, exitOK, code)
	assert.Regexp(t, id+`\s+failed\s+8/10`, listing, "the run is not reported as succeeded")

	llm := newFakeLLMAt(t, addr) // the endpoint is back
	code, out, errOut = runCLI(t, nil, "run", "--storage", storage, "--resume", id)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, errOut, "[9/10] answer ")
	assert.Contains(t, out, "fewer nodes")
	assert.Len(t, llm.calls(), 1)
	report, _ = os.ReadFile(reports[0])
	assert.Contains(t, string(report), "(answered by llm")
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
