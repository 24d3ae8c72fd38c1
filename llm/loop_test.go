package llm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/llm"
)

type addArgs struct {
	A int `json:"a" description:"first addend"`
	B int `json:"b" description:"second addend"`
}

func addTool(t *testing.T) llm.Tool {
	tool, err := llm.NewTool("add", "Adds two integers.", func(ctx context.Context, args addArgs) (int, error) {
		return args.A + args.B, nil
	})
	require.NoError(t, err)
	return tool
}

// toolThenAnswer is a model that calls a tool with args first, then, given
// the tool's result, answers with it.
func toolThenAnswer(name, args string) func(int, seenRequest) reply {
	return func(n int, req seenRequest) reply {
		last := req.Messages[len(req.Messages)-1]
		if last.Role == "tool" {
			return reply{text: "Result: " + req.last()}
		}
		return reply{calls: []llm.ToolCall{{ID: fmt.Sprintf("call_%d", n), Name: name, Arguments: args}}}
	}
}

func TestRunTools(t *testing.T) {
	for _, streamed := range []bool{false, true} {
		t.Run(map[bool]string{false: "whole", true: "streamed"}[streamed], func(t *testing.T) {
			s := newChatServer(t, toolThenAnswer("add", `{"a":2,"b":3}`))
			c, _ := newClient(t, s, llm.Options{})
			req := llm.Request{Messages: []llm.Message{llm.User("What is 2 + 3?")}, IdempotencyKey: "run-1/math"}
			var tokens strings.Builder
			if streamed {
				req.OnToken = func(tok llm.Token) { tokens.WriteString(tok.Text) }
			}
			res, err := c.RunTools(context.Background(), req, []llm.Tool{addTool(t)}, llm.LoopOptions{})
			require.NoError(t, err)
			assert.Equal(t, "Result: 5", res.Answer)
			assert.Equal(t, "stop", res.FinishReason)
			if streamed {
				assert.Equal(t, "Result: 5", tokens.String())
			}
			require.Len(t, res.Transcript, 4)
			assert.Equal(t, llm.RoleUser, res.Transcript[0].Role)
			assert.Equal(t, []llm.ToolCall{{ID: "call_1", Name: "add", Arguments: `{"a":2,"b":3}`}}, res.Transcript[1].ToolCalls)
			assert.Equal(t, llm.Message{Role: llm.RoleTool, Content: "5", ToolCallID: "call_1", Name: "add"}, res.Transcript[2])
			assert.Equal(t, "Result: 5", res.Transcript[3].Content)
			require.Len(t, res.Tools, 1)
			assert.Equal(t, "5", res.Tools[0].Result)
			assert.NoError(t, res.Tools[0].Err)
			assert.Equal(t, 1, res.Tools[0].Turn)
			require.Len(t, res.Records, 2)
			assert.Equal(t, 20+res.Records[0].Usage.CompletionTokens+res.Records[1].Usage.CompletionTokens, res.Usage.TotalTokens)

			reqs := s.requests()
			require.Len(t, reqs, 2)
			assert.Equal(t, "run-1/math/turn-1", reqs[0].Header.Get("Idempotency-Key"))
			assert.Equal(t, "run-1/math/turn-2", reqs[1].Header.Get("Idempotency-Key"))
			require.Len(t, reqs[0].Tools, 1)
			assert.JSONEq(t, `{"type":"object","properties":{"a":{"type":"integer","description":"first addend"},"b":{"type":"integer","description":"second addend"}},"required":["a","b"],"additionalProperties":false}`,
				string(reqs[0].Tools[0].Function.Parameters))
			second := reqs[1].Messages
			require.Len(t, second, 3)
			assert.Equal(t, "assistant", second[1].Role)
			assert.Nil(t, second[1].Content, "an assistant message that only calls tools has null content")
			require.Len(t, second[1].ToolCalls, 1)
			assert.Equal(t, "function", second[1].ToolCalls[0].Type)
			assert.Equal(t, `{"a":2,"b":3}`, second[1].ToolCalls[0].Function.Arguments)
			assert.Equal(t, "tool", second[2].Role)
			assert.Equal(t, "call_1", second[2].ToolCallID)
			assert.Equal(t, "5", *second[2].Content)
		})
	}
}

