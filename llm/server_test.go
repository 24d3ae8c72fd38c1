package llm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/llm"
)

// chatServer is an OpenAI-compatible chat-completions server on 127.0.0.1
// that answers as a script says, streaming when asked to, with faults on
// demand. It records every request.
type chatServer struct {
	*httptest.Server
	script func(n int, req seenRequest) reply

	mu   sync.Mutex
	reqs []seenRequest
}

// seenRequest is a request as the server decoded it: the protocol's field
// names, read independently of the package's own encoding.
type seenRequest struct {
	Model       string   `json:"model"`
	MaxTokens   int      `json:"max_tokens"`
	Temperature *float64 `json:"temperature"`
	Stream      bool     `json:"stream"`
	StreamOpts  *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Messages []struct {
		Role       string  `json:"role"`
		Content    *string `json:"content"`
		ToolCallID string  `json:"tool_call_id"`
		Name       string  `json:"name"`
		ToolCalls  []struct {
			ID       string `json:"id"`
			Type     string `json:"type"`
			Function struct {
				Name      string `json:"name"`
				Arguments string `json:"arguments"`
			} `json:"function"`
		} `json:"tool_calls"`
	} `json:"messages"`
	Tools []struct {
		Type     string `json:"type"`
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	Header http.Header `json:"-"`
}

// last returns the content of the request's last message.
func (r seenRequest) last() string {
	m := r.Messages[len(r.Messages)-1]
	if m.Content == nil {
		return ""
	}
	return *m.Content
}

// reply is what the server sends for one request.
type reply struct {
	status int               // 0 means 200
	header map[string]string // extra response headers
	body   string            // raw body, for a status other than 200 or bad JSON

	text    string         // the answer, streamed word by word
	calls   []llm.ToolCall // tool calls, their arguments streamed in two pieces
	finish  string         // default "stop", or "tool_calls" with calls
	model   string         // default "served-model"
	usage   *llm.Usage     // default prompt 10, completion = pieces
	noUsage bool

	cutAfter int      // > 0: end the stream after this many content pieces, without finishing
	abort    bool     // with cutAfter: abort the connection instead of ending cleanly
	events   []string // raw data of stream events, sent as they are
	hang     bool     // wait for the client to give up
	asJSON   bool     // answer a stream request with a whole JSON answer
}

func newChatServer(t *testing.T, script func(n int, req seenRequest) reply) *chatServer {
	t.Helper()
	s := &chatServer{script: script}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *chatServer) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.reqs...)
}

func (s *chatServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	var req seenRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	req.Header = r.Header.Clone()
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	n := len(s.reqs)
	s.mu.Unlock()
	rep := s.script(n, req)
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	switch {
	case rep.hang:
		<-r.Context().Done()
		return
	case rep.status != 0 && rep.status != http.StatusOK:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		io.WriteString(w, rep.body)
		return
	case rep.body != "":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, rep.body)
		return
	}
	if rep.model == "" {
		rep.model = "served-model"
	}
	pieces := strings.SplitAfter(rep.text, " ")
	if rep.text == "" {
		pieces = nil
	}
	if rep.finish == "" {
		rep.finish = "stop"
		if len(rep.calls) > 0 {
			rep.finish = "tool_calls"
		}
	}
	usage := rep.usage
	if usage == nil {
		usage = &llm.Usage{PromptTokens: 10, CompletionTokens: len(pieces), TotalTokens: 10 + len(pieces)}
	}
	if !req.Stream || rep.asJSON {
		writeWhole(w, rep, usage)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	event := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		fl.Flush()
	}
	for _, e := range rep.events {
		fmt.Fprintf(w, "data: %s\n\n", e)
		fl.Flush()
	}
	if len(rep.events) > 0 {
		return
	}
	io.WriteString(w, ": keep-alive comment\n\n")
	event(chunk(rep.model, map[string]any{"role": "assistant", "content": ""}, nil))
	for i, p := range pieces {
		if rep.cutAfter > 0 && i == rep.cutAfter {
			if rep.abort {
				panic(http.ErrAbortHandler)
			}
			return
		}
		event(chunk(rep.model, map[string]any{"content": p}, nil))
	}
	for i, c := range rep.calls {
		half := len(c.Arguments) / 2
		event(chunk(rep.model, map[string]any{"tool_calls": []map[string]any{{"index": i, "id": c.ID, "type": "function",
			"function": map[string]any{"name": c.Name, "arguments": c.Arguments[:half]}}}}, nil))
		event(chunk(rep.model, map[string]any{"tool_calls": []map[string]any{{"index": i,
			"function": map[string]any{"arguments": c.Arguments[half:]}}}}, nil))
	}
	event(chunk(rep.model, map[string]any{}, &rep.finish))
	if !rep.noUsage {
		event(map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": rep.model, "choices": []any{},
			"usage": map[string]int{"prompt_tokens": usage.PromptTokens, "completion_tokens": usage.CompletionTokens, "total_tokens": usage.TotalTokens}})
	}
	io.WriteString(w, "data: [DONE]\n\n")
}

func chunk(model string, delta map[string]any, finish *string) map[string]any {
	return map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
		"choices": []map[string]any{{"index": 0, "delta": delta, "finish_reason": finish}}}
}

func writeWhole(w http.ResponseWriter, rep reply, usage *llm.Usage) {
	msg := map[string]any{"role": "assistant", "content": rep.text}
	if len(rep.calls) > 0 {
		var calls []map[string]any
		for _, c := range rep.calls {
			calls = append(calls, map[string]any{"id": c.ID, "type": "function",
				"function": map[string]any{"name": c.Name, "arguments": c.Arguments}})
		}
		msg["tool_calls"] = calls
		if rep.text == "" {
			msg["content"] = nil
		}
	}
	resp := map[string]any{"id": "chatcmpl-1", "object": "chat.completion", "model": rep.model,
		"choices": []map[string]any{{"index": 0, "message": msg, "finish_reason": rep.finish}}}
	if !rep.noUsage {
		resp["usage"] = map[string]int{"prompt_tokens": usage.PromptTokens, "completion_tokens": usage.CompletionTokens, "total_tokens": usage.TotalTokens}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

// always answers every request with the same reply.
func always(r reply) func(int, seenRequest) reply { return func(int, seenRequest) reply { return r } }

// sequence answers the n-th request with replies[n-1], and the last reply
// after them.
func sequence(replies ...reply) func(int, seenRequest) reply {
	return func(n int, _ seenRequest) reply { return replies[min(n, len(replies))-1] }
}

// fakeClock is a Clock whose Sleep returns at once, moving the time on by
// the wait and recording it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
	// onSleep, when set, runs (without the lock) before a Sleep returns.
	onSleep func()
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	hook := c.onSleep
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// newClient returns a client of s with a fake clock; opts.Profile.Model
// defaults to "big".
func newClient(t *testing.T, s *chatServer, opts llm.Options) (*llm.Client, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	if opts.Clock == nil {
		opts.Clock = clock
	}
	if opts.Profile.Model == "" {
		opts.Profile.Model = "big"
	}
	c, err := llm.New(s.URL, opts)
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return c, clock
}

func ask(text string) llm.Request { return llm.Request{Messages: []llm.Message{llm.User(text)}} }

func nan() float64 { var z float64; return z / z }
