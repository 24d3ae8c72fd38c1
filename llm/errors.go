package llm

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/limit"
)

// Sentinels matched with errors.Is.
var (
	// ErrStreamCut is wrapped by the *TransportError of a stream that ended
	// (connection closed, reset or timed out) before it finished: no
	// finish_reason and no [DONE] arrived. Such an attempt is retried.
	ErrStreamCut = errors.New("llm: the stream ended before the answer was complete")
	// ErrMaxIterations is wrapped by the *LoopError of a tool loop that
	// made its last allowed model call and the model still asked for tools.
	ErrMaxIterations = errors.New("llm: tool loop: iteration limit reached")
	// ErrTokenBudget is wrapped by the *LoopError of a tool loop whose
	// model calls used up the loop's token budget before a final answer.
	ErrTokenBudget = errors.New("llm: tool loop: token budget spent")
	// ErrUnknownTool is wrapped by the ToolRun error of a call naming a tool
	// that is not registered; the model is told so in the tool result.
	ErrUnknownTool = errors.New("llm: unknown tool")
	// ErrInvalidArguments is wrapped by the ToolRun error of a call whose
	// arguments are not a JSON object that fits the tool's schema; the
	// model is told so in the tool result.
	ErrInvalidArguments = errors.New("llm: invalid tool arguments")
)

// Limit kinds of the *limit.Error a *LoopError carries, in the module's one
// limit error type (errors.Is(err, limit.ErrExceeded) holds).
const (
	KindIterations limit.Kind = "llm_iterations"
	KindTokens     limit.Kind = "llm_tokens"
)

// excerptLen is the most bytes of a response body an error quotes.
const excerptLen = 512

// StatusError is an answer with an HTTP status other than 200, or an error
// event inside a stream (then Status is the event's numeric code, 500 when
// it has none). URL has any user:password redacted; Body is an excerpt of
// at most 512 bytes with the API key, should the server echo it, redacted.
// Statuses 408, 425, 429 and 5xx are retried.
type StatusError struct {
	URL    string
	Status int
	Body   string
	// RetryAfter is the wait the server asked for with Retry-After (in
	// seconds or as an HTTP date), 0 when it asked for none or for no
	// wait (then the client's backoff applies).
	RetryAfter time.Duration
}

// Error names the URL and the status: "llm: http://127.0.0.1:8080/v1/chat/completions
// answered 503 Service Unavailable: {...}".
func (e *StatusError) Error() string {
	var b strings.Builder
	b.WriteString("llm: ")
	b.WriteString(e.URL)
	b.WriteString(" answered ")
	b.WriteString(strconv.Itoa(e.Status))
	if t := http.StatusText(e.Status); t != "" {
		b.WriteString(" ")
		b.WriteString(t)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	if e.Body != "" {
		b.WriteString(": ")
		b.WriteString(e.Body)
	}
	return b.String()
}

// Temporary reports whether the status is one a later attempt may not get:
// 408, 425, 429 and 5xx.
func (e *StatusError) Temporary() bool {
	switch e.Status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return e.Status >= 500
}

// TransportError is a failure to reach the endpoint or to read its answer:
// a refused or reset connection, a timeout, a stream cut in the middle
// (wrapping ErrStreamCut). URL has any user:password redacted. It is
// retried unless the call's context ended.
type TransportError struct {
	URL string
	Err error
}

// Error names the URL and the cause.
func (e *TransportError) Error() string { return "llm: " + e.URL + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *TransportError) Unwrap() error { return e.Err }

// ResponseError is an answer with status 200 that is not a chat-completions
// response: malformed JSON, no choices, an oversized body. It is not retried.
type ResponseError struct {
	URL string
	Err error
}

// Error names the URL and what is wrong with the answer.
func (e *ResponseError) Error() string {
	return "llm: " + e.URL + ": not a chat-completions response: " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *ResponseError) Unwrap() error { return e.Err }

// PanicError is a panic in user code the package called: a tool, a
// Request.OnToken callback, Options.Mode, Options.Guard or
// Options.Throttler. Value is what was passed to panic; Stack is the
// goroutine's stack at the panic.
type PanicError struct {
	Where string // `tool "name"`, "OnToken", "Options.Mode", "Guard.Wait", "Throttler.Do"
	Value any
	Stack []byte
}

// Error names the code that panicked and the panic's value.
func (e *PanicError) Error() string { return fmt.Sprintf("llm: %s panicked: %v", e.Where, e.Value) }

// ToolError is the failure of one tool call: the tool returned an error or
// panicked (Err is a *PanicError), was unknown (ErrUnknownTool) or got
// arguments that do not fit its schema (ErrInvalidArguments).
type ToolError struct {
	Tool   string
	CallID string
	Err    error
}

// Error names the tool, the call and the cause.
func (e *ToolError) Error() string {
	return fmt.Sprintf("llm: tool %q (call %s): %v", e.Tool, e.CallID, e.Err)
}

// Unwrap returns the cause.
func (e *ToolError) Unwrap() error { return e.Err }

// LoopError ends a tool loop that hit a bound: Reason is ErrMaxIterations
// or ErrTokenBudget and Limit the matching *limit.Error (KindIterations in
// model calls, KindTokens in tokens). Both match with errors.Is/As, as does
// limit.ErrExceeded.
type LoopError struct {
	Reason error
	Limit  *limit.Error
}

// Error names the bound and the figures.
func (e *LoopError) Error() string { return e.Reason.Error() + ": " + e.Limit.Error() }

// Unwrap returns Reason and Limit.
func (e *LoopError) Unwrap() []error { return []error{e.Reason, e.Limit} }
