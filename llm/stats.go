package llm

import (
	"sync/atomic"
	"time"
)

// Stats are a Client's counters since it was made, for logs and a metrics
// exporter (counters only grow; InFlight and Waiting are gauges).
type Stats struct {
	// Calls counts the calls started (Chat, and each model call of a
	// tool loop); Failed those that returned an error.
	Calls  uint64 `json:"calls"`
	Failed uint64 `json:"failed"`
	// Attempts counts the HTTP requests sent; Retries the attempts after
	// a failed one.
	Attempts uint64 `json:"attempts"`
	Retries  uint64 `json:"retries"`
	// PromptTokens and CompletionTokens add up the calls' usage (tokens in
	// and out); StreamedPieces counts the content pieces passed to
	// OnToken.
	PromptTokens     uint64 `json:"prompt_tokens"`
	CompletionTokens uint64 `json:"completion_tokens"`
	StreamedPieces   uint64 `json:"streamed_pieces"`
	// ToolCalls counts the tool calls a tool loop ran; ToolErrors those
	// that failed (error, panic, unknown tool, bad arguments).
	ToolCalls  uint64 `json:"tool_calls"`
	ToolErrors uint64 `json:"tool_errors"`
	// Latency and Queued add up the finished calls' Record.Latency and
	// Record.Queued: divided by the calls finished (about Calls -
	// InFlight - Waiting), the means.
	Latency time.Duration `json:"latency_ns"`
	Queued  time.Duration `json:"queued_ns"`
	// InFlight is the calls holding a slot now; Waiting those queued for
	// one.
	InFlight int64 `json:"in_flight"`
	Waiting  int64 `json:"waiting"`
}

// Add returns s with o's counters added; its gauges (InFlight, Waiting)
// stay s's. It sums the Stats of several clients, or of a client that was
// replaced, so that the counters an exporter shows never fall back.
func (s Stats) Add(o Stats) Stats {
	s.Calls += o.Calls
	s.Failed += o.Failed
	s.Attempts += o.Attempts
	s.Retries += o.Retries
	s.PromptTokens += o.PromptTokens
	s.CompletionTokens += o.CompletionTokens
	s.StreamedPieces += o.StreamedPieces
	s.ToolCalls += o.ToolCalls
	s.ToolErrors += o.ToolErrors
	s.Latency += o.Latency
	s.Queued += o.Queued
	return s
}

// counters are the atomics behind Stats.
type counters struct {
	calls, failed, attempts, retries atomic.Uint64
	promptTokens, completionTokens   atomic.Uint64
	streamed, toolCalls, toolErrors  atomic.Uint64
	latency, queued                  atomic.Int64
	inFlight, waiting                atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Calls:            c.calls.Load(),
		Failed:           c.failed.Load(),
		Attempts:         c.attempts.Load(),
		Retries:          c.retries.Load(),
		PromptTokens:     c.promptTokens.Load(),
		CompletionTokens: c.completionTokens.Load(),
		StreamedPieces:   c.streamed.Load(),
		ToolCalls:        c.toolCalls.Load(),
		ToolErrors:       c.toolErrors.Load(),
		Latency:          time.Duration(c.latency.Load()),
		Queued:           time.Duration(c.queued.Load()),
		InFlight:         c.inFlight.Load(),
		Waiting:          c.waiting.Load(),
	}
}

// finish counts a finished call.
func (c *counters) finish(r *Record, failed bool) {
	if failed {
		c.failed.Add(1)
	}
	c.promptTokens.Add(uint64(max(0, r.Usage.PromptTokens)))
	c.completionTokens.Add(uint64(max(0, r.Usage.CompletionTokens)))
	c.latency.Add(int64(r.Latency))
	c.queued.Add(int64(r.Queued))
}
