package llm_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/llm"
)

func TestChatPlain(t *testing.T) {
	s := newChatServer(t, always(reply{text: "Paris is the capital.", usage: &llm.Usage{PromptTokens: 12, CompletionTokens: 5, TotalTokens: 17}}))
	c, _ := newClient(t, s, llm.Options{APIKey: "sk-secret", Profile: llm.Profile{Model: "big", MaxTokens: 256, Temperature: new(0.2)}})

	resp, err := c.Chat(context.Background(), llm.Request{Messages: []llm.Message{llm.System("Be brief."), llm.User("Capital of France?")}})
	require.NoError(t, err)
	assert.Equal(t, "Paris is the capital.", resp.Message.Content)
	assert.Equal(t, llm.RoleAssistant, resp.Message.Role)
	assert.Equal(t, "stop", resp.FinishReason)
	rec := resp.Record
	assert.Equal(t, "big", rec.Model)
	assert.Equal(t, "served-model", rec.ServedModel)
	assert.Equal(t, "normal", rec.Mode)
	assert.Equal(t, 1, rec.Attempts)
	assert.False(t, rec.Streamed)
	assert.Equal(t, llm.Usage{PromptTokens: 12, CompletionTokens: 5, TotalTokens: 17}, rec.Usage)
	assert.True(t, strings.HasPrefix(rec.IdempotencyKey, "llm-"), rec.IdempotencyKey)
	assert.Empty(t, rec.Err)

	reqs := s.requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	assert.Equal(t, "big", r.Model)
	assert.Equal(t, 256, r.MaxTokens)
	require.NotNil(t, r.Temperature)
	assert.Equal(t, 0.2, *r.Temperature)
	assert.False(t, r.Stream)
	require.Len(t, r.Messages, 2)
	assert.Equal(t, "system", r.Messages[0].Role)
	assert.Equal(t, "Capital of France?", r.last())
	assert.Equal(t, "Bearer sk-secret", r.Header.Get("Authorization"))
	assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
	assert.Equal(t, rec.IdempotencyKey, r.Header.Get("Idempotency-Key"))

	st := c.Stats()
	assert.Equal(t, uint64(1), st.Calls)
	assert.Equal(t, uint64(1), st.Attempts)
	assert.Equal(t, uint64(0), st.Retries)
	assert.Equal(t, uint64(12), st.PromptTokens)
	assert.Equal(t, uint64(5), st.CompletionTokens)
	assert.Equal(t, int64(0), st.InFlight)
}

func TestChatStreamed(t *testing.T) {
	s := newChatServer(t, always(reply{text: "one two three four"}))
	c, _ := newClient(t, s, llm.Options{})
	var got []llm.Token
	req := ask("count")
	req.OnToken = func(tok llm.Token) { got = append(got, tok) }
	resp, err := c.Chat(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, []llm.Token{{"one ", 1}, {"two ", 1}, {"three ", 1}, {"four", 1}}, got)
	assert.Equal(t, "one two three four", resp.Message.Content)
	assert.Equal(t, "stop", resp.FinishReason)
	assert.True(t, resp.Record.Streamed)
	assert.Equal(t, "served-model", resp.Record.ServedModel)
	assert.Equal(t, llm.Usage{PromptTokens: 10, CompletionTokens: 4, TotalTokens: 14}, resp.Record.Usage)
	assert.Positive(t, resp.Record.TimeToFirstToken)
	r := s.requests()[0]
	assert.True(t, r.Stream)
	require.NotNil(t, r.StreamOpts)
	assert.True(t, r.StreamOpts.IncludeUsage)
	assert.Equal(t, "text/event-stream", r.Header.Get("Accept"))
	assert.Equal(t, uint64(4), c.Stats().StreamedPieces)
}