func TestToolFailuresGoBackToTheModel(t *testing.T) {
	failing, err := llm.NewTool("add", "Adds.", func(ctx context.Context, args addArgs) (string, error) {
		return "", errors.New("adder offline")
	})
	require.NoError(t, err)
	panicking, err := llm.NewTool("add", "Adds.", func(ctx context.Context, args addArgs) (string, error) {
		panic("adder bug")
	})
	require.NoError(t, err)
	tests := []struct {
		name       string
		tool       llm.Tool
		callName   string
		args       string
		wantResult string
		wantErr    error
	}{
		{"tool error", failing, "add", `{"a":1,"b":2}`, "error: adder offline", nil},
		{"tool panics", panicking, "add", `{"a":1,"b":2}`, "error: the tool failed (panic: adder bug)", nil},
		{"unknown tool", addTool(t), "multiply", `{"a":1,"b":2}`, `error: there is no tool named "multiply"; the tools are: add`, llm.ErrUnknownTool},
		{"invalid JSON", addTool(t), "add", `{"a":1,"b":`, "error: llm: invalid tool arguments: not a JSON object: unexpected end of JSON input", llm.ErrInvalidArguments},
		{"not an object", addTool(t), "add", `[1,2]`, "error: llm: invalid tool arguments: not a JSON object", llm.ErrInvalidArguments},
		{"missing argument", addTool(t), "add", `{"a":1}`, "error: llm: invalid tool arguments: missing required b", llm.ErrInvalidArguments},
		{"unknown argument", addTool(t), "add", `{"a":1,"b":2,"c":3}`, `error: llm: invalid tool arguments: json: unknown field "c"`, llm.ErrInvalidArguments},
		{"wrong type", addTool(t), "add", `{"a":"one","b":2}`, "error: llm: invalid tool arguments: json: cannot unmarshal string", llm.ErrInvalidArguments},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newChatServer(t, toolThenAnswer(tt.callName, tt.args))
			c, _ := newClient(t, s, llm.Options{})
			res, err := c.RunTools(context.Background(), ask("1+2?"), []llm.Tool{tt.tool}, llm.LoopOptions{})
			require.NoError(t, err)
			require.Len(t, res.Tools, 1)
			run := res.Tools[0]
			assert.True(t, strings.HasPrefix(run.Result, tt.wantResult), run.Result)
			assert.Equal(t, "Result: "+run.Result, res.Answer, "the model read the failure")
			var te *llm.ToolError
			require.ErrorAs(t, run.Err, &te)
			assert.Equal(t, tt.callName, te.Tool)
			assert.Equal(t, "call_1", te.CallID)
			if tt.wantErr != nil {
				assert.ErrorIs(t, run.Err, tt.wantErr)
			}
			assert.Equal(t, uint64(1), c.Stats().ToolErrors)
		})
	}
}

func TestFailOnToolError(t *testing.T) {
	panicking, err := llm.NewTool("add", "Adds.", func(ctx context.Context, args addArgs) (string, error) {
		panic("adder exploded")
	})
	require.NoError(t, err)
	s := newChatServer(t, toolThenAnswer("add", `{"a":1,"b":2}`))
	c, _ := newClient(t, s, llm.Options{})
	res, err := c.RunTools(context.Background(), ask("1+2?"), []llm.Tool{panicking}, llm.LoopOptions{FailOnToolError: true})
	var pe *llm.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "adder exploded", pe.Value)
	assert.Equal(t, `tool "add"`, pe.Where)
	assert.True(t, dag.IsPermanent(err))
	assert.Contains(t, err.Error(), "tool loop turn 1")
	assert.Len(t, s.requests(), 1)
	assert.Len(t, res.Transcript, 3, "the transcript so far is kept")

	// Unknown tools are the model's mistake: reported to it even so.
	s = newChatServer(t, toolThenAnswer("nope", `{}`))
	c, _ = newClient(t, s, llm.Options{})
	res, err = c.RunTools(context.Background(), ask("1+2?"), []llm.Tool{addTool(t)}, llm.LoopOptions{FailOnToolError: true})
	require.NoError(t, err)
	assert.Contains(t, res.Answer, "there is no tool named")
}

func TestEndlessToolLoopIsBounded(t *testing.T) {
	s := newChatServer(t, func(n int, req seenRequest) reply {
		return reply{calls: []llm.ToolCall{{ID: fmt.Sprint(n), Name: "add", Arguments: `{"a":1,"b":1}`}}}
	})
	c, _ := newClient(t, s, llm.Options{})
	res, err := c.RunTools(context.Background(), ask("loop forever"), []llm.Tool{addTool(t)}, llm.LoopOptions{MaxIterations: 4})
	require.ErrorIs(t, err, llm.ErrMaxIterations)
	require.ErrorIs(t, err, limit.ErrExceeded)
	var le *limit.Error
	require.ErrorAs(t, err, &le)
	assert.Equal(t, llm.KindIterations, le.Kind)
	assert.Equal(t, 4.0, le.Limit)
	var loopErr *llm.LoopError
	require.ErrorAs(t, err, &loopErr)
	assert.Contains(t, err.Error(), "llm: tool loop: iteration limit reached: llm_iterations (tool loop) limit exceeded: 5 model calls > 4 model calls")
	assert.True(t, dag.IsPermanent(err))
	assert.Len(t, s.requests(), 4)
	assert.Len(t, res.Records, 4)
	assert.Len(t, res.Tools, 3, "the last call's tools are not run")
}

