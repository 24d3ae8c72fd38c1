package llm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/dag"
)

// attempts sends the request until an attempt succeeds, one fails for
// good, or the attempts, the time or ctx run out.
func (c *Client) attempts(ctx context.Context, body []byte, onToken func(Token), rec *Record) (Response, error) {
	for n := 1; ; n++ {
		if n > 1 {
			if err := c.waitGuard(ctx); err != nil {
				return Response{}, err
			}
		}
		var (
			res Response
			ran bool
		)
		fn := func(ctx context.Context) error {
			ran = true
			rec.Attempts = n
			c.stats.attempts.Add(1)
			if n > 1 {
				c.stats.retries.Add(1)
			}
			var err error
			res, err = c.once(ctx, n, body, onToken, rec)
			return err
		}
		var err error
		if c.throttler != nil {
			err = protect("Throttler.Do", func() error { return c.throttler.Do(ctx, fn) })
		} else {
			err = fn(ctx)
		}
		switch {
		case err == nil:
			return res, nil
		case !ran:
			return Response{}, fmt.Errorf("llm: %s: throttler: %w", c.shown, err)
		case !retryable(ctx, err):
			if ctx.Err() == nil {
				err = dag.Permanent(err)
			}
			return Response{}, attemptsNote(err, n)
		case n >= c.maxAttempts:
			return Response{}, attemptsNote(err, n)
		}
		wait := backoff(n, c.initialBackoff, c.maxBackoff)
		if ra := retryAfterOf(err); ra > 0 {
			if ra > c.maxRetryAfter {
				return Response{}, fmt.Errorf("%w (%s; not retried: the server asks to wait %v, more than MaxRetryAfter %v)", err, afterAttempts(n), ra, c.maxRetryAfter)
			}
			wait = ra
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return Response{}, fmt.Errorf("%w (%s; the next one, in %v, would pass the deadline)", err, afterAttempts(n), wait)
		}
		c.log.Debug("llm: retrying", "url", c.shown, "attempt", n+1, "wait", wait, "error", err)
		if serr := c.clock.Sleep(ctx, wait); serr != nil {
			return Response{}, fmt.Errorf("llm: %s: waiting %v to retry: %w (last attempt: %v)", c.shown, wait, serr, err)
		}
	}
}

// attemptsNote adds the number of attempts to a final error when there
// were retries.
func attemptsNote(err error, n int) error {
	if n == 1 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, afterAttempts(n))
}

// afterAttempts reads "after 1 attempt" or "after n attempts".
func afterAttempts(n int) string {
	if n == 1 {
		return "after 1 attempt"
	}
	return fmt.Sprintf("after %d attempts", n)
}

// once sends one attempt and reads its answer.
func (c *Client) once(ctx context.Context, attempt int, body []byte, onToken func(Token), rec *Record) (Response, error) {
	t0 := c.clock.Now()
	// reqCtx lets a finished stream's last bytes be drained with a bound.
	reqCtx, cancelReq := context.WithCancel(ctx)
	defer cancelReq()
	hreq, err := http.NewRequestWithContext(reqCtx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return Response{}, &ResponseError{URL: c.shown, Err: err}
	}
	stream := onToken != nil
	hreq.Header.Set("Content-Type", "application/json")
	if stream {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	if c.apiKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	hreq.Header.Set("Idempotency-Key", rec.IdempotencyKey)
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return Response{}, c.transportError(ctx, err)
	}
	defer hresp.Body.Close()
	if hresp.StatusCode < 200 || hresp.StatusCode > 299 {
		return Response{}, c.statusError(hresp)
	}
	var out streamResult
	if stream && !strings.HasPrefix(hresp.Header.Get("Content-Type"), "application/json") {
		out, err = c.readStream(ctx, hresp.Body, attempt, onToken, t0)
		if err == nil {
			drain(hresp.Body, cancelReq)
		}
	} else {
		out, err = c.readWhole(ctx, hresp.Body)
		if err == nil && stream && out.content != "" {
			// The server answered in one piece: one token.
			out.pieces = 1
			err = emit(onToken, Token{Text: out.content, Attempt: attempt})
		}
		out.ttft = c.clock.Now().Sub(t0)
	}
	if err != nil {
		return Response{}, err
	}
	c.stats.streamed.Add(uint64(out.pieces))
	rec.ServedModel = out.model
	rec.TimeToFirstToken = out.ttft
	if out.usage != nil {
		rec.Usage = Usage{PromptTokens: out.usage.PromptTokens, CompletionTokens: out.usage.CompletionTokens, TotalTokens: out.usage.TotalTokens}
		if rec.Usage.TotalTokens == 0 {
			rec.Usage.TotalTokens = rec.Usage.PromptTokens + rec.Usage.CompletionTokens
		}
	} else {
		args := 0
		for _, tc := range out.calls {
			args += len(tc.Arguments) + len(tc.Name)
		}
		in, outTok := (len(body)+3)/4, (len(out.content)+args+3)/4
		rec.Usage = Usage{PromptTokens: in, CompletionTokens: outTok, TotalTokens: in + outTok, Estimated: true}
	}
	return Response{
		Message:      Message{Role: RoleAssistant, Content: out.content, ToolCalls: out.calls},
		FinishReason: out.finish,
	}, nil
}

// drainBound bounds the wait for the end of a finished stream's body.
const drainBound = 50 * time.Millisecond

// drain reads what is left of a finished stream (the end of the chunked
// body, after [DONE]), so that the connection can serve the next call; a
// server that holds the stream open after [DONE] gets drainBound, then
// the request is cancelled and the connection closed.
func drain(body io.Reader, cancel context.CancelFunc) {
	t := time.AfterFunc(drainBound, cancel)
	_, _ = io.CopyN(io.Discard, body, 4<<10)
	t.Stop()
}

// transportError wraps a failure to send or read, with ctx's cause when ctx
// ended.
func (c *Client) transportError(ctx context.Context, err error) *TransportError {
	if ctx.Err() != nil {
		return &TransportError{URL: c.shown, Err: context.Cause(ctx)}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its message repeats the URL
	}
	return &TransportError{URL: c.shown, Err: err}
}

// statusError reads an excerpt of a failed answer.
func (c *Client) statusError(resp *http.Response) *StatusError {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // the rest is dropped with the connection
	e := &StatusError{URL: c.shown, Status: resp.StatusCode, Body: c.excerpt(string(raw))}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), c.clock.Now()); ok {
		e.RetryAfter = d
	}
	return e
}

// excerpt returns at most excerptLen bytes of s, trimmed, without the API
// key.
func (c *Client) excerpt(s string) string {
	if c.apiKey != "" {
		s = strings.ReplaceAll(s, c.apiKey, "[redacted]")
	}
	s = strings.TrimSpace(s)
	if len(s) > excerptLen {
		s = strings.ToValidUTF8(s[:excerptLen], "") + "…"
	}
	return s
}
