package executor_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// A goroutine a node of an earlier run left behind keeps that run's
// context: it stays cancelled, names the earlier run, and cannot emit into
// a later run of the same graph on the same executor, whose per-run state
// (slots, tokens, queues) is pooled and reused.
func TestLeftoverContextCannotReachALaterRun(t *testing.T) {
	for _, observed := range []bool{false, true} {
		rec := &recorder{}
		var opts executor.Options
		if observed {
			opts.Observers = []executor.Observer{rec}
		}
		e := mustExec(t, opts)
		kept := make(chan context.Context, 1)
		running := make(chan struct{})
		emitted := make(chan bool)
		g := mustGraph(t, dag.Node{ID: "a", Run: func(ctx context.Context, s dag.State) error {
			if _, err := s.Get("second"); errors.Is(err, dag.ErrNotFound) {
				kept <- ctx // the first run: keep the context
				return nil
			}
			running <- struct{}{}
			<-emitted // the leftover context has tried to emit meanwhile
			return nil
		}})
		_, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "first"})
		require.NoError(t, err)
		old := <-kept
		require.Error(t, old.Err(), "the first run's context ended with its run")

		s := dag.NewMemoryState()
		require.NoError(t, s.Put("second", nil))
		go func() {
			<-running
			ok := executor.Emit(old, executor.Chunk{Kind: executor.ChunkToken, Text: "stale"})
			info, _ := executor.NodeInfoFrom(old)
			assert.False(t, ok, "Emit from the first run's context was accepted during the second")
			assert.Equal(t, "first", info.RunID)
			assert.Error(t, old.Err())
			emitted <- ok
		}()
		_, err = e.RunWith(context.Background(), g, s, executor.RunOptions{ID: "second"})
		require.NoError(t, err)
		for _, ev := range rec.ofKind(executor.NodeOutput) {
			t.Errorf("unexpected output event %+v", ev)
		}
	}
}

// An abandoned node of an earlier run that returns while a later run of
// the same graph is in progress does not complete anything in it.
func TestAbandonedNodeCannotCompleteInALaterRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := mustExec(t, executor.Options{AbandonAfter: time.Second})
		release, proceed := make(chan struct{}), make(chan struct{})
		var calls atomic.Int32
		g := mustGraph(t, dag.Node{ID: "a", Timeout: time.Minute, Run: func(ctx context.Context, _ dag.State) error {
			if calls.Add(1) == 1 {
				<-release // ignores its context: abandoned
				return nil
			}
			<-proceed
			return errors.New("second run's own outcome")
		}})
		res, err := e.Run(context.Background(), g, dag.NewMemoryState())
		require.ErrorIs(t, err, executor.ErrTimeout)
		assert.Equal(t, 1, res.Abandoned)

		done := make(chan error)
		go func() {
			_, err := e.Run(context.Background(), g, dag.NewMemoryState())
			done <- err
		}()
		synctest.Wait()
		close(release) // the first run's abandoned attempt returns now
		synctest.Wait()
		close(proceed)
		assert.ErrorContains(t, <-done, "second run's own outcome")
	})
}

// Running a built graph again allocates a fixed number of objects, however
// many nodes it has: the per-node state is pooled, the Result reused.
func TestRerunAllocatesNothingPerNode(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	e := mustExec(t, executor.Options{})
	s := dag.NewMemoryState()
	for _, n := range []int{10, 1000} {
		g := wideGraph(t, n)
		var res *executor.Result
		var err error
		allocs := testing.AllocsPerRun(50, func() {
			if res, err = e.RunWith(context.Background(), g, s, executor.RunOptions{Reuse: res}); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%d nodes: %.1f allocations per run", n, allocs)
		assert.LessOrEqual(t, allocs, 12.0, "%d nodes", n)
	}
}
