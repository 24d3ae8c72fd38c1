package executor_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// interruptedRun records run "r" whose node "load" completes and whose
// node "answer" fails, started with inputs; it returns the executor, the
// graph (whose answer now succeeds) and how often load ran.
func interruptedRun(t *testing.T, inputs map[string]string) (*executor.Executor, *executor.CheckpointStore, *dag.Graph, *atomic.Int32) {
	t.Helper()
	store := openStore(t, filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{})
	e := mustExec(t, executor.Options{Checkpoints: store})
	var loads atomic.Int32
	var fail atomic.Bool
	fail.Store(true)
	g := mustGraph(t,
		dag.Node{ID: "load", Run: func(context.Context, dag.State) error { loads.Add(1); return nil }},
		dag.Node{ID: "answer", DependsOn: []string{"load"}, Run: func(context.Context, dag.State) error {
			if fail.Load() {
				return errors.New("killed")
			}
			return nil
		}},
	)
	_, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r", Inputs: inputs})
	require.Error(t, err)
	fail.Store(false)
	return e, store, g, &loads
}

func TestResumeChecksInputs(t *testing.T) {
	recorded := map[string]string{"question": "why is the sky blue?", "corpus": "sha256:3f9a", "chunk_size": "900"}
	cases := []struct {
		name    string
		given   map[string]string
		changed []executor.InputChange
		msg     string
	}{
		{"same", map[string]string{"chunk_size": "900", "corpus": "sha256:3f9a", "question": "why is the sky blue?"}, nil, ""},
		{"changed", map[string]string{"question": "why is the sky blue?", "corpus": "sha256:77aa", "chunk_size": "900"},
			[]executor.InputChange{{Name: "corpus", Recorded: "sha256:3f9a", Given: "sha256:77aa"}},
			`cannot resume run "r": inputs changed since the run started: corpus "sha256:3f9a" -> "sha256:77aa"; resume with the recorded inputs, or start a new run`},
		{"added", map[string]string{"question": "why is the sky blue?", "corpus": "sha256:3f9a", "chunk_size": "900", "top_k": "4"},
			[]executor.InputChange{{Name: "top_k", Given: "4", Added: true}},
			`inputs changed since the run started: top_k added ("4")`},
		{"removed", map[string]string{"question": "why is the sky blue?", "corpus": "sha256:3f9a"},
			[]executor.InputChange{{Name: "chunk_size", Recorded: "900", Removed: true}},
			`chunk_size not given (was "900")`},
		{"none-given", nil,
			[]executor.InputChange{
				{Name: "chunk_size", Recorded: "900", Removed: true},
				{Name: "corpus", Recorded: "sha256:3f9a", Removed: true},
				{Name: "question", Recorded: "why is the sky blue?", Removed: true}},
			`chunk_size not given (was "900"); corpus not given (was "sha256:3f9a"); question not given (was "why is the sky blue?") (the resume gave none of them)`},
		{"several", map[string]string{"question": "what is rust?", "corpus": "sha256:3f9a", "shards": "2"},
			[]executor.InputChange{
				{Name: "chunk_size", Recorded: "900", Removed: true},
				{Name: "question", Recorded: "why is the sky blue?", Given: "what is rust?"},
				{Name: "shards", Given: "2", Added: true}},
			`chunk_size not given (was "900"); question "why is the sky blue?" -> "what is rust?"; shards added ("2")`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, store, g, loads := interruptedRun(t, recorded)
			res, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r", Resume: true, Inputs: tc.given})
			rec, rerr := store.Run("r")
			require.NoError(t, rerr)
			assert.Equal(t, recorded, rec.Inputs, "the record keeps the inputs the run started with")
			if tc.changed == nil {
				require.NoError(t, err)
				nr, _ := res.Node("load")
				assert.True(t, nr.Restored)
				assert.EqualValues(t, 1, loads.Load())
				assert.True(t, rec.Finished())
				return
			}
			require.ErrorIs(t, err, executor.ErrInputsChanged)
			var ice *executor.InputsChangedError
			require.ErrorAs(t, err, &ice)
			assert.Equal(t, "r", ice.RunID)
			assert.Equal(t, tc.changed, ice.Changed)
			assert.ErrorContains(t, err, tc.msg)
			assert.EqualValues(t, 1, loads.Load(), "nothing ran")
			assert.Equal(t, "failed", rec.Status, "the refused resume left the run as it was")

			// The run still resumes with its recorded inputs.
			_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r", Inputs: recorded})
			require.NoError(t, err)
			assert.EqualValues(t, 1, loads.Load())
		})
	}
}

