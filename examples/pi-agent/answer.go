package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/throttle"
)

// answerer turns retrieved passages into an answer.
type answerer interface {
	Answer(ctx context.Context, r retrieval) (answer, error)
	// Timeout and Retry configure the answer node.
	Timeout() time.Duration
	Retry() *dag.RetryPolicy
}

// extractive answers by quoting the sentences of the retrieved passages
// that best match the question, with their sources. It needs no network.
type extractive struct{}

func (extractive) Timeout() time.Duration  { return 30 * time.Second }
func (extractive) Retry() *dag.RetryPolicy { return nil }

func (extractive) Answer(_ context.Context, r retrieval) (answer, error) {
	a := answer{By: "extractive"}
	if len(r.Hits) == 0 {
		a.Text = "The corpus holds no passage about this question."
		return a, nil
	}
	type cand struct {
		text   string
		source int // index into r.Hits
		score  float64
		order  int
	}
	var cands []cand
	for i, h := range r.Hits {
		for _, s := range sentences(withoutHeadings(h.Text)) {
			seen := map[string]bool{}
			score := 0.0
			for _, t := range tokens(s) {
				if idf, ok := r.IDF[t]; ok && !seen[t] {
					seen[t] = true
					score += idf
				}
			}
			if score > 0 {
				// Earlier (better-ranked) passages win ties.
				cands = append(cands, cand{text: s, source: i, score: score * (1 - 0.05*float64(i)), order: len(cands)})
			}
		}
	}
	if len(cands) == 0 {
		a.Text = "The best-matching passages do not answer the question directly; see the passages below."
		return a, nil
	}
	slices.SortStableFunc(cands, func(x, y cand) int { return cmp.Compare(y.score, x.score) })
	cands = cands[:min(3, len(cands))]
	slices.SortFunc(cands, func(x, y cand) int { return cmp.Compare(x.order, y.order) })
	var b strings.Builder
	cited := map[int]bool{}
	for _, c := range cands {
		fmt.Fprintf(&b, "%s [%d] ", c.text, c.source+1)
		cited[c.source] = true
	}
	a.Text = strings.TrimSpace(b.String())
	for i, h := range r.Hits {
		if cited[i] {
			a.Sources = append(a.Sources, fmt.Sprintf("[%d] %s", i+1, h.Name))
		}
	}
	return a, nil
}

// withoutHeadings drops the markdown heading lines of text: a heading is
// not an answer, and joined to the paragraph under it, it would hide it.
func withoutHeadings(text string) string {
	if !strings.Contains(text, "#") {
		return text
	}
	var b strings.Builder
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// llmClient calls an OpenAI-compatible chat-completions endpoint (the llama.cpp
// server, Ollama's /v1, …) through the CPU throttler.
type llmClient struct {
	url     string // full endpoint URL
	model   string
	apiKey  string
	timeout time.Duration
	retry   dag.RetryPolicy
	cpu     *throttle.CPUThrottler

	// mu guards http, which idle unloading drops and the next call
	// rebuilds.
	mu   sync.Mutex
	http *http.Client
}

// endpointURL accepts a base URL ("http://127.0.0.1:8080", ".../v1") or the
// full chat-completions URL.
func endpointURL(base string) string {
	base = strings.TrimRight(base, "/")
	switch {
	case strings.HasSuffix(base, "/chat/completions"):
		return base
	case strings.HasSuffix(base, "/v1"):
		return base + "/chat/completions"
	}
	return base + "/v1/chat/completions"
}

func (c *llmClient) Timeout() time.Duration { return c.timeout }

func (c *llmClient) Retry() *dag.RetryPolicy {
	r := c.retry
	return &r
}

// llmRetry is the retry policy of LLM calls: attempts in all, the first
// delay, doubling up to 10 s.
func llmRetry(attempts int, backoff time.Duration) dag.RetryPolicy {
	return dag.RetryPolicy{MaxAttempts: attempts, InitialBackoff: backoff, MaxBackoff: 10 * time.Second}
}

func (c *llmClient) client() *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.http == nil {
		c.http = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	return c.http
}

// Loaded reports whether the client holds connections (idle unloading).
func (c *llmClient) Loaded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.http != nil
}

