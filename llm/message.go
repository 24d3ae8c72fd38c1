package llm

import (
	"encoding/json"
	"time"
)

// Roles of a Message.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
)

// Message is one message of a conversation.
type Message struct {
	// Role is RoleSystem, RoleUser, RoleAssistant or RoleTool.
	Role string `json:"role"`
	// Content is the text; for a RoleTool message, the tool's result.
	Content string `json:"content,omitempty"`
	// ToolCalls are the tools an assistant message asks to run.
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// ToolCallID is, in a RoleTool message, the ID of the call answered.
	ToolCallID string `json:"tool_call_id,omitempty"`
	// Name is, in a RoleTool message, the tool's name (optional).
	Name string `json:"name,omitempty"`
}

// System returns a system message.
func System(text string) Message { return Message{Role: RoleSystem, Content: text} }

// User returns a user message.
func User(text string) Message { return Message{Role: RoleUser, Content: text} }

// ToolCall is a model's request to run a tool.
type ToolCall struct {
	// ID identifies the call; the tool's result message repeats it. A
	// server that sends none gets "call_<n>", n counting from 1 in the
	// message.
	ID string `json:"id"`
	// Name is the tool's name.
	Name string `json:"name"`
	// Arguments is the JSON text of the arguments object, as the model
	// wrote it: it may be invalid.
	Arguments string `json:"arguments"`
}

// ToolSpec describes a tool to the model: its name, what it does and the
// JSON schema of its arguments object. Tool carries one with the function.
type ToolSpec struct {
	Name        string
	Description string
	// Parameters is a JSON schema of type "object"; empty means an object
	// with no properties.
	Parameters json.RawMessage
}

// Token is a piece of a streamed answer's text, passed to Request.OnToken
// as it arrives.
type Token struct {
	// Text is the piece of content.
	Text string
	// Attempt counts the call's attempts from 1. When a stream is cut and
	// the call is retried, the new attempt's answer starts again from its
	// first token with Attempt one higher: an observer that shows the text
	// starts over.
	Attempt int
}

// Usage counts the tokens of one call, or of several added up.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
	// Estimated is set when the server reported no usage and the counts
	// were estimated at 4 bytes a token from the request and answer sizes.
	Estimated bool `json:"estimated,omitempty"`
}

// Add returns the sum of u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{
		PromptTokens:     u.PromptTokens + v.PromptTokens,
		CompletionTokens: u.CompletionTokens + v.CompletionTokens,
		TotalTokens:      u.TotalTokens + v.TotalTokens,
		Estimated:        u.Estimated || v.Estimated,
	}
}

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
	// every attempt. Default: the key of the executor node the context
	// belongs to (executor.NodeInfo.IdempotencyKey, stable across attempts
	// and resumes), else a random key per call. A node that makes several
	// distinct calls gives each its own key.
	IdempotencyKey string
	// Timeout bounds the call from the moment it has a slot of its model:
	// every attempt and every wait between attempts. Default
	// Options.Timeout. Waiting for the slot is bounded by ctx alone.
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
	Queued  time.Duration `json:"queued"`
	Latency time.Duration `json:"latency"`
	// TimeToFirstToken is, for a streamed answer, the time from the start
	// of the attempt that answered to its first content or tool-call
	// piece; for one that was not, to the whole answer.
	TimeToFirstToken time.Duration `json:"ttft"`
	Usage            Usage         `json:"usage"`
	IdempotencyKey   string        `json:"idempotency_key"`
	// Err is the call's error message, "" on success.
	Err string `json:"error,omitempty"`
}
