package executor_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// A node's context is the run's, whenever the node first looks at it: the
// run's context is made on first use, and must then be what it would have
// been had it been made when the run started.

func TestNodeContextKeptPastTheRunEnds(t *testing.T) {
	for _, parent := range []struct {
		name string
		ctx  func(t *testing.T) context.Context
	}{
		{"background", func(*testing.T) context.Context { return context.Background() }},
		{"cancellable", func(t *testing.T) context.Context { return t.Context() }},
	} {
		t.Run(parent.name, func(t *testing.T) {
			e := mustExec(t, executor.Options{})
			// A run whose nodes never look at their context, and one
			// whose nodes do.
			var untouched, touched context.Context
			var touchedDone <-chan struct{}
			_, err := e.Run(parent.ctx(t), mustGraph(t,
				dag.Node{ID: "keeps", Run: func(ctx context.Context, _ dag.State) error { untouched = ctx; return nil }},
			), dag.NewMemoryState())
			require.NoError(t, err)
			_, err = e.Run(parent.ctx(t), mustGraph(t,
				dag.Node{ID: "looks", Run: func(ctx context.Context, _ dag.State) error {
					touched, touchedDone = ctx, ctx.Done()
					return ctx.Err()
				}},
			), dag.NewMemoryState())
			require.NoError(t, err)
			for name, ctx := range map[string]context.Context{"untouched": untouched, "touched": touched} {
				select {
				case <-ctx.Done():
				default:
					t.Fatalf("%s node context not done after its run ended", name)
				}
				assert.ErrorIs(t, ctx.Err(), context.Canceled, name)
				assert.ErrorIs(t, context.Cause(ctx), context.Canceled, name)
			}
			assert.Equal(t, touchedDone, touched.Done(), "Done returns the same channel")
		})
	}
}

// TestNodeContextFirstLookedAtAfterTheCallerCancelled: the caller's cause
// reaches a node that looks at its context only after the cancellation.
func TestNodeContextFirstLookedAtAfterTheCallerCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stop := errors.New("operator pressed ctrl-c")
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		g := mustGraph(t, dag.Node{ID: "late", Run: looksLate})
		go func() { time.Sleep(time.Second); cancel(stop) }()
		res, err := mustExec(t, executor.Options{AbandonAfter: time.Second}).Run(ctx, g, dag.NewMemoryState())
		require.ErrorIs(t, err, stop)
		assert.ErrorIs(t, res.Nodes[0].Err, stop, "the cause is the caller's")
		assert.False(t, res.Nodes[0].Abandoned)
	})
}

func TestNodeContextFirstLookedAtAfterFailFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		g := mustGraph(t,
			dag.Node{ID: "fails", Run: func(context.Context, dag.State) error { time.Sleep(time.Second); return boom }},
			// Looks at its context only after the run was stopped.
			dag.Node{ID: "late", Run: looksLate},
		)
		res, err := mustExec(t, executor.Options{Limits: executor.Limits{CPU: 2}, AbandonAfter: time.Second}).
			Run(context.Background(), g, dag.NewMemoryState())
		require.ErrorIs(t, err, boom)
		late, _ := res.Node("late")
		assert.ErrorIs(t, late.Err, boom, "the cause is the failure")
		assert.False(t, late.Abandoned)
	})
}

func TestNodeContextFirstLookedAtAfterTheCallersDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		deadline, _ := ctx.Deadline()
		var sawDeadline time.Time
		g := mustGraph(t, dag.Node{ID: "slow", Run: func(ctx context.Context, _ dag.State) error {
			sawDeadline, _ = ctx.Deadline()
			time.Sleep(1500 * time.Millisecond)
			return ctx.Err()
		}})
		res, err := mustExec(t, executor.Options{AbandonAfter: 2 * time.Second}).Run(ctx, g, dag.NewMemoryState())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, deadline, sawDeadline)
		assert.ErrorIs(t, res.Nodes[0].Err, context.DeadlineExceeded, "the caller's error, not context.Canceled")
	})
}

// TestNodeContextsRaceTheCancellation: many nodes make the run's context
// at the moment one of them fails (run with -race).
func TestNodeContextsRaceTheCancellation(t *testing.T) {
	boom := errors.New("boom")
	var start sync.WaitGroup
	const n = 32
	start.Add(n)
	nodes := make([]dag.Node, n)
	for i := range nodes {
		nodes[i] = dag.Node{ID: strconv.Itoa(i), Run: func(ctx context.Context, _ dag.State) error {
			start.Done()
			start.Wait()
			if i == 0 {
				return boom
			}
			<-ctx.Done()
			return context.Cause(ctx)
		}}
	}
	res, err := mustExec(t, executor.Options{Limits: executor.Limits{CPU: n}}).
		Run(context.Background(), mustGraph(t, nodes...), dag.NewMemoryState())
	require.ErrorIs(t, err, boom)
	for _, nr := range res.Nodes[1:] {
		assert.ErrorIs(t, nr.Err, boom, nr.ID)
	}
}

// looksLate ignores its context for 1.5 s, then returns its cause, or an
// error if the context is not cancelled by then.
func looksLate(ctx context.Context, _ dag.State) error {
	time.Sleep(1500 * time.Millisecond)
	if !errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("context not cancelled: %v", ctx.Err())
	}
	return context.Cause(ctx)
}

// Err alone does not make the run's context while the run goes on, and
// once it reports an error it keeps reporting that one: a node context
// checked only with Err after its run ended stays context.Canceled when
// the caller's context later ends with another error.
func TestNodeContextErrFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		var kept context.Context
		var during error
		_, err := mustExec(t, executor.Options{}).Run(parent, mustGraph(t,
			dag.Node{ID: "checks", Run: func(ctx context.Context, _ dag.State) error { kept, during = ctx, ctx.Err(); return nil }},
		), dag.NewMemoryState())
		require.NoError(t, err)
		assert.NoError(t, during)
		assert.ErrorIs(t, kept.Err(), context.Canceled, "after the run's end")
		time.Sleep(2 * time.Hour) // the caller's deadline passes
		assert.ErrorIs(t, kept.Err(), context.Canceled, "still the first error")
		assert.ErrorIs(t, context.Cause(kept), context.Canceled)

		// A node polling Err sees a fail-fast stop, with its cause.
		boom := errors.New("boom")
		g := mustGraph(t,
			dag.Node{ID: "fails", Run: func(context.Context, dag.State) error { time.Sleep(time.Second); return boom }},
			dag.Node{ID: "polls", Run: func(ctx context.Context, _ dag.State) error {
				for ctx.Err() == nil {
					time.Sleep(10 * time.Millisecond)
				}
				return context.Cause(ctx)
			}},
		)
		res, err := mustExec(t, executor.Options{Limits: executor.Limits{CPU: 2}}).Run(context.Background(), g, dag.NewMemoryState())
		require.ErrorIs(t, err, boom)
		polls, _ := res.Node("polls")
		assert.ErrorIs(t, polls.Err, boom)
		assert.False(t, polls.Abandoned)
	})
}