// Unload closes the client's idle connections and drops it.
func (c *llmClient) Unload() {
	c.mu.Lock()
	h := c.http
	c.http = nil
	c.mu.Unlock()
	if h != nil {
		h.CloseIdleConnections()
	}
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model       string        `json:"model"`
	Messages    []chatMessage `json:"messages"`
	Temperature float64       `json:"temperature"`
	Stream      bool          `json:"stream"`
}

type chatResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message chatMessage `json:"message"`
	} `json:"choices"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func (c *llmClient) Answer(ctx context.Context, r retrieval) (answer, error) {
	var sb strings.Builder
	for i, h := range r.Hits {
		fmt.Fprintf(&sb, "[%d] (%s)\n%s\n\n", i+1, h.Name, h.Text)
	}
	fmt.Fprintf(&sb, "Question: %s", r.Question)
	req := chatRequest{Model: c.model, Temperature: 0.2, Messages: []chatMessage{
		{Role: "system", Content: "You answer questions using only the numbered passages given. Cite the passages you use as [n]. If they do not contain the answer, say so."},
		{Role: "user", Content: sb.String()},
	}}
	body, err := json.Marshal(req)
	if err != nil {
		return answer{}, dag.Permanent(err)
	}
	res, err := throttle.Call(ctx, c.cpu, func(ctx context.Context) ([2]string, error) {
		return c.post(ctx, body)
	})
	if err != nil {
		return answer{}, err
	}
	text, model := res[0], res[1]
	a := answer{Text: strings.TrimSpace(text), By: "llm " + cmp.Or(model, c.model) + " at " + c.url}
	for i, h := range r.Hits {
		if strings.Contains(a.Text, fmt.Sprintf("[%d]", i+1)) {
			a.Sources = append(a.Sources, fmt.Sprintf("[%d] %s", i+1, h.Name))
		}
	}
	return a, nil
}

// post sends one request; transient failures (connection errors, 429, 5xx)
// are returned as retryable errors, the rest as permanent ones.
func (c *llmClient) post(ctx context.Context, body []byte) ([2]string, error) {
	var zero [2]string
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return zero, dag.Permanent(fmt.Errorf("LLM endpoint %s: %w", c.url, err))
	}
	hreq.Header.Set("Content-Type", "application/json")
	if c.apiKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	if info, ok := executor.NodeInfoFrom(ctx); ok {
		hreq.Header.Set("Idempotency-Key", info.IdempotencyKey())
	}
	resp, err := c.client().Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			// Not the endpoint's fault: the run was stopped (its timeout,
			// ctrl-c, serve's drain timeout).
			return zero, fmt.Errorf("LLM call to %s stopped: %w", c.url, context.Cause(ctx))
		}
		return zero, fmt.Errorf("LLM endpoint %s unreachable: %w", c.url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return zero, fmt.Errorf("LLM endpoint %s: reading the response: %w", c.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("LLM endpoint %s answered %s: %s", c.url, resp.Status, strings.TrimSpace(string(raw[:min(len(raw), 300)])))
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			return zero, err
		}
		return zero, dag.Permanent(err)
	}
	var cr chatResponse
	if err := json.Unmarshal(raw, &cr); err != nil {
		return zero, dag.Permanent(fmt.Errorf("LLM endpoint %s: not a chat-completions response: %w", c.url, err))
	}
	if cr.Error != nil {
		return zero, dag.Permanent(fmt.Errorf("LLM endpoint %s: %s", c.url, cr.Error.Message))
	}
	if len(cr.Choices) == 0 || strings.TrimSpace(cr.Choices[0].Message.Content) == "" {
		return zero, dag.Permanent(errors.New("LLM endpoint " + c.url + ": empty answer"))
	}
	return [2]string{cr.Choices[0].Message.Content, cr.Model}, nil
}
