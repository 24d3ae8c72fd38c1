package executor_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

func openStore(t testing.TB, path string, opts executor.CheckpointOptions) *executor.CheckpointStore {
	t.Helper()
	s, err := executor.OpenCheckpoints(path, opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// counted returns a node that counts its runs, writes key=value, and fails
// while *fail is set.
func counted(id string, runs *sync.Map, fail *atomic.Bool, deps ...string) dag.Node {
	return dag.Node{ID: id, DependsOn: deps, Run: func(_ context.Context, s dag.State) error {
		n, _ := runs.LoadOrStore(id, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		if fail != nil && fail.Load() {
			return errors.New("upstream API down")
		}
		in := ""
		for _, d := range deps {
			v, err := s.Get(d)
			if err != nil {
				return err
			}
			in += string(v)
		}
		return s.Put(id, []byte(in+id))
	}}
}

func runCount(runs *sync.Map, id string) int32 {
	n, ok := runs.Load(id)
	if !ok {
		return 0
	}
	return n.(*atomic.Int32).Load()
}

func TestCheckpointResumeSkipsCompletedAndRestoresState(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{})
	var runs sync.Map
	var fail atomic.Bool
	fail.Store(true)
	g := mustGraph(t,
		counted("a", &runs, nil),
		counted("b", &runs, nil, "a"),
		counted("c", &runs, &fail, "b"),
		counted("d", &runs, nil, "c"),
		dag.Node{ID: "cleanup", DependsOn: []string{"a"}, Run: func(_ context.Context, s dag.State) error {
			n, _ := runs.LoadOrStore("cleanup", new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			return s.Delete("scratch")
		}},
	)
	e := mustExec(t, executor.Options{Checkpoints: store, FailurePolicy: executor.Continue})
	first := dag.NewMemoryState()
	require.NoError(t, first.Put("scratch", []byte("tmp")))
	res, err := e.RunWith(context.Background(), g, first, executor.RunOptions{ID: "run-1"})
	require.Error(t, err)
	assert.Equal(t, executor.Failed, res.Nodes[2].Status)
	for _, id := range []string{"a", "b", "cleanup"} {
		nr, _ := res.Node(id)
		assert.True(t, nr.Checkpointed, id)
	}
	rec, err := store.Run("run-1")
	require.NoError(t, err)
	assert.Equal(t, "failed", rec.Status)
	assert.Equal(t, 3, rec.Completed)
	assert.False(t, rec.Finished())

	// The upstream recovers; the process restarts with a fresh State that
	// still holds the input the first run deleted.
	fail.Store(false)
	second := dag.NewMemoryState()
	require.NoError(t, second.Put("scratch", []byte("tmp")))
	res, err = e.RunWith(context.Background(), g, second, executor.RunOptions{ID: "run-1"})
	require.NoError(t, err)
	for _, id := range []string{"a", "b", "cleanup"} {
		nr, _ := res.Node(id)
		assert.True(t, nr.Restored, id)
		assert.Equal(t, executor.Succeeded, nr.Status)
		assert.EqualValues(t, 1, runCount(&runs, id), "%s must not run again", id)
	}
	assert.EqualValues(t, 2, runCount(&runs, "c"))
	v, err := second.Get("d")
	require.NoError(t, err)
	assert.Equal(t, "abcd", string(v), "b's output was restored for c")
	_, err = second.Get("scratch")
	assert.ErrorIs(t, err, dag.ErrNotFound, "a deletion by a completed node is restored too")

	rec, err = store.Run("run-1")
	require.NoError(t, err)
	assert.True(t, rec.Finished())
	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "run-1"})
	assert.ErrorIs(t, err, executor.ErrRunFinished)
}

func TestCheckpointGraphChanged(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{})
	boom := errors.New("boom")
	g1 := mustGraph(t,
		dag.Node{ID: "a", Run: noop},
		dag.Node{ID: "b", DependsOn: []string{"a"}, Run: func(context.Context, dag.State) error { return boom }},
		dag.Node{ID: "c", DependsOn: []string{"b"}, Run: noop},
	)
	e := mustExec(t, executor.Options{Checkpoints: store})
	_, err := e.RunWith(context.Background(), g1, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.ErrorIs(t, err, boom)

	g2 := mustGraph(t,
		dag.Node{ID: "a", Run: noop},
		dag.Node{ID: "b", DependsOn: []string{"a"}, Run: noop},
		dag.Node{ID: "x", DependsOn: []string{"a"}, Run: noop},
	)
	_, err = e.RunWith(context.Background(), g2, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.ErrorIs(t, err, executor.ErrGraphChanged)
	var gce *executor.GraphChangedError
	require.ErrorAs(t, err, &gce)
	assert.Equal(t, []string{"x"}, gce.AddedNodes)
	assert.Equal(t, []string{"c"}, gce.RemovedNodes)
	assert.Equal(t, [][2]string{{"a", "x"}}, gce.AddedEdges)
	assert.Equal(t, [][2]string{{"b", "c"}}, gce.RemovedEdges)
	assert.Contains(t, err.Error(), `cannot resume run "r": graph changed since the run started: added nodes x; removed nodes c; added edges a -> x; removed edges b -> c`)
}

func TestCheckpointCorruptAndForeignFiles(t *testing.T) {
	dir := t.TempDir()

	garbage := filepath.Join(dir, "garbage.db")
	require.NoError(t, os.WriteFile(garbage, []byte("this is not a bbolt file at all, just text"), 0o600))
	_, err := executor.OpenCheckpoints(garbage, executor.CheckpointOptions{})
	require.ErrorIs(t, err, executor.ErrCheckpointCorrupt)
	assert.Contains(t, err.Error(), garbage)
	data, _ := os.ReadFile(garbage)
	assert.Equal(t, "this is not a bbolt file at all, just text", string(data), "nothing overwritten")

	foreign := filepath.Join(dir, "foreign.db")
	db, err := bolt.Open(foreign, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("someone-elses"))
		if err != nil {
			return err
		}
		return b.Put([]byte("k"), []byte("v"))
	}))
	require.NoError(t, db.Close())
	_, err = executor.OpenCheckpoints(foreign, executor.CheckpointOptions{})
	require.ErrorIs(t, err, executor.ErrCheckpointCorrupt)
	assert.Contains(t, err.Error(), "not a cemaf checkpoint file")

	// A real checkpoint file with a damaged page.
	damaged := filepath.Join(dir, "damaged.db")
	s := openStore(t, damaged, executor.CheckpointOptions{})
	var nodes []dag.Node
	for i := range 50 {
		nodes = append(nodes, dag.Node{ID: strconv.Itoa(i), Run: func(_ context.Context, st dag.State) error {
			return st.Put(strconv.Itoa(i), make([]byte, 300))
		}})
	}
	_, err = mustExec(t, executor.Options{Checkpoints: s, FailurePolicy: executor.Continue}).
		RunWith(context.Background(), mustGraph(t, append(nodes, dag.Node{ID: "fail", Run: func(context.Context, dag.State) error { return errors.New("x") }})...),
			dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.Error(t, err)
	require.NoError(t, s.Close())
	raw, err := os.ReadFile(damaged)
	require.NoError(t, err)
	for i := 4096 * 2; i < len(raw); i += 7 {
		raw[i] ^= 0x5a
	}
	require.NoError(t, os.WriteFile(damaged, raw, 0o600))
	_, err = executor.OpenCheckpoints(damaged, executor.CheckpointOptions{})
	require.ErrorIs(t, err, executor.ErrCheckpointCorrupt)

	// StartFresh moves the damaged file aside and starts a new store.
	fresh, err := executor.OpenCheckpoints(damaged, executor.CheckpointOptions{StartFresh: true})
	require.NoError(t, err)
	defer fresh.Close()
	runs, err := fresh.Runs()
	require.NoError(t, err)
	assert.Empty(t, runs)
	aside, _ := filepath.Glob(damaged + ".corrupt-*")
	require.Len(t, aside, 1)
	kept, _ := os.ReadFile(aside[0])
	assert.Equal(t, raw, kept, "the corrupt file is kept intact for inspection")
}

