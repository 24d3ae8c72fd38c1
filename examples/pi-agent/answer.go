package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/llm"
)

// answerer turns retrieved passages into an answer. Answer sends the
// answer's text to the run's observers as it is made (executor.Emit,
// chunks of kind executor.ChunkToken).
type answerer interface {
	Answer(ctx context.Context, r retrieval) (answer, error)
	// Timeout, Retry and Class configure the answer node.
	Timeout() time.Duration
	Retry() *dag.RetryPolicy
	Class() dag.Class
}

// extractive answers by quoting the sentences of the retrieved passages
// that best match the question, with their sources. It needs no network.
type extractive struct{}

func (extractive) Timeout() time.Duration  { return 30 * time.Second }
func (extractive) Retry() *dag.RetryPolicy { return nil }
func (extractive) Class() dag.Class        { return dag.CPU } // it computes here

// Answer picks the sentences and sends the answer's text to the observers
// in one chunk.
func (e extractive) Answer(ctx context.Context, r retrieval) (answer, error) {
	a, err := e.answer(r)
	if err == nil {
		executor.Emit(ctx, executor.Chunk{Kind: executor.ChunkToken, Text: a.Text})
	}
	return a, err
}

func (extractive) answer(r retrieval) (answer, error) {
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

// chunkRestart is the kind of the chunk the LLM answerer emits when a
// streamed answer starts over (the stream was cut and the call retried):
// what an observer has shown of it is void.
const chunkRestart = "restart"

// llmAnswerer asks an OpenAI-compatible chat-completions endpoint (the
// llama.cpp server, Ollama's /v1, vLLM) through the llm package: its
// client is the runtime's (factories.Runtime.NewLLMClient), so every
// attempt waits on the resource guard and runs under the CPU throttler, and
// the device mode chooses the model, answer length and concurrency. The
// client retries (connection errors, 408, 425, 429, 5xx, with Retry-After)
// with one Idempotency-Key, the answer node's; once its attempts are spent
// the node fails, and with it the run, which stays resumable.
type llmAnswerer struct {
	client *llm.Client
	// timeout bounds a call, its retries and the waits between them.
	timeout time.Duration
	// stream asks for a streamed answer, its pieces sent to the observers
	// as they arrive.
	stream bool
	// observe takes the record of every call (factories.Runtime.ObserveLLM).
	observe func(...llm.Record)
}

// llmAnswerOptions are the options of the answer's client: the profiles of
// the environment (llmProfiles), the API key, the retries.
func llmAnswerOptions(ps llmSettings, apiKey string, attempts int, backoff time.Duration) llm.Options {
	return llm.Options{APIKey: apiKey, Profile: ps.Profile, Profiles: ps.Profiles,
		MaxAttempts: attempts, InitialBackoff: backoff, MaxBackoff: 10 * time.Second}
}

func (a llmAnswerer) Timeout() time.Duration  { return a.timeout }
func (a llmAnswerer) Retry() *dag.RetryPolicy { return nil }    // the client retries
func (a llmAnswerer) Class() dag.Class        { return dag.IO } // it waits on the server

// Answer asks the model, citing the passages as [n].
func (a llmAnswerer) Answer(ctx context.Context, r retrieval) (answer, error) {
	var sb strings.Builder
	for i, h := range r.Hits {
		fmt.Fprintf(&sb, "[%d] (%s)\n%s\n\n", i+1, h.Name, h.Text)
	}
	fmt.Fprintf(&sb, "Question: %s", r.Question)
	req := llm.Request{Timeout: a.timeout, Messages: []llm.Message{
		llm.System("You answer questions using only the numbered passages given. Cite the passages you use as [n]. If they do not contain the answer, say so."),
		llm.User(sb.String()),
	}}
	if a.stream {
		attempt := 1
		req.OnToken = func(t llm.Token) {
			if t.Attempt != attempt {
				attempt = t.Attempt
				executor.Emit(ctx, executor.Chunk{Kind: chunkRestart, Text: fmt.Sprintf("attempt %d", t.Attempt)})
			}
			executor.Emit(ctx, executor.Chunk{Kind: executor.ChunkToken, Text: t.Text})
		}
	}
	resp, err := a.client.Chat(ctx, req)
	if a.observe != nil {
		a.observe(resp.Record)
	}
	if err != nil {
		if ctx.Err() != nil {
			// Not the endpoint's fault: the run was stopped (its timeout,
			// ctrl-c, serve's drain timeout).
			return answer{}, fmt.Errorf("LLM call to %s stopped: %w", a.client.URL(), context.Cause(ctx))
		}
		return answer{}, fmt.Errorf("LLM call (model %s, mode %s): %w", resp.Record.Model, resp.Record.Mode, err)
	}
	text := strings.TrimSpace(resp.Message.Content)
	if text == "" {
		return answer{}, dag.Permanent(fmt.Errorf("LLM endpoint %s: empty answer (finish reason %q)", a.client.URL(), resp.FinishReason))
	}
	if !a.stream {
		executor.Emit(ctx, executor.Chunk{Kind: executor.ChunkToken, Text: text})
	}
	rec := resp.Record
	ans := answer{Text: text, By: "llm " + cmp.Or(rec.ServedModel, rec.Model) + " at " + a.client.URL() + " (mode " + rec.Mode + ")", LLM: &rec}
	for i, h := range r.Hits {
		if strings.Contains(ans.Text, fmt.Sprintf("[%d]", i+1)) {
			ans.Sources = append(ans.Sources, fmt.Sprintf("[%d] %s", i+1, h.Name))
		}
	}
	return ans, nil
}

// endpointURL accepts a base URL ("http://127.0.0.1:8080", ".../v1") or the
// full chat-completions URL, and returns the full one (as llm.New reads
// them).
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
