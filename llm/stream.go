package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// streamResult is what one attempt read.
type streamResult struct {
	content string
	calls   []ToolCall
	finish  string
	model   string
	usage   *wireUsage
	ttft    time.Duration
	pieces  int
}

// readWhole reads a whole (not streamed) answer.
func (c *Client) readWhole(ctx context.Context, body io.Reader) (streamResult, error) {
	raw, err := io.ReadAll(io.LimitReader(body, int64(c.maxBody)+1))
	if err != nil {
		return streamResult{}, c.transportError(ctx, fmt.Errorf("reading the answer: %w", err))
	}
	if len(raw) > c.maxBody {
		return streamResult{}, &ResponseError{URL: c.shown, Err: fmt.Errorf("answer over MaxResponseBytes (%d bytes)", c.maxBody)}
	}
	var wr wireResponse
	if err := json.Unmarshal(raw, &wr); err != nil {
		return streamResult{}, &ResponseError{URL: c.shown, Err: fmt.Errorf("%w: %s", err, c.excerpt(string(raw)))}
	}
	if wr.Error != nil {
		return streamResult{}, &StatusError{URL: c.shown, Status: wr.Error.status(), Body: c.excerpt(wr.Error.text())}
	}
	if len(wr.Choices) == 0 {
		return streamResult{}, &ResponseError{URL: c.shown, Err: fmt.Errorf("no choices: %s", c.excerpt(string(raw)))}
	}
	ch := wr.Choices[0]
	return streamResult{content: ch.Message.Content, calls: toolCalls(ch.Message.ToolCalls),
		finish: ch.FinishReason, model: wr.Model, usage: wr.Usage}, nil
}

// readStream reads a streamed answer, passing its content to onToken as it
// arrives. The stream is complete at "data: [DONE]", or at the end of the
// body after an event with a finish_reason; ending otherwise, it is cut.
func (c *Client) readStream(ctx context.Context, body io.Reader, attempt int, onToken func(Token), t0 time.Time) (streamResult, error) {
	var (
		res     streamResult
		content strings.Builder
		calls   []toolAcc
		events  int
	)
	sr := newSSEReader(body, 16<<10, c.maxBody)
	for {
		data, err := sr.next()
		if err != nil {
			switch {
			case errors.Is(err, errLineTooLong):
				return res, &ResponseError{URL: c.shown, Err: err}
			case ctx.Err() != nil:
				return res, c.transportError(ctx, err)
			case err == io.EOF && res.finish != "":
			case err == io.EOF:
				return res, &TransportError{URL: c.shown, Err: fmt.Errorf("%w (after %d events)", ErrStreamCut, events)}
			default:
				return res, &TransportError{URL: c.shown, Err: fmt.Errorf("%w (after %d events): %w", ErrStreamCut, events, err)}
			}
			break
		}
		if string(data) == "[DONE]" {
			break
		}
		events++
		var ch *wireChunk
		if events == 1 {
			var fc wireFirstChunk
			err = json.Unmarshal(data, &fc)
			res.model, ch = fc.Model, &fc.wireChunk
		} else {
			ch = new(wireChunk)
			err = json.Unmarshal(data, ch)
		}
		if err != nil {
			return res, &ResponseError{URL: c.shown, Err: fmt.Errorf("stream event %d: %w: %s", events, err, c.excerpt(string(data)))}
		}
		if ch.Error != nil {
			return res, &StatusError{URL: c.shown, Status: ch.Error.status(), Body: c.excerpt(ch.Error.text())}
		}
		if ch.Usage != nil {
			res.usage = ch.Usage
		}
		for i := range ch.Choices {
			choice := &ch.Choices[i]
			if choice.Index != 0 {
				continue // one answer is asked for
			}
			if t := choice.Delta.Content; t != "" {
				if res.ttft == 0 {
					res.ttft = max(1, c.clock.Now().Sub(t0))
				}
				content.WriteString(t)
				res.pieces++
				if err := emit(onToken, Token{Text: t, Attempt: attempt}); err != nil {
					return res, err
				}
			}
			for _, d := range choice.Delta.ToolCalls {
				if res.ttft == 0 {
					res.ttft = max(1, c.clock.Now().Sub(t0))
				}
				calls = mergeToolDelta(calls, d)
			}
			if choice.FinishReason != "" {
				res.finish = choice.FinishReason
			}
		}
	}
	res.content = content.String()
	for i := range calls {
		res.calls = append(res.calls, calls[i].call(i))
	}
	return res, nil
}

// emit calls onToken, turning a panic into a *PanicError.
func emit(onToken func(Token), t Token) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Where: "OnToken", Value: r, Stack: debug.Stack()}
		}
	}()
	onToken(t)
	return nil
}

// toolAcc assembles one tool call from its stream pieces.
type toolAcc struct {
	index    int
	id, name string
	args     []byte
}

func (a *toolAcc) call(i int) ToolCall {
	id := a.id
	if id == "" {
		id = "call_" + strconv.Itoa(i+1)
	}
	return ToolCall{ID: id, Name: a.name, Arguments: string(a.args)}
}

// mergeToolDelta adds a piece of a tool call to the calls assembled so far.
// A piece belongs to the call of its index; a piece with no index to the
// last call, unless it carries a new ID.
func mergeToolDelta(calls []toolAcc, d wireToolCall) []toolAcc {
	var a *toolAcc
	switch {
	case d.Index != nil:
		for i := range calls {
			if calls[i].index == *d.Index {
				a = &calls[i]
				break
			}
		}
		if a == nil {
			calls = append(calls, toolAcc{index: *d.Index})
			a = &calls[len(calls)-1]
		}
	case len(calls) == 0 || d.ID != "" && calls[len(calls)-1].id != "" && d.ID != calls[len(calls)-1].id:
		calls = append(calls, toolAcc{index: -len(calls) - 1})
		a = &calls[len(calls)-1]
	default:
		a = &calls[len(calls)-1]
	}
	if a.id == "" {
		a.id = d.ID
	}
	if a.name == "" {
		a.name = d.Function.Name
	}
	a.args = append(a.args, d.Function.Arguments...)
	return calls
}
