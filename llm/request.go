package llm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cemaf-go/cemaf/executor"
)

// Request is one chat-completions call. Messages is required; the zero
// value of every other field means the default.
type Request struct {
	Messages []Message
	// Tools are offered to the model; a plain call returns the calls the
	// model asks for in Response.Message.ToolCalls, RunTools runs them.
	Tools []ToolSpec
	// MaxTokens caps the answer's tokens further than the mode's profile
	// does (the smaller wins). 0 leaves the profile's cap.
	MaxTokens int
	// Temperature overrides the profile's temperature, in [0, 2].
	Temperature *float64
	// Priority orders the calls waiting for a slot of the same model:
	// higher first, first come first served within a priority.
	Priority int
	// IdempotencyKey is sent as the Idempotency-Key header, the same on
	// every attempt; at most 255 bytes, no control characters. Default: the key of the executor node the context
	// belongs to (executor.NodeInfo.IdempotencyKey, stable across attempts
	// and resumes), else a random key per call. A node that makes several
	// distinct calls gives each its own key.
	IdempotencyKey string
	// Timeout bounds the call from the moment it has a slot of its model
	// and the guard first lets it through: every attempt and every wait
	// between attempts (the guard's included). Default Options.Timeout.
	// Waiting for the slot and that first wait on the guard are bounded by
	// ctx alone.
	Timeout time.Duration
	// OnToken, when set, streams the answer: it is called with each piece
	// of content as it arrives, on the calling goroutine. A panic in it
	// ends the call with a *PanicError. To stream a node's output to the
	// executor's observers:
	//
	//	req.OnToken = func(t llm.Token) { executor.Emit(ctx, executor.Chunk{Kind: "token", Text: t.Text}) }
	OnToken func(Token)
}

// Response is the outcome of a call. Record is filled in even when the call
// fails.
type Response struct {
	// Message is the assistant's message: its text and the tool calls it
	// asks for.
	Message Message
	// FinishReason is the server's: "stop", "length", "tool_calls", ...
	FinishReason string
	Record       Record
}

// Record describes how a call went, for logs and run reports.
type Record struct {
	// Model is the model asked for (the profile's); ServedModel the one
	// the server says answered ("" if it did not say).
	Model       string `json:"model"`
	ServedModel string `json:"served_model,omitempty"`
	// Mode is the device mode in force when the call started, which chose
	// the profile.
	Mode string `json:"mode"`
	// Attempts counts the HTTP requests sent, 1 when the first succeeded.
	Attempts int `json:"attempts"`
	// Streamed tells whether the answer was streamed.
	Streamed bool `json:"streamed,omitempty"`
	// Queued is the wait for a slot of the model; Latency the whole call,
	// queue included.
	Queued  time.Duration `json:"queued_ns"`
	Latency time.Duration `json:"latency_ns"`
	// TimeToFirstToken is, for a streamed answer, the time from the start
	// of the attempt that answered to its first content or tool-call
	// piece; for one that was not, to the whole answer.
	TimeToFirstToken time.Duration `json:"ttft_ns"`
	Usage            Usage         `json:"usage"`
	IdempotencyKey   string        `json:"idempotency_key"`
	// Err is the call's error message, "" on success.
	Err string `json:"error,omitempty"`
}

func validateRequest(req Request) error {
	if len(req.Messages) == 0 {
		return errors.New("llm: Request.Messages is empty")
	}
	for i, m := range req.Messages {
		switch m.Role {
		case RoleSystem, RoleUser, RoleAssistant, RoleTool:
		default:
			return fmt.Errorf("llm: Request.Messages[%d].Role = %q: must be system, user, assistant or tool", i, m.Role)
		}
	}
	if err := checkHeaderValue("Request.IdempotencyKey", req.IdempotencyKey, 255); err != nil {
		return err
	}
	for i := range req.Tools {
		t := Tool{ToolSpec: req.Tools[i], Call: noCall}
		if err := t.validate(); err != nil {
			return fmt.Errorf("llm: Request.Tools[%d]: %w", i, err)
		}
	}
	switch {
	case req.MaxTokens < 0:
		return fmt.Errorf("llm: Request.MaxTokens = %d: must be ≥ 0", req.MaxTokens)
	case req.Timeout < 0:
		return fmt.Errorf("llm: Request.Timeout = %v: must be ≥ 0 (0 for the client's)", req.Timeout)
	}
	if req.Temperature != nil {
		return checkTemperature("Request.Temperature", *req.Temperature)
	}
	return nil
}

// noCall stands for the function of a tool a plain call only describes.
func noCall(context.Context, json.RawMessage) (string, error) { return "", nil }

// checkHeaderValue refuses a value that cannot be sent in an HTTP header:
// control characters, or more than max bytes. The value is not quoted in
// the error (it may be a secret).
func checkHeaderValue(field, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("llm: %s is %d bytes long: at most %d", field, len(v), max)
	}
	for i := range len(v) {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Errorf("llm: %s has a control character at byte %d: it cannot be sent in an HTTP header", field, i)
		}
	}
	return nil
}

// idempotencyKey is the call's key: given, the executor node's, or random.
func idempotencyKey(ctx context.Context, given string) string {
	if given != "" {
		return given
	}
	if info, ok := executor.NodeInfoFrom(ctx); ok {
		return info.IdempotencyKey()
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "llm-" + hex.EncodeToString(b[:])
}