func TestChatStreamedToolCalls(t *testing.T) {
	calls := []llm.ToolCall{
		{ID: "call_a", Name: "weather", Arguments: `{"city":"Oslo"}`},
		{ID: "call_b", Name: "time", Arguments: `{"zone":"Europe/Oslo"}`},
	}
	s := newChatServer(t, always(reply{calls: calls}))
	c, _ := newClient(t, s, llm.Options{})
	for _, streamed := range []bool{false, true} {
		req := ask("weather and time in Oslo?")
		req.Tools = []llm.ToolSpec{{Name: "weather"}, {Name: "time"}}
		if streamed {
			req.OnToken = func(llm.Token) {}
		}
		resp, err := c.Chat(context.Background(), req)
		require.NoError(t, err)
		assert.Equal(t, calls, resp.Message.ToolCalls, "streamed %v", streamed)
		assert.Equal(t, "tool_calls", resp.FinishReason)
	}
	r := s.requests()[0]
	require.Len(t, r.Tools, 2)
	assert.Equal(t, "function", r.Tools[0].Type)
	assert.Equal(t, "weather", r.Tools[0].Function.Name)
	assert.JSONEq(t, `{"type":"object","properties":{}}`, string(r.Tools[0].Function.Parameters))
}

func TestStreamedCallsReuseTheConnection(t *testing.T) {
	// A server that writes a long stream at once, as the benchmarks' does:
	// the client's reads stop at [DONE], before the end of the chunked
	// body, unless it drains it.
	stream := benchStream()
	var conns atomic.Int32
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write(stream)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	defer s.Close()
	c, err := llm.New(s.URL, llm.Options{Profile: llm.Profile{Model: "m"}})
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	req := ask("q")
	req.OnToken = func(llm.Token) {}
	for range 10 {
		_, err := c.Chat(context.Background(), req)
		require.NoError(t, err)
	}
	assert.Equal(t, int32(1), conns.Load())
}

func TestStreamAnsweredInOnePiece(t *testing.T) {
	s := newChatServer(t, always(reply{text: "whole answer", asJSON: true}))
	c, _ := newClient(t, s, llm.Options{})
	var got []string
	req := ask("q")
	req.OnToken = func(tok llm.Token) { got = append(got, tok.Text) }
	resp, err := c.Chat(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, []string{"whole answer"}, got)
	assert.Equal(t, "whole answer", resp.Message.Content)
}

func TestUsageEstimatedWhenNotReported(t *testing.T) {
	s := newChatServer(t, always(reply{text: strings.Repeat("word ", 20), noUsage: true}))
	c, _ := newClient(t, s, llm.Options{})
	for _, streamed := range []bool{false, true} {
		req := ask("q")
		if streamed {
			req.OnToken = func(llm.Token) {}
		}
		resp, err := c.Chat(context.Background(), req)
		require.NoError(t, err)
		u := resp.Record.Usage
		assert.True(t, u.Estimated)
		assert.Equal(t, 25, u.CompletionTokens, "100 bytes at 4 bytes a token")
		assert.Positive(t, u.PromptTokens)
		assert.Equal(t, u.PromptTokens+u.CompletionTokens, u.TotalTokens)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	clock := newFakeClock()
	tests := []struct {
		name       string
		retryAfter string
		want       time.Duration
	}{
		{"seconds", "2", 2 * time.Second},
		{"decimal seconds", "0.25", 250 * time.Millisecond},
		{"HTTP date", clock.Now().Add(7 * time.Second).Format(http.TimeFormat), 7 * time.Second},
		{"date past: backoff", clock.Now().Add(-time.Hour).Format(http.TimeFormat), 500 * time.Millisecond},
		{"malformed: backoff instead", "soon", 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newChatServer(t, sequence(
				reply{status: 429, header: map[string]string{"Retry-After": tt.retryAfter}, body: `{"error":{"message":"slow down"}}`},
				reply{text: "ok"}))
			c, clock := newClient(t, s, llm.Options{})
			resp, err := c.Chat(context.Background(), ask("q"))
			require.NoError(t, err)
			assert.Equal(t, "ok", resp.Message.Content)
			assert.Equal(t, 2, resp.Record.Attempts)
			assert.Equal(t, []time.Duration{tt.want}, clock.slept())
			reqs := s.requests()
			require.Len(t, reqs, 2)
			assert.Equal(t, reqs[0].Header.Get("Idempotency-Key"), reqs[1].Header.Get("Idempotency-Key"))
			assert.Equal(t, uint64(1), c.Stats().Retries)
		})
	}
}

