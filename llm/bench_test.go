package llm_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/cemaf-go/cemaf/llm"
)

// benchTokens is the length of the benchmarks' streamed answers.
const benchTokens = 256

// benchStream renders a streamed answer of benchTokens pieces as llama.cpp's
// server sends it.
func benchStream() []byte {
	var b bytes.Buffer
	for i := range benchTokens {
		fmt.Fprintf(&b, `data: {"id":"chatcmpl-x1","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-0.5b-instruct-q4_k_m.gguf","system_fingerprint":"b4500","choices":[{"index":0,"delta":{"content":"tok%d "},"finish_reason":null}]}`+"\n\n", i)
	}
	b.WriteString(`data: {"id":"chatcmpl-x1","object":"chat.completion.chunk","created":1700000000,"model":"qwen2.5-0.5b-instruct-q4_k_m.gguf","system_fingerprint":"b4500","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":256,"total_tokens":287}}` + "\n\n")
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}

// benchServer answers every request with body, as fast as it can.
func benchServer(b *testing.B, contentType string, body []byte) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(body)
	}))
	b.Cleanup(s.Close)
	return s
}

var benchMessages = []map[string]string{
	{"role": "system", "content": "You answer questions using only the numbered passages given."},
	{"role": "user", "content": "[1] (cemaf-overview.md)\nIt slows down when hot.\n\nQuestion: What does cemaf do?"},
}

// bareStream is the baseline: net/http and a bufio.Scanner reading the
// events, decoding what a caller needs (content, finish reason, usage),
// passing each piece to a callback and assembling the answer.
func bareStream(ctx context.Context, client *http.Client, url string, onToken func(string)) (string, error) {
	body, err := json.Marshal(map[string]any{"model": "tiny", "messages": benchMessages, "stream": true})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var answer strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
		if !ok {
			continue
		}
		if string(line) == "[DONE]" {
			_, _ = io.Copy(io.Discard, resp.Body) // the connection serves the next call
			return answer.String(), nil
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(line, &ch); err != nil {
			return "", err
		}
		if len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
			answer.WriteString(ch.Choices[0].Delta.Content)
			onToken(ch.Choices[0].Delta.Content)
		}
	}
	return "", errors.New("stream cut")
}

// BenchmarkStreamToken measures the cost per streamed token of a whole
// streamed call of 256 tokens from a server on 127.0.0.1: this package
// against the bare net/http + bufio.Scanner reader, and go-openai's stream
// reader, in the same run.
func BenchmarkStreamToken(b *testing.B) {
	body := benchStream()
	perToken := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchTokens), "ns/token")
	}
	b.Run("bare", func(b *testing.B) {
		s := benchServer(b, "text/event-stream", body)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		defer client.CloseIdleConnections()
		n := 0
		b.ReportAllocs()
		for b.Loop() {
			answer, err := bareStream(context.Background(), client, s.URL+"/v1/chat/completions", func(string) { n++ })
			if err != nil || len(answer) == 0 {
				b.Fatal(err)
			}
		}
		perToken(b)
	})
	b.Run("llm", func(b *testing.B) {
		s := benchServer(b, "text/event-stream", body)
		c, err := llm.New(s.URL, llm.Options{Profile: llm.Profile{Model: "tiny"}})
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseIdleConnections()
		n := 0
		req := llm.Request{Messages: []llm.Message{llm.System(benchMessages[0]["content"]), llm.User(benchMessages[1]["content"])},
			OnToken: func(llm.Token) { n++ }}
		b.ReportAllocs()
		for b.Loop() {
			resp, err := c.Chat(context.Background(), req)
			if err != nil || resp.Record.Usage.CompletionTokens != benchTokens {
				b.Fatal(err)
			}
		}
		perToken(b)
	})
	b.Run("go-openai", func(b *testing.B) {
		s := benchServer(b, "text/event-stream", body)
		cfg := openai.DefaultConfig("")
		cfg.BaseURL = s.URL + "/v1"
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		defer client.CloseIdleConnections()
		cfg.HTTPClient = client
		c := openai.NewClientWithConfig(cfg)
		req := openai.ChatCompletionRequest{Model: "tiny", Messages: []openai.ChatCompletionMessage{
			{Role: "system", Content: benchMessages[0]["content"]}, {Role: "user", Content: benchMessages[1]["content"]}},
			StreamOptions: &openai.StreamOptions{IncludeUsage: true}}
		n := 0
		b.ReportAllocs()
		for b.Loop() {
			st, err := c.CreateChatCompletionStream(context.Background(), req)
			if err != nil {
				b.Fatal(err)
			}
			var answer strings.Builder
			for {
				r, err := st.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				if len(r.Choices) > 0 && r.Choices[0].Delta.Content != "" {
					answer.WriteString(r.Choices[0].Delta.Content)
					n++
				}
			}
			st.Close()
		}
		perToken(b)
	})
}

// BenchmarkChat measures a whole (not streamed) call: this package against
// net/http with encoding/json, in the same run.
func BenchmarkChat(b *testing.B) {
	answer := []byte(`{"id":"chatcmpl-x1","object":"chat.completion","created":1700000000,"model":"tiny","choices":[{"index":0,"message":{"role":"assistant","content":"It slows down between steps when hot and runs fewer nodes when short of memory [1]."},"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":20,"total_tokens":51}}`)
	b.Run("bare", func(b *testing.B) {
		s := benchServer(b, "application/json", answer)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		defer client.CloseIdleConnections()
		b.ReportAllocs()
		for b.Loop() {
			body, _ := json.Marshal(map[string]any{"model": "tiny", "messages": benchMessages})
			resp, err := client.Post(s.URL+"/v1/chat/completions", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			var out struct {
				Choices []struct {
					Message struct {
						Content string `json:"content"`
					} `json:"message"`
				} `json:"choices"`
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || len(out.Choices) == 0 {
				b.Fatal(err)
			}
		}
	})
	b.Run("llm", func(b *testing.B) {
		s := benchServer(b, "application/json", answer)
		c, err := llm.New(s.URL, llm.Options{Profile: llm.Profile{Model: "tiny"}})
		if err != nil {
			b.Fatal(err)
		}
		defer c.CloseIdleConnections()
		req := llm.Request{Messages: []llm.Message{llm.System(benchMessages[0]["content"]), llm.User(benchMessages[1]["content"])}}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Chat(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