func TestCheckpointGC(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt.db")
	store := openStore(t, path, executor.CheckpointOptions{KeepFinished: 3})
	e := mustExec(t, executor.Options{Checkpoints: store})
	g := mustGraph(t, dag.Node{ID: "a", Run: noop})
	for i := range 6 {
		_, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: fmt.Sprintf("ok-%d", i)})
		require.NoError(t, err)
	}
	bad := mustGraph(t, dag.Node{ID: "a", Run: func(context.Context, dag.State) error { return errors.New("x") }})
	_, err := e.RunWith(context.Background(), bad, dag.NewMemoryState(), executor.RunOptions{ID: "unfinished"})
	require.Error(t, err)
	runs, err := store.Runs()
	require.NoError(t, err)
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	assert.ElementsMatch(t, []string{"ok-3", "ok-4", "ok-5", "unfinished"}, ids, "3 finished kept; unfinished kept")

	removed, err := store.GC(time.Now().Add(8 * 24 * time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 4, removed, "everything older than MaxAge goes")
}

// Whatever the commit policy, a node starts only after each of its
// dependencies' completion is durable: every node reads the committed file
// (a bbolt read transaction sees only committed data) and looks for them.
func TestDependentsStartAfterDurableCommit(t *testing.T) {
	for _, pol := range []executor.CommitPolicy{{MaxNodes: 1}, {}, {MaxNodes: 8}, {MaxNodes: 1000, MaxDelay: 5 * time.Millisecond}} {
		t.Run(fmt.Sprintf("%+v", pol), func(t *testing.T) {
			store := openStore(t, filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{Commit: pol})
			var violations atomic.Int32
			var nodes []dag.Node
			for i := range 60 {
				var deps []string
				for _, d := range []int{i - 1, i - 7, i / 2} {
					if d >= 0 && d < i && !slices.Contains(deps, strconv.Itoa(d)) {
						deps = append(deps, strconv.Itoa(d))
					}
				}
				nodes = append(nodes, dag.Node{ID: strconv.Itoa(i), DependsOn: deps, Run: func(_ context.Context, s dag.State) error {
					done, err := store.CompletedNodes("r")
					if err != nil {
						return err
					}
					for _, d := range deps {
						if !slices.Contains(done, d) {
							violations.Add(1)
						}
					}
					return s.Put(strconv.Itoa(i), []byte{byte(i)})
				}})
			}
			e := mustExec(t, executor.Options{Checkpoints: store, Limits: executor.Limits{CPU: 4}})
			res, err := e.RunWith(context.Background(), mustGraph(t, nodes...), dag.NewMemoryState(), executor.RunOptions{ID: "r"})
			require.NoError(t, err)
			assert.Zero(t, violations.Load(), "a node started before a dependency was durable")
			for _, nr := range res.Nodes {
				assert.True(t, nr.Checkpointed, nr.ID)
			}
			rec, err := store.Run("r")
			require.NoError(t, err)
			assert.Equal(t, 60, rec.Completed)
		})
	}
}