func TestServerErrorsBackOff(t *testing.T) {
	s := newChatServer(t, sequence(reply{status: 500, body: "boom"}, reply{status: 502}, reply{status: 503}, reply{text: "ok"}))
	c, clock := newClient(t, s, llm.Options{MaxAttempts: 4, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond})
	resp, err := c.Chat(context.Background(), ask("q"))
	require.NoError(t, err)
	assert.Equal(t, 4, resp.Record.Attempts)
	assert.Equal(t, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}, clock.slept())
}

func TestRetriesExhausted(t *testing.T) {
	s := newChatServer(t, always(reply{status: 503, body: `{"error":{"message":"model loading"}}`}))
	c, clock := newClient(t, s, llm.Options{})
	resp, err := c.Chat(context.Background(), ask("q"))
	require.Error(t, err)
	var se *llm.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 503, se.Status)
	assert.Equal(t, s.URL+"/v1/chat/completions", se.URL)
	assert.Contains(t, err.Error(), "llm: "+s.URL+"/v1/chat/completions answered 503 Service Unavailable")
	assert.Contains(t, err.Error(), "model loading")
	assert.Contains(t, err.Error(), "after 3 attempts")
	assert.False(t, dag.IsPermanent(err), "a node may retry later")
	assert.Equal(t, 3, resp.Record.Attempts)
	assert.Equal(t, err.Error(), resp.Record.Err)
	assert.Len(t, clock.slept(), 2)
	assert.Equal(t, uint64(1), c.Stats().Failed)
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	s := newChatServer(t, always(reply{status: 400, body: `{"error":{"message":"context too long"}}`}))
	c, clock := newClient(t, s, llm.Options{})
	resp, err := c.Chat(context.Background(), ask("q"))
	var se *llm.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 400, se.Status)
	assert.Contains(t, se.Body, "context too long")
	assert.True(t, dag.IsPermanent(err))
	assert.Equal(t, 1, resp.Record.Attempts)
	assert.Empty(t, clock.slept())
}

func TestRetryAfterBeyondLimitFailsAtOnce(t *testing.T) {
	s := newChatServer(t, always(reply{status: 429, header: map[string]string{"Retry-After": "3600"}}))
	c, clock := newClient(t, s, llm.Options{})
	_, err := c.Chat(context.Background(), ask("q"))
	var se *llm.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, time.Hour, se.RetryAfter)
	assert.Contains(t, err.Error(), "more than MaxRetryAfter")
	assert.Empty(t, clock.slept())
	assert.Len(t, s.requests(), 1)
}

func TestRetryThatWouldPassTheDeadlineIsNotAttempted(t *testing.T) {
	s := newChatServer(t, always(reply{status: 429, header: map[string]string{"Retry-After": "30"}}))
	c, clock := newClient(t, s, llm.Options{})
	req := ask("q")
	req.Timeout = 10 * time.Second
	_, err := c.Chat(context.Background(), req)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "would pass the deadline")
	assert.Empty(t, clock.slept())
}

func TestRetryWaitEndsWithContext(t *testing.T) {
	s := newChatServer(t, always(reply{status: 503}))
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	clock := newFakeClock()
	stop := errors.New("operator stopped the run")
	clock.onSleep = func() { cancel(stop) }
	c, _ := newClient(t, s, llm.Options{Clock: clock})
	resp, err := c.Chat(ctx, ask("q"))
	require.ErrorIs(t, err, stop)
	assert.Contains(t, err.Error(), "waiting 500ms to retry")
	assert.Equal(t, 1, resp.Record.Attempts)
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	clock := newFakeClock()
	c, err := llm.New(url, llm.Options{Profile: llm.Profile{Model: "m"}, Clock: clock})
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	resp, err := c.Chat(context.Background(), ask("q"))
	var te *llm.TransportError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, url+"/v1/chat/completions", te.URL)
	assert.Contains(t, err.Error(), "llm: "+url+"/v1/chat/completions: ")
	assert.Contains(t, err.Error(), "connection refused")
	assert.Equal(t, 3, resp.Record.Attempts)
	assert.Equal(t, []time.Duration{500 * time.Millisecond, time.Second}, clock.slept())
}

