package llm

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// The chat-completions protocol as llama.cpp's server, Ollama's /v1 and
// vLLM speak it: only the fields this package sends or reads.

type wireRequest struct {
	Model         string             `json:"model"`
	Messages      []wireMessage      `json:"messages"`
	MaxTokens     int                `json:"max_tokens,omitempty"`
	Temperature   *float64           `json:"temperature,omitempty"`
	Stream        bool               `json:"stream,omitempty"`
	StreamOptions *wireStreamOptions `json:"stream_options,omitempty"`
	Tools         []wireTool         `json:"tools,omitempty"`
}

type wireStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type wireMessage struct {
	Role string `json:"role"`
	// Content is null in an assistant message that only calls tools.
	Content    *string        `json:"content"`
	ToolCalls  []wireToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
	Name       string         `json:"name,omitempty"`
}

type wireToolCall struct {
	Index    *int             `json:"index,omitempty"`
	ID       string           `json:"id,omitempty"`
	Type     string           `json:"type,omitempty"`
	Function wireFunctionCall `json:"function"`
}

type wireFunctionCall struct {
	Name      string   `json:"name,omitempty"`
	Arguments wireArgs `json:"arguments"`
}

// wireArgs is a tool call's arguments: a JSON string holding JSON text, as
// the protocol says, or (as some servers send) the object itself.
type wireArgs string

func (a wireArgs) MarshalJSON() ([]byte, error) { return json.Marshal(string(a)) }

func (a *wireArgs) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = wireArgs(s)
	case string(b) == "null":
		*a = ""
	default:
		var c bytes.Buffer
		if err := json.Compact(&c, b); err != nil {
			return err
		}
		*a = wireArgs(c.String())
	}
	return nil
}

type wireTool struct {
	Type     string       `json:"type"`
	Function wireFunction `json:"function"`
}

type wireFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"`
}

type wireUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type wireError struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
}

// status is the HTTP status an error event stands for: its numeric code
// when it has one in 400..599, else 500.
func (e *wireError) status() int {
	if n, err := strconv.Atoi(string(bytes.Trim(e.Code, `"`))); err == nil && n >= 400 && n <= 599 {
		return n
	}
	return 500
}

func (e *wireError) text() string {
	if e.Type != "" && e.Message != "" {
		return e.Type + ": " + e.Message
	}
	return e.Message + e.Type
}

type wireResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content   string         `json:"content"`
			ToolCalls []wireToolCall `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *wireUsage `json:"usage"`
	Error *wireError `json:"error"`
}

// wireChunk is one event of a stream. The model is read from the first
// event only (wireFirstChunk), sparing a string per event after it.
type wireChunk struct {
	Choices []wireChunkChoice `json:"choices"`
	Usage   *wireUsage        `json:"usage"`
	Error   *wireError        `json:"error"`
}

type wireFirstChunk struct {
	Model string `json:"model"`
	wireChunk
}

type wireChunkChoice struct {
	Index int `json:"index"`
	Delta struct {
		Content   string         `json:"content"`
		ToolCalls []wireToolCall `json:"tool_calls"`
	} `json:"delta"`
	FinishReason string `json:"finish_reason"`
}

// encodeRequest builds the JSON body of a call.
func encodeRequest(model string, msgs []Message, tools []ToolSpec, maxTokens int, temp *float64, stream bool) ([]byte, error) {
	wr := wireRequest{Model: model, MaxTokens: maxTokens, Temperature: temp, Stream: stream}
	if stream {
		wr.StreamOptions = &wireStreamOptions{IncludeUsage: true}
	}
	wr.Messages = make([]wireMessage, len(msgs))
	for i, m := range msgs {
		w := wireMessage{Role: m.Role, ToolCallID: m.ToolCallID, Name: m.Name}
		if m.Content != "" || len(m.ToolCalls) == 0 {
			w.Content = &msgs[i].Content
		}
		for _, tc := range m.ToolCalls {
			w.ToolCalls = append(w.ToolCalls, wireToolCall{ID: tc.ID, Type: "function",
				Function: wireFunctionCall{Name: tc.Name, Arguments: wireArgs(tc.Arguments)}})
		}
		wr.Messages[i] = w
	}
	for _, t := range tools {
		p := t.Parameters
		if len(p) == 0 {
			p = json.RawMessage(emptyObjectSchema)
		}
		wr.Tools = append(wr.Tools, wireTool{Type: "function",
			Function: wireFunction{Name: t.Name, Description: t.Description, Parameters: p}})
	}
	return json.Marshal(wr)
}

// emptyObjectSchema is the parameters of a tool that takes none.
const emptyObjectSchema = `{"type":"object","properties":{}}`

// toolCalls converts the calls of a whole (not streamed) message.
func toolCalls(w []wireToolCall) []ToolCall {
	if len(w) == 0 {
		return nil
	}
	out := make([]ToolCall, len(w))
	for i, c := range w {
		out[i] = ToolCall{ID: c.ID, Name: c.Function.Name, Arguments: string(c.Function.Arguments)}
		if out[i].ID == "" {
			out[i].ID = "call_" + strconv.Itoa(i+1)
		}
	}
	return out
}
