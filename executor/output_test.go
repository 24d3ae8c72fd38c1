package executor_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// nodeEvents returns the kinds and chunks of node's events, in order.
func (r *recorder) nodeEvents(node string) []executor.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []executor.Event
	for _, ev := range r.events {
		if ev.Node == node {
			out = append(out, ev)
		}
	}
	return out
}

// merged concatenates consecutive chunks of the same attempt and kind: the
// form in which a stream survives coalescing unchanged.
func merged(evs []executor.Event) []string {
	var out []string
	prev := ""
	for _, ev := range evs {
		if ev.Kind != executor.NodeOutput {
			continue
		}
		key := strconv.Itoa(ev.Attempt) + "/" + ev.Chunk.Kind + ": "
		if prev == key {
			out[len(out)-1] += ev.Chunk.Text
			continue
		}
		out = append(out, key+ev.Chunk.Text)
		prev = key
	}
	return out
}

func TestEmitOrderAndAttempts(t *testing.T) {
	var want []executor.Chunk
	for i := range 200 {
		kind := executor.ChunkToken
		if i%2 == 0 {
			kind = executor.ChunkProgress
		}
		want = append(want, executor.Chunk{Kind: kind, Text: strconv.Itoa(i) + " "})
	}
	calls := 0
	g := mustGraph(t,
		dag.Node{ID: "llm", Retry: &dag.RetryPolicy{MaxAttempts: 2, InitialBackoff: 1, Jitter: -1}, Run: func(ctx context.Context, _ dag.State) error {
			calls++
			if calls == 1 {
				if !executor.Emit(ctx, executor.Chunk{Kind: executor.ChunkWaiting, Text: "model loading"}) {
					return dag.Permanent(errors.New("Emit refused a running node's chunk"))
				}
				return errors.New("connection reset")
			}
			// A context derived from the node's works too.
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			for _, c := range want {
				if !executor.Emit(ctx, c) {
					return dag.Permanent(errors.New("Emit refused a running node's chunk"))
				}
			}
			return nil
		}},
		dag.Node{ID: "after", DependsOn: []string{"llm"}, Run: noop},
	)
	rec := &recorder{}
	_, err := mustExec(t, executor.Options{Observers: []executor.Observer{rec}}).RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.NoError(t, err)

	evs := rec.nodeEvents("llm")
	var kinds []executor.EventKind
	for _, ev := range evs {
		if len(kinds) == 0 || kinds[len(kinds)-1] != ev.Kind {
			kinds = append(kinds, ev.Kind)
		}
		if ev.Kind == executor.NodeOutput {
			assert.Equal(t, "r", ev.RunID)
			assert.False(t, ev.Time.IsZero())
		}
	}
	assert.Equal(t, []executor.EventKind{executor.NodeStarted, executor.NodeOutput, executor.NodeRetrying,
		executor.NodeStarted, executor.NodeOutput, executor.NodeSucceeded}, kinds)
	first := evs[1]
	assert.Equal(t, 1, first.Attempt)
	assert.Equal(t, executor.Chunk{Kind: executor.ChunkWaiting, Text: "model loading"}, first.Chunk)

	// The chunks of attempt 2 arrive in order, none lost: kinds alternate,
	// so none can be coalesced.
	var got []executor.Chunk
	for _, ev := range evs {
		if ev.Kind == executor.NodeOutput && ev.Attempt == 2 {
			got = append(got, ev.Chunk)
		}
	}
	assert.Equal(t, want, got)
}

func TestEmitNeverBlocksOnSlowObserver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 20_000
		nodeDone := make(chan struct{})
		g := mustGraph(t, dag.Node{ID: "llm", Run: func(ctx context.Context, _ dag.State) error {
			defer close(nodeDone)
			for i := range n {
				c := executor.Chunk{Kind: executor.ChunkToken, Text: strconv.Itoa(i % 10)}
				if i == n/2 {
					c = executor.Chunk{Kind: executor.ChunkProgress, Text: "half"}
				}
				executor.Emit(ctx, c)
			}
			return nil
		}})
		rec := &recorder{}
		// The observer is stuck on the first chunk until the node has
		// emitted everything: if Emit waited for it, the bubble would
		// deadlock.
		var once sync.Once
		slow := executor.ObserverFunc(func(ev executor.Event) {
			if ev.Kind == executor.NodeOutput {
				once.Do(func() { <-nodeDone })
			}
			rec.OnEvent(ev)
		})
		_, err := mustExec(t, executor.Options{Observers: []executor.Observer{slow}}).Run(context.Background(), g, dag.NewMemoryState())
		require.NoError(t, err)

		var tokens strings.Builder
		for i := range n {
			if i != n/2 {
				tokens.WriteString(strconv.Itoa(i % 10))
			}
		}
		all := tokens.String()
		wantMerged := []string{"1/token: " + all[:n/2], "1/progress: half", "1/token: " + all[n/2:]}
		evs := rec.nodeEvents("llm")
		assert.Equal(t, wantMerged, merged(evs), "nothing lost, order kept")
		outputs := len(rec.ofKind(executor.NodeOutput))
		assert.Less(t, outputs, 500, "a slow observer gets coalesced chunks, not %d events", n)
		assert.Greater(t, outputs, 3)
		assert.Equal(t, executor.NodeStarted, evs[0].Kind)
		assert.Equal(t, executor.NodeSucceeded, evs[len(evs)-1].Kind)
	})
}

func TestEmitOutsideARunningNode(t *testing.T) {
	assert.False(t, executor.Emit(context.Background(), executor.Chunk{Kind: "token", Text: "x"}), "not a node's context")

	finished := make(chan struct{})
	lateResult := make(chan bool, 1)
	var nodeCtx context.Context
	g := mustGraph(t, dag.Node{ID: "spawner", Run: func(ctx context.Context, _ dag.State) error {
		nodeCtx = ctx
		go func() {
			<-finished // the node's final event has been delivered
			lateResult <- executor.Emit(ctx, executor.Chunk{Kind: "token", Text: "late"})
		}()
		return nil
	}})
	rec := &recorder{}
	watch := executor.ObserverFunc(func(ev executor.Event) {
		rec.OnEvent(ev)
		if ev.Kind == executor.NodeSucceeded {
			close(finished)
		}
	})
	_, err := mustExec(t, executor.Options{Observers: []executor.Observer{watch}}).Run(context.Background(), g, dag.NewMemoryState())
	require.NoError(t, err)
	assert.False(t, <-lateResult, "a goroutine left by a finished node cannot emit")
	assert.False(t, executor.Emit(nodeCtx, executor.Chunk{Kind: "token", Text: "after the run"}))
	assert.Empty(t, rec.ofKind(executor.NodeOutput))

	// Without observers a running node's chunk is accepted (and goes
	// nowhere) at no allocation.
	var allocs float64
	var accepted bool
	g = mustGraph(t, dag.Node{ID: "quiet", Run: func(ctx context.Context, _ dag.State) error {
		accepted = executor.Emit(ctx, executor.Chunk{Kind: "token", Text: "x"})
		allocs = testing.AllocsPerRun(100, func() { executor.Emit(ctx, executor.Chunk{Kind: "token", Text: "x"}) })
		return nil
	}})
	_, err = mustExec(t, executor.Options{}).Run(context.Background(), g, dag.NewMemoryState())
	require.NoError(t, err)
	assert.True(t, accepted)
	assert.Zero(t, allocs)
}