func TestCallTimeout(t *testing.T) {
	s := newChatServer(t, always(reply{hang: true}))
	c, clock := newClient(t, s, llm.Options{})
	req := ask("q")
	req.Timeout = 50 * time.Millisecond
	resp, err := c.Chat(context.Background(), req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "call timeout of 50ms reached")
	assert.Contains(t, err.Error(), s.URL)
	assert.Equal(t, 1, resp.Record.Attempts, "a call out of time is not retried")
	assert.Empty(t, clock.slept())
}

func TestStreamCutIsRetried(t *testing.T) {
	for _, abort := range []bool{false, true} {
		name := map[bool]string{false: "clean end", true: "connection aborted"}[abort]
		t.Run(name, func(t *testing.T) {
			s := newChatServer(t, sequence(reply{text: "first try never ends", cutAfter: 2, abort: abort}, reply{text: "second try"}))
			c, _ := newClient(t, s, llm.Options{})
			var got []llm.Token
			req := ask("q")
			req.OnToken = func(tok llm.Token) { got = append(got, tok) }
			resp, err := c.Chat(context.Background(), req)
			require.NoError(t, err)
			assert.Equal(t, "second try", resp.Message.Content)
			assert.Equal(t, []llm.Token{{"first ", 1}, {"try ", 1}, {"second ", 2}, {"try", 2}}, got)
			assert.Equal(t, 2, resp.Record.Attempts)
		})
	}
}

func TestStreamCutEveryTime(t *testing.T) {
	s := newChatServer(t, always(reply{text: "never ends", cutAfter: 1}))
	c, _ := newClient(t, s, llm.Options{MaxAttempts: 2})
	req := ask("q")
	req.OnToken = func(llm.Token) {}
	_, err := c.Chat(context.Background(), req)
	require.ErrorIs(t, err, llm.ErrStreamCut)
	var te *llm.TransportError
	require.ErrorAs(t, err, &te)
	assert.Contains(t, err.Error(), "the stream ended before the answer was complete (after 2 events)")
}

func TestStreamErrorEvent(t *testing.T) {
	s := newChatServer(t, sequence(
		reply{events: []string{`{"choices":[{"index":0,"delta":{"content":"par"}}]}`, `{"error":{"message":"out of memory","type":"server_error","code":500}}`}},
		reply{text: "fine"}))
	c, _ := newClient(t, s, llm.Options{})
	req := ask("q")
	req.OnToken = func(llm.Token) {}
	resp, err := c.Chat(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, "fine", resp.Message.Content)
	assert.Equal(t, 2, resp.Record.Attempts)
}

func TestMalformedAnswers(t *testing.T) {
	tests := []struct {
		name     string
		rep      reply
		streamed bool
		want     string
	}{
		{"not JSON", reply{body: "<html>proxy error</html>"}, false, "invalid character"},
		{"no choices", reply{body: `{"choices":[]}`}, false, "no choices"},
		{"bad stream event", reply{events: []string{`{"choices":[{"delta":{"content":"x"}}]`}}, true, "stream event 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newChatServer(t, always(tt.rep))
			c, _ := newClient(t, s, llm.Options{})
			req := ask("q")
			if tt.streamed {
				req.OnToken = func(llm.Token) {}
			}
			resp, err := c.Chat(context.Background(), req)
			var re *llm.ResponseError
			require.ErrorAs(t, err, &re)
			assert.Contains(t, err.Error(), "not a chat-completions response")
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, dag.IsPermanent(err))
			assert.Equal(t, 1, resp.Record.Attempts)
		})
	}
}

