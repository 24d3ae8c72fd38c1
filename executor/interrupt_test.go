package executor_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// asking is a node that asks question until it has an answer, then writes
// it to the State under its ID.
func asking(id, question string, asked *atomic.Int32, deps ...string) dag.Node {
	return dag.Node{ID: id, DependsOn: deps, Run: func(ctx context.Context, s dag.State) error {
		asked.Add(1)
		ans, ok := executor.InputFrom(ctx)
		if !ok {
			return executor.Interrupt(ctx, question)
		}
		return s.Put(id, []byte(ans))
	}}
}

func TestInterruptWaitsAndResumesWithTheAnswer(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{})
	rec := &recorder{}
	inFlight := make(chan struct{})
	var once sync.Once
	release := executor.ObserverFunc(func(ev executor.Event) {
		if ev.Kind == executor.NodeWaiting {
			once.Do(func() { close(inFlight) })
		}
	})
	e := mustExec(t, executor.Options{Checkpoints: store, Observers: []executor.Observer{rec, release}})
	var asked atomic.Int32
	var r ran
	g := mustGraph(t,
		r.node("load"),
		asking("confirm", "Index 3 files from /data?", &asked, "load"),
		r.node("index", "confirm"), r.node("report", "index"),
		// Independent work: one in flight when the question comes, one
		// that starts after it.
		dag.Node{ID: "warm-cache", Run: func(context.Context, dag.State) error {
			<-inFlight
			r.m.Store("warm-cache", true)
			return nil
		}},
		r.node("after-warm", "warm-cache"),
	)
	res, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.ErrorIs(t, err, executor.ErrInterrupted)
	var ie *executor.InterruptError
	require.ErrorAs(t, err, &ie)
	assert.Equal(t, "confirm", ie.Node)
	assert.Equal(t, "Index 3 files from /data?", ie.Question)
	assert.ErrorContains(t, err, `node "confirm" is waiting for input: "Index 3 files from /data?"`)

	nr, _ := res.Node("confirm")
	assert.Equal(t, executor.Waiting, nr.Status)
	require.Len(t, res.Questions, 1)
	assert.Equal(t, executor.Question{Node: "confirm", Text: "Index 3 files from /data?", Asked: res.Questions[0].Asked}, res.Questions[0])
	for _, id := range []string{"index", "report"} {
		st, serr := status(t, res, id)
		assert.Equal(t, executor.Skipped, st, id)
		assert.ErrorIs(t, serr, executor.ErrInterrupted, id)
	}
	assert.True(t, r.did("warm-cache"), "a node in flight finishes")
	assert.True(t, r.did("after-warm"), "independent work still runs")
	waiting := rec.ofKind(executor.NodeWaiting)
	require.Len(t, waiting, 1)
	assert.Equal(t, "confirm", waiting[0].Node)

	run, err := store.Run("r")
	require.NoError(t, err)
	assert.Equal(t, "waiting", run.Status)
	require.Len(t, run.Questions, 1)
	assert.Equal(t, "confirm", run.Questions[0].Node)
	assert.Equal(t, "Index 3 files from /data?", run.Questions[0].Text)
	assert.False(t, run.Finished())
	done, _ := store.CompletedNodes("r")
	assert.Equal(t, []string{"after-warm", "load", "warm-cache"}, done, "completed work is kept")

	// An answer for a node that is not waiting is refused, naming it.
	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r", Answers: map[string]string{"index": "yes"}})
	assert.ErrorContains(t, err, `answer for node "index", which is not waiting for input in run "r" (waiting: confirm)`)
	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r", Answers: map[string]string{"typo": "yes"}})
	assert.ErrorContains(t, err, `RunOptions.Answers["typo"]: the graph has no such node`)

	s := dag.NewMemoryState()
	res, err = e.RunWith(context.Background(), g, s, executor.RunOptions{ID: "r", Resume: true, Answers: map[string]string{"confirm": "yes"}})
	require.NoError(t, err)
	v, err := s.Get("confirm")
	require.NoError(t, err)
	assert.Equal(t, "yes", string(v))
	for _, id := range []string{"load", "warm-cache", "after-warm"} {
		nr, _ := res.Node(id)
		assert.True(t, nr.Restored, id)
	}
	assert.True(t, r.did("report"))
	run, err = store.Run("r")
	require.NoError(t, err)
	assert.Equal(t, "succeeded", run.Status)
	assert.Empty(t, run.Questions)
	assert.EqualValues(t, 2, asked.Load())
}

func TestInterruptSeveralNodesAndAskAgain(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{})
	e := mustExec(t, executor.Options{Checkpoints: store})
	var askedA, askedB atomic.Int32
	g := mustGraph(t, asking("a", "which model?", &askedA), asking("b", "which corpus?", &askedB))
	res, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.ErrorIs(t, err, executor.ErrInterrupted)
	assert.ErrorContains(t, err, `"a" is waiting for input: "which model?"`)
	assert.ErrorContains(t, err, `"b" is waiting for input: "which corpus?"`)
	assert.Equal(t, 2, res.Count(executor.Waiting))

	// Answer only a: b asks again, a's answer is kept.
	s := dag.NewMemoryState()
	_, err = e.RunWith(context.Background(), g, s, executor.RunOptions{ID: "r", Answers: map[string]string{"a": "small"}})
	require.ErrorIs(t, err, executor.ErrInterrupted)
	run, err := store.Run("r")
	require.NoError(t, err)
	require.Len(t, run.Questions, 1)
	assert.Equal(t, "b", run.Questions[0].Node)
	done, _ := store.CompletedNodes("r")
	assert.Equal(t, []string{"a"}, done)

	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r", Answers: map[string]string{"b": "docs"}})
	require.NoError(t, err)
	assert.EqualValues(t, 2, askedA.Load())
	assert.EqualValues(t, 3, askedB.Load())
}

// Without a checkpoint store, answers go to the nodes as they are.
func TestInterruptWithoutStore(t *testing.T) {
	var asked atomic.Int32
	g := mustGraph(t, asking("a", "ok?", &asked))
	e := mustExec(t, executor.Options{})
	_, err := e.Run(context.Background(), g, dag.NewMemoryState())
	require.ErrorIs(t, err, executor.ErrInterrupted)
	s := dag.NewMemoryState()
	_, err = e.RunWith(context.Background(), g, s, executor.RunOptions{Answers: map[string]string{"a": "fine"}})
	require.NoError(t, err)
	v, _ := s.Get("a")
	assert.Equal(t, "fine", string(v))
	_, ok := executor.InputFrom(context.Background())
	assert.False(t, ok)
	assert.Equal(t, "", executor.Interrupt(context.Background(), "q").(*executor.InterruptError).Node)
}

// A failure elsewhere makes the run fail, not wait; the waiting node asks
// again on resume.
func TestInterruptAndFailure(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{})
	e := mustExec(t, executor.Options{Checkpoints: store, FailurePolicy: executor.Continue})
	var asked atomic.Int32
	g := mustGraph(t, asking("a", "ok?", &asked), dag.Node{ID: "bad", Run: func(context.Context, dag.State) error { return assert.AnError }})
	_, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.ErrorIs(t, err, assert.AnError)
	assert.NotErrorIs(t, err, executor.ErrInterrupted)
	run, _ := store.Run("r")
	assert.Equal(t, "failed", run.Status)
	require.Len(t, run.Questions, 1, "the question is recorded even so")
}