func TestToolLoopTokenBudget(t *testing.T) {
	s := newChatServer(t, func(n int, req seenRequest) reply {
		return reply{calls: []llm.ToolCall{{ID: fmt.Sprint(n), Name: "add", Arguments: `{"a":1,"b":1}`}},
			usage: &llm.Usage{PromptTokens: 800, CompletionTokens: 200, TotalTokens: 1000}}
	})
	c, _ := newClient(t, s, llm.Options{Profile: llm.Profile{Model: "m", MaxTokens: 1200}})
	res, err := c.RunTools(context.Background(), ask("q"), []llm.Tool{addTool(t)}, llm.LoopOptions{MaxTokens: 2500})
	require.ErrorIs(t, err, llm.ErrTokenBudget)
	var le *limit.Error
	require.ErrorAs(t, err, &le)
	assert.Equal(t, llm.KindTokens, le.Kind)
	assert.Equal(t, 3000.0, le.Current)
	assert.Equal(t, 2500.0, le.Limit)
	assert.Equal(t, 3000, res.Usage.TotalTokens)
	var maxTokens []int
	for _, r := range s.requests() {
		maxTokens = append(maxTokens, r.MaxTokens)
	}
	assert.Equal(t, []int{1200, 1200, 500}, maxTokens, "each call's answer is capped to the budget left")
}

func TestModelCallFailureEndsTheLoop(t *testing.T) {
	s := newChatServer(t, func(n int, req seenRequest) reply {
		if n == 1 {
			return reply{calls: []llm.ToolCall{{ID: "c1", Name: "add", Arguments: `{"a":1,"b":1}`}}}
		}
		return reply{status: 400, body: "prompt too long"}
	})
	c, _ := newClient(t, s, llm.Options{})
	res, err := c.RunTools(context.Background(), ask("q"), []llm.Tool{addTool(t)}, llm.LoopOptions{})
	var se *llm.StatusError
	require.ErrorAs(t, err, &se)
	assert.Contains(t, err.Error(), "(tool loop turn 2)")
	assert.Len(t, res.Transcript, 3)
	assert.Len(t, res.Records, 2)
	assert.NotEmpty(t, res.Records[1].Err)
}

func TestRunToolsRefusesBadTools(t *testing.T) {
	s := newChatServer(t, always(reply{text: "ok"}))
	c, _ := newClient(t, s, llm.Options{})
	add := addTool(t)
	tests := []struct {
		name  string
		tools []llm.Tool
		opts  llm.LoopOptions
		want  string
	}{
		{"duplicate", []llm.Tool{add, add}, llm.LoopOptions{}, `two tools are named "add"`},
		{"bad name", []llm.Tool{{ToolSpec: llm.ToolSpec{Name: "add numbers"}, Call: add.Call}}, llm.LoopOptions{}, `tool name "add numbers"`},
		{"no func", []llm.Tool{{ToolSpec: llm.ToolSpec{Name: "x"}}}, llm.LoopOptions{}, `tool "x": Call is nil`},
		{"bad schema", []llm.Tool{{ToolSpec: llm.ToolSpec{Name: "x", Parameters: []byte(`"object"`)}, Call: add.Call}}, llm.LoopOptions{}, "Parameters must be a JSON schema object"},
		{"negative iterations", nil, llm.LoopOptions{MaxIterations: -1}, "LoopOptions.MaxIterations = -1"},
		{"negative tokens", nil, llm.LoopOptions{MaxTokens: -1}, "LoopOptions.MaxTokens = -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.RunTools(context.Background(), ask("q"), tt.tools, tt.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, dag.IsPermanent(err))
		})
	}
	assert.Empty(t, s.requests())
}

func TestToolTimeout(t *testing.T) {
	slow, err := llm.NewTool("wait", "Waits for its context.", func(ctx context.Context, _ struct{}) (string, error) {
		<-ctx.Done()
		return "", context.Cause(ctx)
	})
	require.NoError(t, err)
	s := newChatServer(t, toolThenAnswer("wait", ``))
	c, _ := newClient(t, s, llm.Options{})
	res, err := c.RunTools(context.Background(), ask("q"), []llm.Tool{slow}, llm.LoopOptions{ToolTimeout: 1})
	require.NoError(t, err)
	assert.Equal(t, "error: tool timeout of 1ns reached: context deadline exceeded", res.Tools[0].Result)
	assert.ErrorIs(t, res.Tools[0].Err, context.DeadlineExceeded)
}
