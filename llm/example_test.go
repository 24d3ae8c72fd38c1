package llm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/cemaf-go/cemaf/llm"
)

// exampleServer is a tiny chat-completions server: it answers "4", in one
// piece or streamed, and asks for the "add" tool when offered one and not
// yet given its result.
func exampleServer() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream   bool `json:"stream"`
			Messages []struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"messages"`
			Tools []json.RawMessage `json:"tools"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		last := req.Messages[len(req.Messages)-1]
		msg := map[string]any{"role": "assistant", "content": "2 + 2 = 4"}
		switch {
		case len(req.Tools) > 0 && last.Role != "tool":
			msg = map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
				"id": "call_1", "type": "function", "function": map[string]any{"name": "add", "arguments": `{"a":2,"b":2}`}}}}
		case last.Role == "tool":
			msg["content"] = "The tool says " + last.Content + "."
		}
		usage := map[string]int{"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
		if !req.Stream {
			_ = json.NewEncoder(w).Encode(map[string]any{"model": "tiny", "usage": usage,
				"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": "stop"}}})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, piece := range strings.SplitAfter(msg["content"].(string), " ") {
			b, _ := json.Marshal(map[string]any{"model": "tiny", "choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": piece}}}})
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
		b, _ := json.Marshal(map[string]any{"model": "tiny", "usage": usage, "choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}}})
		fmt.Fprintf(w, "data: %s\n\ndata: [DONE]\n\n", b)
	}))
}

func Example() {
	srv := exampleServer()
	defer srv.Close()
	c, err := llm.New(srv.URL, llm.Options{
		Profile:  llm.Profile{Model: "qwen2.5:3b", MaxTokens: 256},
		Profiles: map[string]llm.Profile{"high_temp": {Model: "qwen2.5:0.5b", MaxTokens: 64}},
		Mode:     func() string { return "high_temp" }, // from the adaptive executor
	})
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()
	resp, err := c.Chat(context.Background(), llm.Request{Messages: []llm.Message{
		llm.System("Answer briefly."),
		llm.User("What is 2 + 2?"),
	}})
	if err != nil {
		panic(err)
	}
	r := resp.Record
	fmt.Println(resp.Message.Content)
	fmt.Println(r.Mode, r.Model, r.Attempts, r.Usage.TotalTokens)
	// Output:
	// 2 + 2 = 4
	// high_temp qwen2.5:0.5b 1 25
}

func ExampleClient_Chat_streamed() {
	srv := exampleServer()
	defer srv.Close()
	c, err := llm.New(srv.URL+"/v1", llm.Options{Profile: llm.Profile{Model: "tiny"}})
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()
	req := llm.Request{Messages: []llm.Message{llm.User("What is 2 + 2?")}}
	req.OnToken = func(t llm.Token) { fmt.Printf("[%s]", t.Text) } // or executor.Emit
	resp, err := c.Chat(context.Background(), req)
	if err != nil {
		panic(err)
	}
	fmt.Println()
	fmt.Println(resp.Message.Content, resp.Record.Streamed)
	// Output:
	// [2 ][+ ][2 ][= ][4]
	// 2 + 2 = 4 true
}

func ExampleClient_RunTools() {
	srv := exampleServer()
	defer srv.Close()
	c, err := llm.New(srv.URL, llm.Options{Profile: llm.Profile{Model: "tiny"}})
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()
	type addArgs struct {
		A int `json:"a" description:"first addend"`
		B int `json:"b" description:"second addend"`
	}
	add, err := llm.NewTool("add", "Adds two integers.", func(ctx context.Context, args addArgs) (int, error) {
		return args.A + args.B, nil
	})
	if err != nil {
		panic(err)
	}
	res, err := c.RunTools(context.Background(), llm.Request{Messages: []llm.Message{llm.User("What is 2 + 2?")}},
		[]llm.Tool{add}, llm.LoopOptions{MaxIterations: 4})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Answer)
	for _, m := range res.Transcript {
		fmt.Printf("%s %q %d\n", m.Role, m.Content, len(m.ToolCalls))
	}
	fmt.Println(len(res.Records), "model calls,", res.Usage.TotalTokens, "tokens")
	// Output:
	// The tool says 4.
	// user "What is 2 + 2?" 0
	// assistant "" 1
	// tool "4" 0
	// assistant "The tool says 4." 0
	// 2 model calls, 50 tokens
}
