// Package llmstub is a stand-in for a local LLM server (llama.cpp's server,
// Ollama): an http.Handler that answers OpenAI-compatible chat-completion
// requests after spending a set time, either waiting or keeping every CPU
// busy, as a local model does while it generates. The resource tests and the
// README measure the agent against it: a CPU made busy by the agent's own
// LLM must not pause the agent.
//
// A request with "stream": true is answered with server-sent events, one
// word of the answer per event, then usage and [DONE]. A request that
// offers tools and holds no tool result yet is answered with a call to the
// first tool offered (arguments ToolArguments); once the conversation
// holds a tool result, the answer repeats it.
//
// A Handler owns no goroutine between requests; while it answers one, it
// runs one spinning goroutine per core, which stop before the response is
// written or when the request's context ends.
package llmstub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Handler answers POST /v1/chat/completions (and any path ending in
// /chat/completions) with one assistant message.
type Handler struct {
	// Work is how long each request takes.
	Work time.Duration
	// Burn makes the handler keep Cores cores busy for Work instead of
	// waiting (the default: all of runtime.NumCPU()).
	Burn  bool
	Cores int
	// Answer is the text of the reply (default: a sentence naming the
	// model).
	Answer string
	// ToolArguments is the JSON arguments object of the tool calls the
	// handler asks for (default "{}").
	ToolArguments string

	calls atomic.Int64
}

// Calls returns how many requests were answered.
func (h *Handler) Calls() int64 { return h.calls.Load() }

type request struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
		Name    string `json:"name"`
	} `json:"messages"`
	Stream bool `json:"stream"`
	Tools  []struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tools"`
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var req request
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&req); err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if h.Burn {
		burn(r, h.Work, h.Cores)
	} else {
		select {
		case <-time.After(h.Work):
		case <-r.Context().Done():
			return
		}
	}
	n := h.calls.Add(1)
	text := h.Answer
	if text == "" {
		text = fmt.Sprintf("A stand-in answer from %s.", cmpOr(req.Model, "the stand-in model"))
	}
	msg := map[string]any{"role": "assistant", "content": text}
	finish := "stop"
	if last := len(req.Messages) - 1; last >= 0 && req.Messages[last].Role == "tool" {
		m := req.Messages[last]
		text = fmt.Sprintf("The tool %s said: %s", cmpOr(m.Name, "called"), m.Content)
		msg["content"] = text
	} else if len(req.Tools) > 0 {
		text, finish = "", "tool_calls"
		msg = map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
			"index": 0, "id": fmt.Sprintf("call_%d", n), "type": "function",
			"function": map[string]string{"name": req.Tools[0].Function.Name, "arguments": cmpOr(h.ToolArguments, "{}")}}}}
	}
	id := fmt.Sprintf("stub-%d", n)
	usage := map[string]int{"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18}
	if req.Stream {
		stream(w, id, req.Model, text, msg["tool_calls"], finish, usage)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"id": id, "object": "chat.completion", "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "finish_reason": finish, "message": msg}},
		"usage":   usage,
	})
}

// stream writes the answer as server-sent events: one event per word of
// text (or one with the tool calls), flushed as it is written, then an event
// with the finish reason and the usage, then [DONE].
func stream(w http.ResponseWriter, id, model, text string, toolCalls any, finish string, usage map[string]int) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fl, _ := w.(http.Flusher)
	event := func(delta map[string]any, finish any, usage any) {
		b, _ := json.Marshal(map[string]any{"id": id, "object": "chat.completion.chunk", "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}, "usage": usage})
		fmt.Fprintf(w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
	}
	if toolCalls != nil {
		event(map[string]any{"role": "assistant", "tool_calls": toolCalls}, nil, nil)
	}
	for _, word := range strings.SplitAfter(text, " ") {
		if word != "" {
			event(map[string]any{"content": word}, nil, nil)
		}
	}
	event(map[string]any{}, finish, usage)
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}

// burn keeps cores cores busy for d, or until the request ends.
func burn(r *http.Request, d time.Duration, cores int) {
	if cores <= 0 {
		cores = runtime.NumCPU()
	}
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range cores {
		wg.Go(func() {
			x := uint64(1)
			for i := 0; ; i++ {
				x = x*6364136223846793005 + 1442695040888963407
				if i%4096 == 0 && (time.Now().After(deadline) || r.Context().Err() != nil) {
					sink.Add(x)
					return
				}
			}
		})
	}
	wg.Wait()
}

// sink keeps the burn loop from being optimised away.
var sink atomic.Uint64

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