func TestOversizedAnswer(t *testing.T) {
	s := newChatServer(t, always(reply{text: strings.Repeat("x", 2000)}))
	c, _ := newClient(t, s, llm.Options{MaxResponseBytes: 1024})
	_, err := c.Chat(context.Background(), ask("q"))
	var re *llm.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, err.Error(), "over MaxResponseBytes (1024 bytes)")
}

func TestOnTokenPanicIsAnError(t *testing.T) {
	s := newChatServer(t, always(reply{text: "a b c"}))
	c, _ := newClient(t, s, llm.Options{})
	req := ask("q")
	req.OnToken = func(tok llm.Token) {
		if tok.Text == "b " {
			panic("observer broke")
		}
	}
	resp, err := c.Chat(context.Background(), req)
	var pe *llm.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "observer broke", pe.Value)
	assert.Equal(t, "OnToken", pe.Where)
	assert.NotEmpty(t, pe.Stack)
	assert.True(t, dag.IsPermanent(err))
	assert.Equal(t, 1, resp.Record.Attempts)
}

func TestAPIKeyNeverLeaks(t *testing.T) {
	const key = "sk-very-secret-key"
	// A server that echoes the request's headers in its error body.
	s := newChatServer(t, func(n int, req seenRequest) reply {
		return reply{status: 503, body: "denied for " + req.Header.Get("Authorization")}
	})
	var logs bytes.Buffer
	c, _ := newClient(t, s, llm.Options{APIKey: key, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	resp, err := c.Chat(context.Background(), ask("q"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), key)
	assert.Contains(t, err.Error(), "denied for Bearer [redacted]")
	assert.NotContains(t, resp.Record.Err, key)
	assert.Contains(t, logs.String(), "llm: retrying")
	assert.NotContains(t, logs.String(), key)
}

func TestURLPasswordIsRedacted(t *testing.T) {
	s := newChatServer(t, always(reply{status: 400}))
	u := strings.Replace(s.URL, "http://", "http://user:hunter2@", 1)
	c, err := llm.New(u, llm.Options{Profile: llm.Profile{Model: "m"}})
	require.NoError(t, err)
	defer c.CloseIdleConnections()
	_, err = c.Chat(context.Background(), ask("q"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
	assert.NotContains(t, c.URL(), "hunter2")
}

func TestEndpointURLForms(t *testing.T) {
	for _, base := range []string{"http://127.0.0.1:8080", "http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1/chat/completions"} {
		c, err := llm.New(base, llm.Options{Profile: llm.Profile{Model: "m"}})
		require.NoError(t, err, base)
		assert.Equal(t, "http://127.0.0.1:8080/v1/chat/completions", c.URL(), base)
	}
	c, err := llm.New("http://127.0.0.1:11434/api/openai/v1", llm.Options{Profile: llm.Profile{Model: "m"}})
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:11434/api/openai/v1/chat/completions", c.URL())
}

func TestNewRefusesBadOptions(t *testing.T) {
	good := llm.Profile{Model: "m"}
	tests := []struct {
		name string
		url  string
		opts llm.Options
		want string
	}{
		{"no scheme", "127.0.0.1:8080", llm.Options{Profile: good}, "must be http:// or https://"},
		{"ftp", "ftp://host", llm.Options{Profile: good}, "must be http:// or https://"},
		{"no model", "http://h", llm.Options{}, "Options.Profile.Model is empty"},
		{"negative max tokens", "http://h", llm.Options{Profile: llm.Profile{Model: "m", MaxTokens: -1}}, "Options.Profile.MaxTokens = -1"},
		{"temperature NaN", "http://h", llm.Options{Profile: llm.Profile{Model: "m", Temperature: new(nan())}}, "Options.Profile.Temperature = NaN: must be in [0, 2]"},
		{"temperature 3", "http://h", llm.Options{Profile: llm.Profile{Model: "m", Temperature: new(3.0)}}, "must be in [0, 2]"},
		{"unknown mode", "http://h", llm.Options{Profile: good, Profiles: map[string]llm.Profile{"hot": {}}}, `Options.Profiles["hot"]: unknown mode; known modes are normal, low_memory, high_temp, low_disk`},
		{"bad mode profile", "http://h", llm.Options{Profile: good, Profiles: map[string]llm.Profile{"high_temp": {MaxConcurrent: -2}}}, `Options.Profiles["high_temp"].MaxConcurrent = -2`},
		{"negative timeout", "http://h", llm.Options{Profile: good, Timeout: -time.Second}, "Options.Timeout = -1s"},
		{"negative backoff", "http://h", llm.Options{Profile: good, InitialBackoff: -1}, "Options.InitialBackoff"},
		{"too many attempts", "http://h", llm.Options{Profile: good, MaxAttempts: 1000}, "Options.MaxAttempts = 1000"},
		{"negative body", "http://h", llm.Options{Profile: good, MaxResponseBytes: -1}, "Options.MaxResponseBytes = -1"},
		{"API key with newline", "http://h", llm.Options{Profile: good, APIKey: "sk-abc\n"}, "Options.APIKey has a control character at byte 6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := llm.New(tt.url, tt.opts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			if tt.opts.APIKey != "" {
				assert.NotContains(t, err.Error(), tt.opts.APIKey)
			}
			assert.True(t, strings.HasPrefix(err.Error(), "llm: "), err.Error())
		})
	}
}

func TestChatRefusesBadRequests(t *testing.T) {
	s := newChatServer(t, always(reply{text: "ok"}))
	c, _ := newClient(t, s, llm.Options{})
	tests := []struct {
		name string
		req  llm.Request
		want string
	}{
		{"no messages", llm.Request{}, "Request.Messages is empty"},
		{"bad role", llm.Request{Messages: []llm.Message{{Role: "robot", Content: "x"}}}, `Request.Messages[0].Role = "robot"`},
		{"negative max tokens", llm.Request{Messages: []llm.Message{llm.User("x")}, MaxTokens: -5}, "Request.MaxTokens = -5"},
		{"negative timeout", llm.Request{Messages: []llm.Message{llm.User("x")}, Timeout: -1}, "Request.Timeout"},
		{"temperature", llm.Request{Messages: []llm.Message{llm.User("x")}, Temperature: new(-0.5)}, "Request.Temperature = -0.5"},
		{"key with newline", llm.Request{Messages: []llm.Message{llm.User("x")}, IdempotencyKey: "a\r\nX-Evil: 1"}, "Request.IdempotencyKey has a control character at byte 1"},
		{"key too long", llm.Request{Messages: []llm.Message{llm.User("x")}, IdempotencyKey: strings.Repeat("k", 256)}, "Request.IdempotencyKey is 256 bytes long: at most 255"},
		{"tool name", llm.Request{Messages: []llm.Message{llm.User("x")}, Tools: []llm.ToolSpec{{Name: "a b"}}}, `Request.Tools[0]: llm: tool name "a b"`},
		{"tool schema", llm.Request{Messages: []llm.Message{llm.User("x")}, Tools: []llm.ToolSpec{{Name: "t", Parameters: []byte("{")}}}, `Request.Tools[0]: llm: tool "t": Parameters must be a JSON schema object`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Chat(context.Background(), tt.req)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, dag.IsPermanent(err))
		})
	}
	assert.Empty(t, s.requests())
}

func TestRequestCapsTheProfile(t *testing.T) {
	s := newChatServer(t, always(reply{text: "ok"}))
	c, _ := newClient(t, s, llm.Options{Profile: llm.Profile{Model: "m", MaxTokens: 500, Temperature: new(0.7)}})
	for _, tt := range []struct{ req, want int }{{0, 500}, {100, 100}, {900, 500}} {
		req := ask("q")
		req.MaxTokens = tt.req
		req.Temperature = new(0.0)
		_, err := c.Chat(context.Background(), req)
		require.NoError(t, err)
		r := s.requests()[len(s.requests())-1]
		assert.Equal(t, tt.want, r.MaxTokens)
		assert.Equal(t, 0.0, *r.Temperature)
	}
}