// creator is a MemoryState that takes values in parts, counting the
// writers it made.
type creator struct {
	*dag.MemoryState
	made atomic.Int32
}

func (c *creator) CreateValue(key string) (dag.ValueWriter, error) {
	c.made.Add(1)
	return dag.NewValueWriter(c.MemoryState, key)
}

// A value a node writes in parts (dag.NewValueWriter) goes through the
// run's State's own writer, and is in the node's checkpoint once
// committed; an aborted one is not.
func TestCheckpointKeepsValuesWrittenInParts(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{})
	var fail atomic.Bool
	fail.Store(true)
	var runsA atomic.Int32
	g := mustGraph(t,
		dag.Node{ID: "a", Run: func(_ context.Context, s dag.State) error {
			runsA.Add(1)
			w, err := dag.NewValueWriter(s, "big")
			if err != nil {
				return err
			}
			for range 3 {
				if _, err := w.Write([]byte("part;")); err != nil {
					return err
				}
			}
			if err := w.Commit(); err != nil {
				return err
			}
			w, err = dag.NewValueWriter(s, "dropped")
			if err != nil {
				return err
			}
			_, _ = w.Write([]byte("never"))
			w.Abort()
			return nil
		}},
		dag.Node{ID: "b", DependsOn: []string{"a"}, Run: func(_ context.Context, s dag.State) error {
			if fail.Load() {
				return errors.New("down")
			}
			v, err := s.Get("big")
			if err != nil {
				return err
			}
			return s.Put("b", v)
		}},
	)
	e := mustExec(t, executor.Options{Checkpoints: store})
	first := &creator{MemoryState: dag.NewMemoryState()}
	_, err := e.RunWith(context.Background(), g, first, executor.RunOptions{ID: "parts"})
	require.Error(t, err)
	assert.EqualValues(t, 2, first.made.Load(), "the State's own writer was used")

	fail.Store(false)
	second := dag.NewMemoryState()
	res, err := e.RunWith(context.Background(), g, second, executor.RunOptions{ID: "parts"})
	require.NoError(t, err)
	nr, _ := res.Node("a")
	assert.True(t, nr.Restored)
	assert.EqualValues(t, 1, runsA.Load(), "a must not run again")
	v, err := second.Get("b")
	require.NoError(t, err)
	assert.Equal(t, "part;part;part;", string(v), "the value written in parts was restored")
	_, ok := second.SizeOf("dropped")
	assert.False(t, ok, "an aborted value is not in the checkpoint")
}

// TestCheckpointFileTruncatedWhileOpen truncates the checkpoint file under
// an open store, as another program, or a failing card whose reads fault,
// may do: bbolt's mapping then ends before the pages it reads, a memory
// fault that would end the process. The store's reads and writes must
// fail with ErrCheckpointCorrupt, and a run and Close must return.
func TestCheckpointFileTruncatedWhileOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt.db")
	s, err := executor.OpenCheckpoints(path, executor.CheckpointOptions{})
	require.NoError(t, err)
	var nodes []dag.Node
	for i := range 40 {
		nodes = append(nodes, dag.Node{ID: strconv.Itoa(i), Run: func(_ context.Context, st dag.State) error {
			return st.Put(strconv.Itoa(i), make([]byte, 2000))
		}})
	}
	g := mustGraph(t, nodes...)
	e := mustExec(t, executor.Options{Checkpoints: s})
	for _, id := range []string{"a", "b", "c"} {
		_, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: id})
		require.NoError(t, err)
	}
	require.NoError(t, os.Truncate(path, 12*1024))

	_, err = s.Runs()
	require.ErrorIs(t, err, executor.ErrCheckpointCorrupt)
	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "d"})
	require.ErrorIs(t, err, executor.ErrCheckpointCorrupt)
	t.Logf("run: %v", err)
	t.Logf("Close: %v", s.Close())
}
