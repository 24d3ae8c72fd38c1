package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSlotsGrantByHeadLimit(t *testing.T) {
	var s slots
	ctx := context.Background()
	require.NoError(t, s.acquire(ctx, 0, 2, nil))
	require.NoError(t, s.acquire(ctx, 0, 2, nil))
	// A waiter that accepts 1 call under way waits until both are done,
	// and a later one of lower priority waits behind it.
	first := make(chan error, 1)
	go func() { first <- s.acquire(ctx, 1, 1, nil) }()
	waitQueued(&s, 1)
	second := make(chan error, 1)
	go func() { second <- s.acquire(ctx, 0, 3, nil) }()
	waitQueued(&s, 2)
	s.release()
	assert.Equal(t, 2, queued(&s), "the head accepts 1 call under way: 1 still is")
	s.release()
	require.NoError(t, <-first)
	require.NoError(t, <-second, "the next head accepts 3")
	s.mu.Lock()
	assert.Equal(t, 2, s.inflight)
	s.mu.Unlock()
	s.release()
	s.release()
	assert.Equal(t, 0, s.inflight)
}

func TestSlotsCancelledWaiterLetsOthersThrough(t *testing.T) {
	var s slots
	require.NoError(t, s.acquire(context.Background(), 0, 1, nil))
	ctx, cancel := context.WithCancel(context.Background())
	high := make(chan error, 1)
	go func() { high <- s.acquire(ctx, 9, 1, nil) }()
	waitQueued(&s, 1)
	low := make(chan error, 1)
	go func() { low <- s.acquire(context.Background(), 0, 1, nil) }()
	waitQueued(&s, 2)
	cancel()
	require.ErrorIs(t, <-high, context.Canceled)
	assert.Equal(t, 1, queued(&s))
	s.release()
	require.NoError(t, <-low)
	s.release()
	assert.Equal(t, 0, s.inflight)
}

func queued(s *slots) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

func waitQueued(s *slots, n int) {
	for queued(s) != n {
		runtime.Gosched()
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"5", 5 * time.Second, true},
		{" 12 ", 12 * time.Second, true},
		{"1.5", 1500 * time.Millisecond, true},
		{"99999999999", maxRetryAfter, true},
		{"1e400", 0, false},
		{"-3", 0, false},
		{"NaN", 0, false},
		{"Inf", 0, false},
		{"", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{now.Add(1000 * time.Hour).Format(http.TimeFormat), maxRetryAfter, true},
		{"Sun, 06 Nov 1994 08:49:37 GMT", 0, true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", 0, true},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		assert.Equal(t, tt.ok, ok, tt.in)
		assert.Equal(t, tt.want, got, tt.in)
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"1", "1.5", "-1", "Sun, 06 Nov 1994 08:49:37 GMT", "1e9", ".", "NaN"} {
		f.Add(s)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseRetryAfter(s, now)
		if d < 0 || d > maxRetryAfter || !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, %v", s, d, ok)
		}
	})
}

func TestBackoff(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, backoff(n, 500*time.Millisecond, 5*time.Second))
	}
	assert.Equal(t, []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}, got)
	assert.Equal(t, 10*time.Second, backoff(math.MaxInt32, time.Second, 10*time.Second))
}

// sseEvents reads every event of an SSE body.
func sseEvents(r io.Reader, max int) ([]string, error) {
	sr := newSSEReader(r, 16, max)
	var out []string
	for {
		d, err := sr.next()
		if err != nil {
			return out, err
		}
		out = append(out, string(d))
	}
}

func TestSSEReader(t *testing.T) {
	body := ": comment\r\n\r\nevent: message\ndata: {\"a\":1}\n\ndata:{\"b\":2}\r\n\r\nid: 7\nretry: 10\n\ndata: " +
		strings.Repeat("x", 100) + "\n\ndata: [DONE]\n\ndata: unterminated"
	got, err := sseEvents(strings.NewReader(body), 1<<10)
	assert.Equal(t, io.EOF, err)
	assert.Equal(t, []string{`{"a":1}`, `{"b":2}`, strings.Repeat("x", 100), "[DONE]"}, got, "the unterminated last line is dropped")

	// One byte at a time reads the same.
	got2, err := sseEvents(iotest.OneByteReader(strings.NewReader(body)), 1<<10)
	assert.Equal(t, io.EOF, err)
	assert.Equal(t, got, got2)

	_, err = sseEvents(strings.NewReader("data: "+strings.Repeat("y", 200)+"\n"), 64)
	assert.ErrorIs(t, err, errLineTooLong)

	boom := errors.New("connection reset")
	got, err = sseEvents(io.MultiReader(strings.NewReader("data: 1\n\ndata: 2"), iotest.ErrReader(boom)), 64)
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, []string{"1"}, got)
}

