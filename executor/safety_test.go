package executor_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/throttle"
)

// panicGate is a Gate whose Check and Wait panic on demand.
type panicGate struct {
	checkPanics atomic.Bool
	closed      atomic.Bool // Check reports the gate closed
	waitPanics  bool
}

func (g *panicGate) Check() error {
	if g.checkPanics.Load() {
		panic("checker bug")
	}
	if g.closed.Load() {
		return errors.New("closed")
	}
	return nil
}

func (g *panicGate) Wait(ctx context.Context) error {
	if g.waitPanics {
		panic(errors.New("wait bug"))
	}
	return nil
}

// plainPanicGate is a Gate without Checker whose Wait panics.
type plainPanicGate struct{}

func (plainPanicGate) Wait(context.Context) error { panic("plain wait bug") }

func requirePanic(t *testing.T, err error, op string) *executor.PanicError {
	t.Helper()
	var pe *executor.PanicError
	require.ErrorAs(t, err, &pe, "%v", err)
	assert.Equal(t, op, pe.Op)
	assert.NotEmpty(t, pe.Stack)
	var tpe *throttle.PanicError
	assert.ErrorAs(t, err, &tpe, "one panic error type for the module")
	return pe
}

func TestPanickingGateBecomesRunError(t *testing.T) {
	t.Run("Checker.Check on the coordinator", func(t *testing.T) {
		g := &panicGate{}
		g.checkPanics.Store(true)
		res, err := mustExec(t, executor.Options{Gate: g}).Run(context.Background(),
			mustGraph(t, dag.Node{ID: "a", Run: noop}, dag.Node{ID: "b", DependsOn: []string{"a"}, Run: noop}), dag.NewMemoryState())
		requirePanic(t, err, "Checker.Check")
		assert.ErrorContains(t, err, "executor: gate: Checker.Check: panic: checker bug")
		assert.Equal(t, executor.Skipped, res.Nodes[0].Status, "nothing starts past a broken gate")
		assert.Equal(t, executor.Skipped, res.Nodes[1].Status)
	})
	t.Run("Checker.Check after a node", func(t *testing.T) {
		g := &panicGate{}
		a := dag.Node{ID: "a", Run: func(context.Context, dag.State) error { g.checkPanics.Store(true); return nil }}
		res, err := mustExec(t, executor.Options{Gate: g}).Run(context.Background(),
			mustGraph(t, a, dag.Node{ID: "b", DependsOn: []string{"a"}, Run: noop}), dag.NewMemoryState())
		requirePanic(t, err, "Checker.Check")
		assert.Equal(t, executor.Succeeded, res.Nodes[0].Status)
		assert.Equal(t, executor.Skipped, res.Nodes[1].Status)
	})
	t.Run("Gate.Wait on the waiter goroutine", func(t *testing.T) {
		g := &panicGate{waitPanics: true}
		g.closed.Store(true)
		rec := &recorder{}
		res, err := mustExec(t, executor.Options{Gate: g, Observers: []executor.Observer{rec}}).Run(context.Background(),
			mustGraph(t, dag.Node{ID: "a", Run: noop}), dag.NewMemoryState())
		pe := requirePanic(t, err, "Gate.Wait")
		assert.EqualError(t, pe.Unwrap(), "wait bug")
		assert.Equal(t, executor.Skipped, res.Nodes[0].Status)
		assert.Len(t, rec.ofKind(executor.Paused), 1)
		assert.Len(t, rec.ofKind(executor.Resumed), 1)
	})
	t.Run("plain Gate.Wait on the coordinator", func(t *testing.T) {
		res, err := mustExec(t, executor.Options{Gate: plainPanicGate{}}).Run(context.Background(),
			mustGraph(t, dag.Node{ID: "a", Run: noop}), dag.NewMemoryState())
		requirePanic(t, err, "Gate.Wait")
		assert.Equal(t, executor.Skipped, res.Nodes[0].Status)
	})
}

// brokenDurable is a DurableState whose Checkpoint or Durable panics.
type brokenDurable struct {
	*dag.MemoryState
	durablePanics bool
}

func (b *brokenDurable) Checkpoint() error { panic("disk driver bug") }

func (b *brokenDurable) Durable() bool {
	if b.durablePanics {
		panic("durable bug")
	}
	return true
}

// getPanicState panics when the executor reads key back for a checkpoint.
type getPanicState struct{ *dag.MemoryState }

func (s getPanicState) Get(key string) ([]byte, error) {
	if key == "poisoned" {
		panic("state bug")
	}
	return s.MemoryState.Get(key)
}