func TestResumeIgnoreInputs(t *testing.T) {
	recorded := map[string]string{"question": "q1", "corpus": "sha256:aa"}
	e, store, g, loads := interruptedRun(t, recorded)
	given := map[string]string{"question": "q2", "corpus": "sha256:aa"}
	res, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r", Inputs: given, IgnoreInputs: true})
	require.NoError(t, err)
	nr, _ := res.Node("load")
	assert.True(t, nr.Restored, "completed work is kept")
	assert.EqualValues(t, 1, loads.Load())
	rec, err := store.Run("r")
	require.NoError(t, err)
	assert.Equal(t, given, rec.Inputs, "the accepted inputs replace the recorded ones")
	assert.Equal(t, []executor.InputChange{{Name: "question", Recorded: "q1", Given: "q2"}}, rec.AcceptedChanges)

	// With IgnoreInputs and no inputs, the recorded ones stay.
	e, store, g, _ = interruptedRun(t, recorded)
	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r", IgnoreInputs: true})
	require.NoError(t, err)
	rec, err = store.Run("r")
	require.NoError(t, err)
	assert.Equal(t, recorded, rec.Inputs)
	assert.Empty(t, rec.AcceptedChanges)
}

// A run recorded without inputs (as every run of an older checkpoint file
// is) resumes without inputs, and refuses inputs it cannot check.
func TestRunWithoutRecordedInputs(t *testing.T) {
	e, store, g, _ := interruptedRun(t, nil)
	rec, err := store.Run("r")
	require.NoError(t, err)
	assert.Nil(t, rec.Inputs)
	runs, err := store.Runs()
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Nil(t, runs[0].Inputs)

	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r", Inputs: map[string]string{"question": "q"}})
	require.ErrorIs(t, err, executor.ErrInputsChanged)
	assert.ErrorContains(t, err, `question added ("q")`)
	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.NoError(t, err)
}

// A checkpoint file written before inputs were recorded (its run records
// have no inputs key) opens, lists its runs and resumes them.
func TestOldCheckpointFileWithoutInputs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	var loads atomic.Int32
	g := mustGraph(t,
		dag.Node{ID: "load", Run: func(context.Context, dag.State) error { loads.Add(1); return nil }},
		dag.Node{ID: "answer", DependsOn: []string{"load"}, Run: noop},
	)
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucket([]byte("cemaf"))
		require.NoError(t, m.Put([]byte("format"), []byte("cemaf-checkpoints/1")))
		runs, _ := tx.CreateBucket([]byte("runs"))
		b, _ := runs.CreateBucket([]byte("old"))
		now := time.Now().UTC().Format(time.RFC3339Nano)
		require.NoError(t, b.Put([]byte("info"), []byte(`{"id":"old","graph":"`+g.Fingerprint()+`","nodes":2,"completed":1,"created":"`+now+`","updated":"`+now+`","status":"running"}`)))
		require.NoError(t, b.Put([]byte("graph"), []byte(`{"nodes":["load","answer"],"edges":[["load","answer"]]}`)))
		done, _ := b.CreateBucket([]byte("done"))
		require.NoError(t, done.Put([]byte("load"), []byte(`{"attempts":1,"end":"`+now+`"}`)))
		_, _ = b.CreateBucket([]byte("state"))
		_, _ = b.CreateBucket([]byte("deleted"))
		return nil
	}))
	require.NoError(t, db.Close())

	store := openStore(t, path, executor.CheckpointOptions{})
	rec, err := store.Run("old")
	require.NoError(t, err)
	assert.Nil(t, rec.Inputs)
	e := mustExec(t, executor.Options{Checkpoints: store})
	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "old", Resume: true, Inputs: map[string]string{"q": "x"}})
	require.ErrorIs(t, err, executor.ErrInputsChanged, "inputs the run never recorded cannot be checked")
	res, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "old", Resume: true})
	require.NoError(t, err)
	nr, _ := res.Node("load")
	assert.True(t, nr.Restored)
	assert.Zero(t, loads.Load())
}

func TestInputsShownAndValidated(t *testing.T) {
	long := strings.Repeat("é", 40) // 80 bytes
	e, store, g, _ := interruptedRun(t, map[string]string{"question": long})
	runs, err := store.Runs()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"question": long}, runs[0].Inputs)

	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r", Inputs: map[string]string{"question": long + "?"}})
	require.ErrorIs(t, err, executor.ErrInputsChanged)
	// 32 bytes cut back to a character boundary: 16 é.
	assert.ErrorContains(t, err, `question "`+strings.Repeat("é", 16)+`"… (80 bytes) -> "`+strings.Repeat("é", 16)+`"… (81 bytes)`)

	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "x", Inputs: map[string]string{"": "v"}})
	assert.ErrorContains(t, err, "empty name")
	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "x", Inputs: map[string]string{"corpus": strings.Repeat("x", executor.MaxInputBytes+1)}})
	assert.ErrorContains(t, err, `RunOptions.Inputs["corpus"]: 65537 bytes: must be ≤ 65536`)
	_, err = store.Run("x")
	assert.ErrorIs(t, err, executor.ErrRunNotFound, "invalid inputs record nothing")
}
