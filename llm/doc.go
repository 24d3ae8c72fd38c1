// Package llm calls OpenAI-compatible chat-completions endpoints, as
// llama.cpp's server, Ollama (under /v1) and vLLM serve them: plain and
// streamed answers, tool calls with JSON-schema parameters, usage counts,
// retries, and a tool-calling loop that runs Go functions for the model.
// Calls go through the device's resource guard and CPU throttler, and the
// model, answer length and concurrency follow the device's mode.
//
// # Model
//
// A Client, made by New for one endpoint, is safe for concurrent use and
// lives as long as its user wants; it starts no goroutine of its own. The
// connections its HTTP client keeps between calls (and their goroutines)
// are closed by CloseIdleConnections.
//
// Chat makes one call. At its start it reads the device mode
// (Options.Mode: "normal", "low_memory", "high_temp" or "low_disk") and
// takes that mode's Profile: model, max tokens, temperature, and how many
// calls to that model may be under way at once. Each model has its own
// slots; a call that finds none free waits in a queue served by
// Request.Priority (higher first, first come first served within a
// priority), cancellable by ctx, with no goroutine per waiter. Once it has
// a slot and Options.Guard lets it through (the guard blocks while the
// device is hot or short of memory), the call's timeout (Request.Timeout,
// else Options.Timeout) starts, and each attempt runs inside
// Options.Throttler's Do (paces the process's CPU use) and sends the
// request; each retry waits on the guard again. Connection errors, a
// stream cut before its end, and statuses 408, 425, 429 and 5xx are
// retried up to Options.MaxAttempts, after exponential backoff or the wait
// a Retry-After header asks for (seconds or an HTTP date; a wait over
// Options.MaxRetryAfter, or past the deadline, fails at once instead). The
// waits use Options.Clock, so tests step time without sleeping.
//
// Every attempt of a call carries the same Idempotency-Key header:
// Request.IdempotencyKey, else the key of the executor node the context
// belongs to (executor.NodeInfo.IdempotencyKey: the same on every attempt
// of the node and after its run is resumed), else a random key per call.
//
// With Request.OnToken set the answer is streamed (server-sent events):
// OnToken gets each piece of text as it arrives, on the calling goroutine.
// Wiring a node's partial output to the executor's observers is one line:
//
//	req.OnToken = func(t llm.Token) { executor.Emit(ctx, executor.Chunk{Kind: "token", Text: t.Text}) }
//
// Each call returns a Record: the model asked for and the one that
// answered, the mode in force, the attempts, the time queued, the latency,
// the time to the first token, the usage and the idempotency key. Stats
// adds the calls up (calls, failures, attempts, retries, tokens in and
// out, latency) for a metrics exporter.
//
// RunTools runs the model → tools → model loop. A Tool is a Go function
// with a name, a description and the JSON schema of its arguments, given
// or built from a struct by NewTool (Schema states what it supports). The
// loop calls the model, runs the tools it asks for in order, feeds the
// results back and calls it again until it answers without asking for a
// tool; it is bounded by LoopOptions.MaxIterations model calls and
// LoopOptions.MaxTokens tokens in all, and fails past them with a
// *LoopError that also matches limit.ErrExceeded. Tool errors and panics,
// unknown tool names and arguments that are not valid JSON or do not fit
// the schema are reported to the model as the tool's result, so that it
// can correct itself within the iteration bound; LoopOptions.FailOnToolError
// ends the loop on a tool's own error or panic instead. Each model call of
// a loop has the Idempotency-Key "<key>/turn-<n>".
//
// # Errors
//
// *StatusError (a status other than 2xx, or an error event in a stream),
// *TransportError (unreachable, reset, timed out, a stream cut:
// ErrStreamCut), *ResponseError (a 200 that is not a chat-completions
// answer), *PanicError (a tool or OnToken panicked), *ToolError and
// *LoopError, all matched with errors.As; messages start with "llm: " and
// name the URL and the status. The API key never appears in an error or a
// log record, and neither does a password in the base URL. Errors no retry
// can mend are wrapped with dag.Permanent, so that an executor node does
// not retry them either.
//
// # Units
//
// Tokens are the server's; when a server reports no usage, counts are
// estimated at 4 bytes a token and Usage.Estimated is set. Durations are
// time.Duration. MaxResponseBytes is in bytes.
//
// # Why no client library
//
// The package speaks the protocol with net/http and encoding/json. Both
// candidate libraries were measured for the pi-agent (figures and commands
// in BENCHMARKS.md, section llm): a small program making a streamed and a
// plain call with github.com/openai/openai-go/v3 v3.98.0 builds to
// 22.1 MiB stripped for linux/arm64, over the agent's 20 MB budget by
// itself (its client holds every API service, and the linker keeps them),
// against 5.4 MiB with net/http alone and 5.7 MiB with this package;
// github.com/sashabaranov/go-openai v1.43.0 adds only 0.4 MiB, but its
// stream reader runs regular expressions on every line and decodes each
// event into its full response type: 1.46× a bare bufio.Scanner reader per
// streamed token, over the 1.2× budget (this package: 0.91×, within the
// noise of the same run). Neither library retries with Retry-After and a
// stable Idempotency-Key as this package must, so what would have been
// reused is the wire structs, about a hundred lines (wire.go). The cost:
// the package follows the protocol's additions itself, and only the fields
// in wire.go are sent and read.
//
// # Caveats
//
// One answer per call (n = 1); parallel tool calls of one answer run one
// after the other. A stream cut after tokens were passed to OnToken is
// retried from the start: OnToken sees the new attempt's pieces with
// Token.Attempt one higher, and an observer that shows text must start
// over. A server that ends a stream cleanly without a finish_reason or
// [DONE] is taken to have cut it. Multi-line SSE data events are not
// joined (no chat-completions server sends them). Reasoning content
// (reasoning_content deltas), log-probabilities, images and audio are not
// read. A mode not in the known four uses Options.Profile. Concurrency
// limits apply to the calls of one Client: two clients of the same server
// do not share slots. A tool's context is the loop's; a tool that ignores
// it holds the loop up (use LoopOptions.ToolTimeout and honour ctx).
// Options.Timeout does not bound the wait for a slot nor the first wait on
// the guard: ctx does; the guard's waits before retries count in it.
package llm
