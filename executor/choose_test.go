package executor_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// ran records which nodes ran.
type ran struct{ m sync.Map }

func (r *ran) node(id string, deps ...string) dag.Node {
	return dag.Node{ID: id, DependsOn: deps, Run: func(context.Context, dag.State) error {
		r.m.Store(id, true)
		return nil
	}}
}

func (r *ran) did(id string) bool { _, ok := r.m.Load(id); return ok }

// router is a branch node that chooses the dependents *pick names.
func router(id string, pick func() []string, deps ...string) dag.Node {
	return dag.Node{ID: id, DependsOn: deps, Branch: true, Run: func(ctx context.Context, _ dag.State) error {
		return executor.Choose(ctx, pick()...)
	}}
}

func status(t *testing.T, res *executor.Result, id string) (executor.Status, error) {
	t.Helper()
	nr, ok := res.Node(id)
	require.True(t, ok, id)
	return nr.Status, nr.Err
}

func TestBranchIfElse(t *testing.T) {
	for _, arm := range []string{"then", "else"} {
		t.Run(arm, func(t *testing.T) {
			var r ran
			rec := &recorder{}
			g := mustGraph(t,
				router("if", func() []string { return []string{arm} }),
				r.node("then", "if"), r.node("else", "if"),
				r.node("after-then", "then"), // only reached through then
				r.node("join", "then", "else"),
			)
			res, err := mustExec(t, executor.Options{Observers: []executor.Observer{rec}}).Run(context.Background(), g, dag.NewMemoryState())
			require.NoError(t, err)
			other := map[string]string{"then": "else", "else": "then"}[arm]
			assert.True(t, r.did(arm))
			assert.False(t, r.did(other))
			assert.True(t, r.did("join"), "a join runs when one of its dependencies ran")
			assert.Equal(t, arm == "then", r.did("after-then"))

			st, serr := status(t, res, other)
			assert.Equal(t, executor.Skipped, st)
			assert.ErrorIs(t, serr, executor.ErrNotChosen)
			assert.NotErrorIs(t, serr, executor.ErrUpstream)
			if arm == "else" {
				st, serr = status(t, res, "after-then")
				assert.Equal(t, executor.Skipped, st, "a skipped node's dependents are skipped")
				assert.ErrorIs(t, serr, executor.ErrNotChosen)
			}
			assert.Equal(t, map[string][]string{"if": {arm}}, res.Choices)
			skipped := rec.ofKind(executor.NodeSkipped)
			require.NotEmpty(t, skipped)
			assert.Equal(t, other, skipped[0].Node)
			assert.ErrorIs(t, skipped[0].Err, executor.ErrNotChosen)
		})
	}
}

func TestBranchNested(t *testing.T) {
	var r ran
	g := mustGraph(t,
		router("outer", func() []string { return []string{"inner"} }),
		router("inner", func() []string { return []string{"b"} }, "outer"),
		r.node("other", "outer"),
		r.node("a", "inner"), r.node("b", "inner"),
		r.node("a2", "a"),
		r.node("join", "a2", "b", "other"),
		r.node("only-skipped", "a2", "other"),
	)
	res, err := mustExec(t, executor.Options{}).Run(context.Background(), g, dag.NewMemoryState())
	require.NoError(t, err)
	assert.True(t, r.did("b"))
	assert.True(t, r.did("join"))
	for _, id := range []string{"other", "a", "a2", "only-skipped"} {
		st, serr := status(t, res, id)
		assert.Equal(t, executor.Skipped, st, id)
		assert.ErrorIs(t, serr, executor.ErrNotChosen, id)
	}
	assert.Equal(t, 4, res.Count(executor.Skipped))
	assert.Equal(t, 4, res.Count(executor.Succeeded))
}

