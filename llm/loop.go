package llm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
)

// LoopOptions bounds a tool loop. The zero value means the defaults.
type LoopOptions struct {
	// MaxIterations bounds the model calls. Default 8.
	MaxIterations int
	// MaxTokens bounds the tokens of all the model calls (their usage's
	// TotalTokens added up; estimated when the server reports none). Each
	// call's max_tokens is capped to what is left. Default 32768.
	MaxTokens int
	// ToolTimeout bounds each tool call. Default none beyond ctx.
	ToolTimeout time.Duration
	// FailOnToolError ends the loop with the *ToolError of the first tool
	// that returns an error or panics, instead of reporting it to the
	// model. Unknown tools and invalid arguments are the model's mistakes
	// and are reported to it either way.
	FailOnToolError bool
}

// ToolRun is one tool call of a loop.
type ToolRun struct {
	// Turn is the model call (from 1) that asked for it.
	Turn int
	Call ToolCall
	// Result is what the model was told: the tool's result, or "error: "
	// and what went wrong.
	Result string
	// Err is the *ToolError of a failed call, nil otherwise.
	Err      error
	Duration time.Duration
}

// LoopResult is the outcome of a tool loop, filled in as far as the loop
// went when it fails.
type LoopResult struct {
	// Answer is the final answer: the content of the model's last message,
	// which asked for no tool.
	Answer       string
	FinishReason string
	// Transcript is the conversation: the request's messages, then every
	// assistant message and tool result in order.
	Transcript []Message
	// Records are the model calls' records, in order.
	Records []Record
	// Tools are the tool calls run, in order.
	Tools []ToolRun
	// Usage adds up the model calls' usage.
	Usage Usage
}

// RunTools runs the model → tools → model loop: it calls the model with
// req and the tools' specs (req.Tools is ignored), runs the tools the
// answer asks for, one after the other in the order asked, appends their
// results to the conversation and calls the model again, until it answers
// without asking for a tool. Each model call is a Chat call with the mode's
// profile, req's priority, timeout and OnToken, and the Idempotency-Key
// "<key>/turn-<n>" where key is req.IdempotencyKey or its default: stable
// across retries and, inside an executor node, across attempts and resumes.
//
// A tool's error or panic is reported to the model as the tool's result
// ("error: ..."), as are a call to a tool that does not exist and arguments
// that are not valid JSON or do not fit the schema; every failure is in
// LoopResult.Tools with its *ToolError. With opts.FailOnToolError a tool's
// own error or panic ends the loop instead.
//
// The loop ends with a *LoopError wrapping ErrMaxIterations when the last
// allowed call still asks for tools (they are not run), or ErrTokenBudget
// when the calls have used opts.MaxTokens before a final answer; a failed
// model call ends it with Chat's error. The LoopResult holds the
// transcript so far in every case.
func (c *Client) RunTools(ctx context.Context, req Request, tools []Tool, opts LoopOptions) (LoopResult, error) {
	res := LoopResult{Transcript: slices.Clone(req.Messages)}
	switch {
	case opts.MaxIterations < 0:
		return res, dag.Permanent(fmt.Errorf("llm: LoopOptions.MaxIterations = %d: must be ≥ 0 (0 for 8)", opts.MaxIterations))
	case opts.MaxTokens < 0:
		return res, dag.Permanent(fmt.Errorf("llm: LoopOptions.MaxTokens = %d: must be ≥ 0 (0 for 32768)", opts.MaxTokens))
	case opts.ToolTimeout < 0:
		return res, dag.Permanent(fmt.Errorf("llm: LoopOptions.ToolTimeout = %v: must be ≥ 0", opts.ToolTimeout))
	}
	maxIter := cmp.Or(opts.MaxIterations, 8)
	budget := cmp.Or(opts.MaxTokens, 32768)
	byName := make(map[string]*Tool, len(tools))
	specs := make([]ToolSpec, len(tools))
	for i := range tools {
		t := &tools[i]
		if err := t.validate(); err != nil {
			return res, dag.Permanent(err)
		}
		if byName[t.Name] != nil {
			return res, dag.Permanent(fmt.Errorf("llm: two tools are named %q", t.Name))
		}
		byName[t.Name] = t
		specs[i] = t.ToolSpec
	}
	key := idempotencyKey(ctx, req.IdempotencyKey)

	for turn := 1; ; turn++ {
		r := req
		r.Messages = res.Transcript
		r.Tools = specs
		r.IdempotencyKey = key + "/turn-" + strconv.Itoa(turn)
		if left := budget - res.Usage.TotalTokens; r.MaxTokens == 0 || left < r.MaxTokens {
			r.MaxTokens = left
		}
		resp, err := c.Chat(ctx, r)
		res.Records = append(res.Records, resp.Record)
		res.Usage = res.Usage.Add(resp.Record.Usage)
		if err != nil {
			return res, fmt.Errorf("%w (tool loop turn %d)", err, turn)
		}
		res.Transcript = append(res.Transcript, resp.Message)
		if len(resp.Message.ToolCalls) == 0 {
			res.Answer, res.FinishReason = resp.Message.Content, resp.FinishReason
			return res, nil
		}
		if turn >= maxIter {
			return res, dag.Permanent(&LoopError{Reason: ErrMaxIterations, Limit: &limit.Error{
				Kind: KindIterations, Subject: "tool loop", Current: float64(turn + 1), Limit: float64(maxIter), Unit: "model calls",
				Detail: "the last allowed call still asked for tools"}})
		}
		if res.Usage.TotalTokens >= budget {
			return res, dag.Permanent(&LoopError{Reason: ErrTokenBudget, Limit: &limit.Error{
				Kind: KindTokens, Subject: "tool loop", Current: float64(res.Usage.TotalTokens), Limit: float64(budget), Unit: "tokens",
				Detail: fmt.Sprintf("after %d model calls, the last still asking for tools", turn)}})
		}
		for _, call := range resp.Message.ToolCalls {
			run := c.runTool(ctx, byName, call, opts.ToolTimeout)
			run.Turn = turn
			res.Tools = append(res.Tools, run)
			res.Transcript = append(res.Transcript, Message{Role: RoleTool, ToolCallID: call.ID, Name: call.Name, Content: run.Result})
			if run.Err != nil && opts.FailOnToolError && !errors.Is(run.Err, ErrUnknownTool) && !errors.Is(run.Err, ErrInvalidArguments) {
				err := run.Err
				var pe *PanicError
				if errors.As(err, &pe) {
					err = dag.Permanent(err)
				}
				return res, fmt.Errorf("%w (tool loop turn %d)", err, turn)
			}
		}
	}
}

