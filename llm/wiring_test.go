package llm_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/llm"
	"github.com/cemaf-go/cemaf/throttle"
)

var (
	_ llm.Throttler = (*throttle.CPUThrottler)(nil)
	_ llm.Guard     = (*throttle.CompositeGuard)(nil)
	_ llm.Guard     = (*throttle.Breaker)(nil)
)

func TestIdempotencyKeyOfTheNode(t *testing.T) {
	s := newChatServer(t, sequence(reply{status: 503}, reply{text: "ok"}))
	c, _ := newClient(t, s, llm.Options{MaxAttempts: 1}) // the node retries, not the client
	var records []llm.Record
	g, err := dag.New(dag.Node{ID: "answer", Retry: &dag.RetryPolicy{MaxAttempts: 2}, Run: func(ctx context.Context, _ dag.State) error {
		resp, err := c.Chat(ctx, ask("q"))
		records = append(records, resp.Record)
		return err
	}})
	require.NoError(t, err)
	e, err := executor.New(executor.Options{})
	require.NoError(t, err)
	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "run-7"})
	require.NoError(t, err)
	require.Len(t, records, 2)
	reqs := s.requests()
	for i := range 2 {
		assert.Equal(t, "run-7/answer", records[i].IdempotencyKey)
		assert.Equal(t, "run-7/answer", reqs[i].Header.Get("Idempotency-Key"), "the same key on the node's every attempt")
	}
}

func TestIdempotencyKeyGiven(t *testing.T) {
	s := newChatServer(t, always(reply{text: "ok"}))
	c, _ := newClient(t, s, llm.Options{})
	req := ask("q")
	req.IdempotencyKey = "order-42/summary"
	resp, err := c.Chat(context.Background(), req)
	require.NoError(t, err)
	assert.Equal(t, "order-42/summary", resp.Record.IdempotencyKey)
	assert.Equal(t, "order-42/summary", s.requests()[0].Header.Get("Idempotency-Key"))
	resp2, err := c.Chat(context.Background(), ask("q"))
	require.NoError(t, err)
	assert.NotEqual(t, resp.Record.IdempotencyKey, resp2.Record.IdempotencyKey)
}

// countingGuard counts its waits and fails once told to.
type countingGuard struct {
	waits atomic.Int32
	fail  error
}

func (g *countingGuard) Wait(ctx context.Context) error {
	g.waits.Add(1)
	return g.fail
}

// countingThrottler runs fn, or refuses when told to.
type countingThrottler struct {
	calls  atomic.Int32
	refuse error
}

func (th *countingThrottler) Do(ctx context.Context, fn func(context.Context) error) error {
	th.calls.Add(1)
	if th.refuse != nil {
		return th.refuse
	}
	return fn(ctx)
}

func TestEveryAttemptGoesThroughGuardAndThrottler(t *testing.T) {
	s := newChatServer(t, sequence(reply{status: 500}, reply{status: 500}, reply{text: "ok"}))
	guard, th := &countingGuard{}, &countingThrottler{}
	c, _ := newClient(t, s, llm.Options{Guard: guard, Throttler: th})
	_, err := c.Chat(context.Background(), ask("q"))
	require.NoError(t, err)
	assert.Equal(t, int32(3), guard.waits.Load())
	assert.Equal(t, int32(3), th.calls.Load())
}

func TestRealCPUThrottler(t *testing.T) {
	s := newChatServer(t, always(reply{text: "ok"}))
	th, err := throttle.NewCPUThrottler(throttle.CPUThrottlerOptions{TargetPercent: 100, Cores: 64})
	require.NoError(t, err)
	c, _ := newClient(t, s, llm.Options{Throttler: th})
	resp, err := c.Chat(context.Background(), ask("q"))
	require.NoError(t, err)
	assert.Equal(t, "ok", resp.Message.Content)
}

func TestGuardOrThrottlerRefusal(t *testing.T) {
	s := newChatServer(t, always(reply{text: "ok"}))
	hot := errors.New("board at 85 °C")

	c, _ := newClient(t, s, llm.Options{Guard: &countingGuard{fail: hot}})
	_, err := c.Chat(context.Background(), ask("q"))
	require.ErrorIs(t, err, hot)
	assert.Contains(t, err.Error(), "waiting for the resource guard")

	c, _ = newClient(t, s, llm.Options{Throttler: &countingThrottler{refuse: hot}})
	_, err = c.Chat(context.Background(), ask("q"))
	require.ErrorIs(t, err, hot)
	assert.Contains(t, err.Error(), "throttler")
	assert.Empty(t, s.requests(), "nothing is sent while the device is in danger")
}

// panickyGuard panics in Wait.
type panickyGuard struct{}

func (panickyGuard) Wait(context.Context) error { panic("sensor driver bug") }

func TestPanicsInInjectedCodeAreErrors(t *testing.T) {
	s := newChatServer(t, always(reply{text: "ok"}))

	c, _ := newClient(t, s, llm.Options{Mode: func() string { panic("mode source broke") }})
	resp, err := c.Chat(context.Background(), ask("q"))
	var pe *llm.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "Options.Mode", pe.Where)
	assert.Equal(t, "normal", resp.Record.Mode)
	assert.True(t, dag.IsPermanent(err))

	c, _ = newClient(t, s, llm.Options{Guard: panickyGuard{}})
	_, err = c.Chat(context.Background(), ask("q"))
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "Guard.Wait", pe.Where)
	assert.Equal(t, "sensor driver bug", pe.Value)
	assert.Empty(t, s.requests())
}
