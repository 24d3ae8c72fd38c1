package llm

import (
	"encoding/json"
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