// runTool runs one call, turning every failure into a result for the
// model.
func (c *Client) runTool(ctx context.Context, byName map[string]*Tool, call ToolCall, timeout time.Duration) ToolRun {
	run := ToolRun{Call: call}
	c.stats.toolCalls.Add(1)
	t := byName[call.Name]
	if t == nil {
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		slices.Sort(names)
		run.Err = &ToolError{Tool: call.Name, CallID: call.ID, Err: fmt.Errorf("%w %q", ErrUnknownTool, call.Name)}
		run.Result = fmt.Sprintf("error: there is no tool named %q; the tools are: %s", call.Name, strings.Join(names, ", "))
		c.stats.toolErrors.Add(1)
		return run
	}
	start := c.clock.Now()
	out, err := callTool(ctx, t, call, timeout)
	run.Duration = c.clock.Now().Sub(start)
	if err != nil {
		run.Err = &ToolError{Tool: call.Name, CallID: call.ID, Err: err}
		var pe *PanicError
		switch {
		case errors.As(err, &pe):
			run.Result = fmt.Sprintf("error: the tool failed (panic: %v)", pe.Value)
		case errors.Is(err, ErrInvalidArguments):
			run.Result = "error: " + err.Error() + "; the arguments must be a JSON object that fits the tool's parameters schema"
		default:
			run.Result = "error: " + err.Error()
		}
		c.stats.toolErrors.Add(1)
		return run
	}
	run.Result = out
	return run
}

// callTool calls t, turning a panic into a *PanicError.
func callTool(ctx context.Context, t *Tool, call ToolCall, timeout time.Duration) (out string, err error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("tool timeout of %v reached: %w", timeout, context.DeadlineExceeded))
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Where: fmt.Sprintf("tool %q", t.Name), Value: r, Stack: debug.Stack()}
		}
	}()
	return t.Call(ctx, json.RawMessage(call.Arguments))
}
