package llm_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/llm"
)

// deviceMode is a mode the test switches.
type deviceMode struct{ v atomic.Value }

func (m *deviceMode) set(s string) { m.v.Store(s) }
func (m *deviceMode) get() string  { s, _ := m.v.Load().(string); return s }

func TestModeChoosesTheProfile(t *testing.T) {
	s := newChatServer(t, always(reply{text: "ok"}))
	var mode deviceMode
	c, _ := newClient(t, s, llm.Options{
		Profile:  llm.Profile{Model: "big", MaxTokens: 512, Temperature: new(0.7), MaxConcurrent: 2},
		Profiles: map[string]llm.Profile{"high_temp": {Model: "small", MaxTokens: 64, MaxConcurrent: 1}},
		Mode:     mode.get,
	})
	for _, tt := range []struct {
		mode, wantMode, model string
		maxTokens             int
	}{
		{"", "normal", "big", 512},
		{"high_temp", "high_temp", "small", 64},
		{"low_memory", "low_memory", "big", 512},
		{"not_a_mode", "not_a_mode", "big", 512},
	} {
		mode.set(tt.mode)
		resp, err := c.Chat(context.Background(), ask("q"))
		require.NoError(t, err)
		assert.Equal(t, tt.wantMode, resp.Record.Mode)
		assert.Equal(t, tt.model, resp.Record.Model)
		r := s.requests()[len(s.requests())-1]
		assert.Equal(t, tt.model, r.Model, tt.mode)
		assert.Equal(t, tt.maxTokens, r.MaxTokens, tt.mode)
		assert.Equal(t, 0.7, *r.Temperature, "high_temp inherits the temperature")
	}
	assert.Equal(t, llm.Profile{Model: "small", MaxTokens: 64, Temperature: new(0.7), MaxConcurrent: 1}, c.ProfileFor("high_temp"))
}

// gatedServer holds each request whose last message is in gates until its
// gate is closed, and tells which requests started, in order.
func gatedServer(t *testing.T, gates map[string]chan struct{}) (*chatServer, chan string) {
	started := make(chan string, 16)
	s := newChatServer(t, func(n int, req seenRequest) reply {
		started <- req.last()
		if g := gates[req.last()]; g != nil {
			<-g
		}
		return reply{text: req.last()}
	})
	return s, started
}

// waitForQueue yields until n calls wait for a slot.
func waitForQueue(c *llm.Client, n int64) {
	for c.Stats().Waiting != n {
		runtime.Gosched()
	}
}

func TestWaitingCallsAreServedByPriority(t *testing.T) {
	hold := make(chan struct{})
	s, started := gatedServer(t, map[string]chan struct{}{"first": hold})
	c, _ := newClient(t, s, llm.Options{}) // one call at a time

	var wg sync.WaitGroup
	call := func(text string, prio int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := ask(text)
			req.Priority = prio
			_, err := c.Chat(context.Background(), req)
			assert.NoError(t, err)
		}()
	}
	call("first", 0)
	assert.Equal(t, "first", <-started)
	for i, w := range []struct {
		text string
		prio int
	}{{"low", 0}, {"high", 5}, {"low-2", 0}, {"high-2", 5}, {"urgent", 9}} {
		call(w.text, w.prio)
		waitForQueue(c, int64(i+1))
	}
	close(hold)
	wg.Wait()
	var order []string
	for range 5 {
		order = append(order, <-started)
	}
	assert.Equal(t, []string{"urgent", "high", "high-2", "low", "low-2"}, order)
	assert.Equal(t, int64(0), c.Stats().InFlight)
}

func TestEachModelHasItsOwnSlots(t *testing.T) {
	hold := make(chan struct{})
	s, started := gatedServer(t, map[string]chan struct{}{"slow": hold})
	var mode deviceMode
	c, _ := newClient(t, s, llm.Options{Profiles: map[string]llm.Profile{"high_temp": {Model: "small"}}, Mode: mode.get})
	done := make(chan error)
	go func() {
		_, err := c.Chat(context.Background(), ask("slow"))
		done <- err
	}()
	<-started
	mode.set("high_temp")
	resp, err := c.Chat(context.Background(), ask("quick")) // "small" is free although "big" is busy
	require.NoError(t, err)
	assert.Equal(t, "small", resp.Record.Model)
	assert.Equal(t, "quick", <-started)
	close(hold)
	require.NoError(t, <-done)
}

func TestStricterModeWaitsForTheCallsUnderWay(t *testing.T) {
	gateA, gateB := make(chan struct{}), make(chan struct{})
	s, started := gatedServer(t, map[string]chan struct{}{"a": gateA, "b": gateB})
	var mode deviceMode
	c, _ := newClient(t, s, llm.Options{
		Profile:  llm.Profile{Model: "m", MaxConcurrent: 2},
		Profiles: map[string]llm.Profile{"high_temp": {MaxConcurrent: 1}},
		Mode:     mode.get,
	})
	results := make(chan string, 3)
	call := func(text string) {
		go func() {
			resp, err := c.Chat(context.Background(), ask(text))
			assert.NoError(t, err)
			results <- resp.Message.Content
		}()
	}
	call("a")
	call("b")
	<-started
	<-started // both under way: normal allows 2
	mode.set("high_temp")
	call("c")
	waitForQueue(c, 1)
	close(gateA)
	assert.Equal(t, "a", <-results)
	assert.Equal(t, int64(1), c.Stats().Waiting, "high_temp admits one call at a time: b is still under way")
	close(gateB)
	assert.Equal(t, "b", <-results)
	assert.Equal(t, "c", <-results)
	assert.Equal(t, "c", <-started)
}

func TestQueuedCallEndsWithItsContext(t *testing.T) {
	hold := make(chan struct{})
	s, started := gatedServer(t, map[string]chan struct{}{"first": hold})
	c, _ := newClient(t, s, llm.Options{})
	done := make(chan error)
	go func() {
		_, err := c.Chat(context.Background(), ask("first"))
		done <- err
	}()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan error)
	go func() {
		resp, err := c.Chat(ctx, ask("given up"))
		assert.Zero(t, resp.Record.Attempts)
		queued <- err
	}()
	waitForQueue(c, 1)
	cancel()
	err := <-queued
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), `llm: waiting for a slot of model "big"`)
	assert.Equal(t, int64(0), c.Stats().Waiting)
	close(hold)
	require.NoError(t, <-done)
	_, err = c.Chat(context.Background(), ask("later")) // the slot was given back
	require.NoError(t, err)
	assert.Len(t, s.requests(), 2)
}