func TestBranchChoosesNoneOrSeveral(t *testing.T) {
	var r ran
	g := mustGraph(t,
		router("none", func() []string { return nil }),
		r.node("x", "none"), r.node("x2", "x"),
		router("both", func() []string { return []string{"y", "z", "y"} }),
		r.node("y", "both"), r.node("z", "both"),
	)
	res, err := mustExec(t, executor.Options{}).Run(context.Background(), g, dag.NewMemoryState())
	require.NoError(t, err, "a run whose branches skipped nodes succeeds")
	assert.False(t, r.did("x"))
	assert.False(t, r.did("x2"))
	assert.True(t, r.did("y"))
	assert.True(t, r.did("z"))
	assert.Equal(t, map[string][]string{"both": {"y", "z"}, "none": {}}, res.Choices)
}

func TestBranchMistakes(t *testing.T) {
	var r ran
	var chooseErr error
	cases := []struct {
		name string
		node dag.Node
		msg  string
	}{
		{"not-a-dependent", dag.Node{ID: "route", Branch: true, Run: func(ctx context.Context, _ dag.State) error {
			chooseErr = executor.Choose(ctx, "elsewhere")
			return nil // the mistake fails the node anyway
		}}, `branch node "route" chose "elsewhere", which is not one of its dependents (next)`},
		{"unknown-node", dag.Node{ID: "route", Branch: true, Run: func(ctx context.Context, _ dag.State) error {
			chooseErr = executor.Choose(ctx, "next", "nope")
			return nil
		}}, `branch node "route" chose "nope", which is not one of its dependents (next)`},
		{"no-choice", dag.Node{ID: "route", Branch: true, Run: func(context.Context, dag.State) error {
			chooseErr = nil
			return nil
		}}, `branch node "route" returned without calling executor.Choose`},
		{"not-a-branch", dag.Node{ID: "route", Run: func(ctx context.Context, _ dag.State) error {
			chooseErr = executor.Choose(ctx, "next")
			return nil
		}}, `Choose from node "route", which is not a branch (set dag.Node.Branch)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			chooseErr = nil
			var attempts atomic.Int32
			nd := tc.node
			run := nd.Run
			nd.Run = func(ctx context.Context, s dag.State) error { attempts.Add(1); return run(ctx, s) }
			nd.Retry = &dag.RetryPolicy{MaxAttempts: 3}
			g := mustGraph(t, nd, r.node("next", "route"), r.node("elsewhere"))
			res, err := mustExec(t, executor.Options{}).Run(context.Background(), g, dag.NewMemoryState())
			require.Error(t, err)
			assert.ErrorContains(t, err, tc.msg)
			if tc.name != "no-choice" {
				assert.ErrorContains(t, chooseErr, tc.msg, "Choose itself reports the mistake")
			}
			assert.EqualValues(t, 1, attempts.Load(), "a mistake in the choice is not retried")
			st, _ := status(t, res, "route")
			assert.Equal(t, executor.Failed, st)
			assert.False(t, r.did("next"))
		})
	}
	assert.ErrorContains(t, executor.Choose(context.Background(), "x"), "outside a running node")
}

func TestBranchRetryChoosesAfresh(t *testing.T) {
	var r ran
	var n atomic.Int32
	g := mustGraph(t,
		dag.Node{ID: "route", Branch: true, Retry: &dag.RetryPolicy{MaxAttempts: 2, Jitter: -1, InitialBackoff: 1}, Run: func(ctx context.Context, _ dag.State) error {
			if n.Add(1) == 1 {
				_ = executor.Choose(ctx, "a")
				return errors.New("flaky")
			}
			return executor.Choose(ctx, "b")
		}},
		r.node("a", "route"), r.node("b", "route"),
	)
	res, err := mustExec(t, executor.Options{}).Run(context.Background(), g, dag.NewMemoryState())
	require.NoError(t, err)
	assert.False(t, r.did("a"), "the failed attempt's choice is dropped")
	assert.True(t, r.did("b"))
	assert.Equal(t, []string{"b"}, res.Choices["route"])
}

// The run stops between a branch and its chosen dependent; the resume
// honours the recorded choice instead of asking the branch again (which
// would now choose the other arm).
func TestBranchResumeHonoursRecordedChoice(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{Commit: executor.CommitPolicy{MaxNodes: 1}})
	e := mustExec(t, executor.Options{Checkpoints: store})
	var routes atomic.Int32
	var r ran
	started := make(chan struct{})
	var crash atomic.Bool
	crash.Store(true)
	g := mustGraph(t,
		router("route", func() []string {
			if routes.Add(1) == 1 {
				return []string{"fast"}
			}
			return []string{"slow"}
		}),
		dag.Node{ID: "fast", DependsOn: []string{"route"}, Run: func(ctx context.Context, s dag.State) error {
			if crash.Load() {
				close(started)
				<-ctx.Done() // the process dies here
				return ctx.Err()
			}
			r.m.Store("fast", true)
			return nil
		}},
		r.node("slow", "route"), r.node("after-slow", "slow"),
		r.node("join", "fast", "slow"),
	)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := e.RunWith(ctx, g, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.ErrorIs(t, err, context.Canceled)
	done, err := store.CompletedNodes("r")
	require.NoError(t, err)
	assert.Equal(t, []string{"route"}, done)

	crash.Store(false)
	res, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r", Resume: true})
	require.NoError(t, err)
	assert.EqualValues(t, 1, routes.Load(), "the branch is not asked again")
	nr, _ := res.Node("route")
	assert.True(t, nr.Restored)
	assert.Equal(t, []string{"fast"}, res.Choices["route"])
	assert.True(t, r.did("fast"))
	assert.True(t, r.did("join"))
	assert.False(t, r.did("slow"))
	for _, id := range []string{"slow", "after-slow"} {
		st, serr := status(t, res, id)
		assert.Equal(t, executor.Skipped, st, id)
		assert.ErrorIs(t, serr, executor.ErrNotChosen, id)
	}
}

// A resume whose only restored node is a branch that chose nothing skips
// the whole downstream part at once.
func TestBranchResumeChoseNone(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{Commit: executor.CommitPolicy{MaxNodes: 1}})
	e := mustExec(t, executor.Options{Checkpoints: store, FailurePolicy: executor.Continue})
	var fail atomic.Bool
	fail.Store(true)
	var r ran
	g := mustGraph(t,
		router("route", func() []string { return nil }),
		r.node("a", "route"), r.node("b", "a"),
		dag.Node{ID: "flaky", Run: func(context.Context, dag.State) error {
			if fail.Load() {
				return errors.New("down")
			}
			return nil
		}},
	)
	_, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.Error(t, err)
	fail.Store(false)
	res, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.NoError(t, err)
	assert.False(t, r.did("a"))
	assert.False(t, r.did("b"))
	st, serr := status(t, res, "b")
	assert.Equal(t, executor.Skipped, st)
	assert.ErrorIs(t, serr, executor.ErrNotChosen)
}

func TestBranchSettingChangedRefusesResume(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{})
	e := mustExec(t, executor.Options{Checkpoints: store})
	g1 := mustGraph(t, dag.Node{ID: "a", Run: noop}, dag.Node{ID: "b", DependsOn: []string{"a"}, Run: func(context.Context, dag.State) error { return errors.New("x") }})
	_, err := e.RunWith(context.Background(), g1, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.Error(t, err)
	g2 := mustGraph(t, router("a", func() []string { return []string{"b"} }), dag.Node{ID: "b", DependsOn: []string{"a"}, Run: noop})
	_, err = e.RunWith(context.Background(), g2, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.ErrorIs(t, err, executor.ErrGraphChanged)
	var gce *executor.GraphChangedError
	require.ErrorAs(t, err, &gce)
	assert.Equal(t, []string{"a"}, gce.BranchesChanged)
	assert.ErrorContains(t, err, "branch setting changed on a")
}