func FuzzSSEReader(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\n: c\ndata:x\r\n"))
	f.Add([]byte("data: [DONE]\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := sseEvents(bytes.NewReader(body), 1<<10)
		if err != io.EOF && !errors.Is(err, errLineTooLong) {
			t.Fatalf("error %v", err)
		}
		// Every event is the value of a complete data line of the body.
		for _, e := range got {
			if !bytes.Contains(body, []byte(e)) {
				t.Fatalf("event %q is not a line of the body", e)
			}
		}
		if err == io.EOF {
			lines := 0
			for _, l := range strings.SplitAfter(string(body), "\n") {
				if strings.HasSuffix(l, "\n") && strings.HasPrefix(l, "data:") {
					lines++
				}
			}
			if len(got) != lines {
				t.Fatalf("%d events from %d data lines", len(got), lines)
			}
		}
	})
}

func TestWireArgs(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"{\"a\":1}"`, `{"a":1}`},
		{`{"a": 1}`, `{"a":1}`},
		{`null`, ``},
		{`""`, ``},
	}
	for _, tt := range tests {
		var a wireArgs
		require.NoError(t, json.Unmarshal([]byte(tt.in), &a), tt.in)
		assert.Equal(t, tt.want, string(a), tt.in)
	}
	b, err := json.Marshal(wireArgs(`{"a":1}`))
	require.NoError(t, err)
	assert.Equal(t, strconv.Quote(`{"a":1}`), string(b))
}

func TestStatusOfErrorEvent(t *testing.T) {
	for code, want := range map[string]int{`503`: 503, `"429"`: 429, `"server_error"`: 500, ``: 500, `200`: 500} {
		e := wireError{Code: json.RawMessage(code)}
		assert.Equal(t, want, e.status(), code)
	}
}

func TestRealClockSleep(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("stop")
	cancel(stop)
	assert.ErrorIs(t, realClock{}.Sleep(ctx, time.Hour), stop, "an ended context returns at once")
	assert.NoError(t, realClock{}.Sleep(context.Background(), time.Nanosecond))
}

func TestMergeToolDeltasWithoutIndex(t *testing.T) {
	piece := func(id, name, args string) wireToolCall {
		return wireToolCall{ID: id, Function: wireFunctionCall{Name: name, Arguments: wireArgs(args)}}
	}
	var calls []toolAcc
	for _, d := range []wireToolCall{
		piece("a", "weather", `{"city":`), piece("", "", `"Oslo"}`),
		piece("b", "time", `{}`),
		piece("b", "time", ``), // a server repeating the ID and name
	} {
		calls = mergeToolDelta(calls, d)
	}
	var got []ToolCall
	for i := range calls {
		got = append(got, calls[i].call(i))
	}
	assert.Equal(t, []ToolCall{{ID: "a", Name: "weather", Arguments: `{"city":"Oslo"}`}, {ID: "b", Name: "time", Arguments: `{}`}}, got)

	calls = mergeToolDelta(nil, piece("", "ping", `{}`))
	assert.Equal(t, ToolCall{ID: "call_1", Name: "ping", Arguments: `{}`}, calls[0].call(0), "a call with no ID gets one")
}

// Add sums every counter and keeps the receiver's gauges.
func TestStatsAdd(t *testing.T) {
	a := Stats{Calls: 1, Failed: 2, Attempts: 3, Retries: 4, PromptTokens: 5, CompletionTokens: 6, StreamedPieces: 7,
		ToolCalls: 8, ToolErrors: 9, Latency: 10, Queued: 11, InFlight: 1, Waiting: 2}
	b := Stats{Calls: 10, Failed: 20, Attempts: 30, Retries: 40, PromptTokens: 50, CompletionTokens: 60, StreamedPieces: 70,
		ToolCalls: 80, ToolErrors: 90, Latency: 100, Queued: 110, InFlight: 5, Waiting: 6}
	want := Stats{Calls: 11, Failed: 22, Attempts: 33, Retries: 44, PromptTokens: 55, CompletionTokens: 66, StreamedPieces: 77,
		ToolCalls: 88, ToolErrors: 99, Latency: 110, Queued: 121, InFlight: 1, Waiting: 2}
	if got := a.Add(b); got != want {
		t.Errorf("Add = %+v, want %+v", got, want)
	}
}