func TestPanickingStateBecomesRunError(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{})
	e := mustExec(t, executor.Options{Checkpoints: store})
	g := mustGraph(t, dag.Node{ID: "a", Run: func(_ context.Context, s dag.State) error { return s.Put("poisoned", []byte("v")) }},
		dag.Node{ID: "b", DependsOn: []string{"a"}, Run: noop})

	res, err := e.RunWith(context.Background(), g, &brokenDurable{MemoryState: dag.NewMemoryState()}, executor.RunOptions{ID: "checkpoint"})
	requirePanic(t, err, "DurableState.Checkpoint")
	assert.ErrorContains(t, err, "executor: checkpoint run checkpoint: checkpoint the State: DurableState.Checkpoint: panic: disk driver bug")
	assert.False(t, res.Nodes[0].Checkpointed)
	assert.Equal(t, executor.Skipped, res.Nodes[1].Status, "a dependent never starts before its dependency is durable")

	_, err = e.RunWith(context.Background(), g, &brokenDurable{MemoryState: dag.NewMemoryState(), durablePanics: true}, executor.RunOptions{ID: "durable"})
	requirePanic(t, err, "DurableState.Durable")

	res, err = e.RunWith(context.Background(), g, getPanicState{dag.NewMemoryState()}, executor.RunOptions{ID: "get"})
	requirePanic(t, err, "State.Get")
	assert.Equal(t, executor.Failed, res.Nodes[0].Status)
}

func TestResultNodeConcurrentCallers(t *testing.T) {
	var nodes []dag.Node
	for i := range 64 {
		nodes = append(nodes, dag.Node{ID: "n" + strconv.Itoa(i), Run: noop})
	}
	res, err := mustExec(t, executor.Options{}).Run(context.Background(), mustGraph(t, nodes...), dag.NewMemoryState())
	require.NoError(t, err)
	built := &executor.Result{Nodes: append([]executor.NodeResult(nil), res.Nodes...)} // not made by a run
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 64 {
				id := "n" + strconv.Itoa((i+w)%64)
				for _, r := range []*executor.Result{res, built} {
					nr, ok := r.Node(id)
					if assert.True(t, ok, id) {
						assert.Equal(t, id, nr.ID)
					}
				}
			}
			_, ok := res.Node("absent")
			assert.False(t, ok)
		})
	}
	wg.Wait()
	// A caller that reorders Nodes still gets the right answer.
	res.Nodes[0], res.Nodes[1] = res.Nodes[1], res.Nodes[0]
	nr, ok := res.Node("n0")
	require.True(t, ok)
	assert.Equal(t, "n0", nr.ID)
}

func TestResumeUnknownRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt.db")
	store := openStore(t, path, executor.CheckpointOptions{})
	e := mustExec(t, executor.Options{Checkpoints: store})
	var ran atomic.Int32
	g := mustGraph(t, dag.Node{ID: "a", Run: func(context.Context, dag.State) error { ran.Add(1); return nil }})

	_, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "typo", Resume: true})
	require.ErrorIs(t, err, executor.ErrRunNotFound)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.ErrorContains(t, err, path)
	assert.ErrorContains(t, err, `"typo"`)
	assert.Zero(t, ran.Load(), "nothing runs")
	runs, err := store.Runs()
	require.NoError(t, err)
	assert.Empty(t, runs, "no run was recorded")

	_, err = store.Run("typo")
	assert.ErrorIs(t, err, executor.ErrRunNotFound)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	_, err = store.CompletedNodes("typo")
	assert.ErrorIs(t, err, executor.ErrRunNotFound)

	// Without Resume an unknown ID starts a new run, as before; with Resume
	// a known unfinished run resumes.
	fail := atomic.Bool{}
	fail.Store(true)
	g2 := mustGraph(t, dag.Node{ID: "a", Run: func(context.Context, dag.State) error {
		if fail.Load() {
			return errors.New("down")
		}
		return nil
	}})
	_, err = e.RunWith(context.Background(), g2, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.Error(t, err)
	fail.Store(false)
	_, err = e.RunWith(context.Background(), g2, dag.NewMemoryState(), executor.RunOptions{ID: "r", Resume: true})
	require.NoError(t, err)
	_, err = e.RunWith(context.Background(), g2, dag.NewMemoryState(), executor.RunOptions{ID: "r", Resume: true})
	assert.ErrorIs(t, err, executor.ErrRunFinished)

	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{Resume: true})
	assert.ErrorContains(t, err, "RunOptions.Resume needs RunOptions.ID")
	_, err = mustExec(t, executor.Options{}).RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r", Resume: true})
	assert.ErrorContains(t, err, "needs Options.Checkpoints")
}

func TestCheckpointFileLocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ckpt.db")
		first, err := executor.OpenCheckpoints(path, executor.CheckpointOptions{})
		require.NoError(t, err)
		defer first.Close()
		start := time.Now()
		_, err = executor.OpenCheckpoints(path, executor.CheckpointOptions{})
		require.ErrorIs(t, err, executor.ErrCheckpointLocked)
		assert.ErrorContains(t, err, path)
		assert.GreaterOrEqual(t, time.Since(start), time.Second, "the open waited for the lock")
	})
}
