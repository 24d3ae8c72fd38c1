package executor_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/paging"
)

// checkpointCounter wraps a durable pager and records which keys each
// Checkpoint call made durable.
type checkpointCounter struct {
	*paging.Pager
	mu      sync.Mutex
	calls   int
	durable map[string]bool
}

func (c *checkpointCounter) Checkpoint() error {
	keys := c.Keys() // every change before the call
	if err := c.Pager.Checkpoint(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	for _, k := range keys {
		c.durable[k] = true
	}
	return nil
}

func (c *checkpointCounter) isDurable(k string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.durable[k]
}

func TestDurableStateKeepsItsOwnValues(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, filepath.Join(dir, "runs.db"), executor.CheckpointOptions{})
	pager, err := paging.Wrap(nil, paging.Options{StoragePath: filepath.Join(dir, "pages"), Mode: paging.ModeDurable, MemoryLimitMB: 1})
	require.NoError(t, err)
	st := &checkpointCounter{Pager: pager, durable: map[string]bool{}}

	var violations atomic.Int32
	var runs sync.Map
	fail := errors.New("LLM down")
	var failing atomic.Bool
	failing.Store(true)
	var nodes []dag.Node
	for i := range 12 {
		var deps []string
		if i > 0 {
			deps = []string{"n" + strconv.Itoa(i-1), "n" + strconv.Itoa(i/2)}
		}
		nodes = append(nodes, dag.Node{ID: "n" + strconv.Itoa(i), DependsOn: deps, Run: func(_ context.Context, s dag.State) error {
			v, _ := runs.LoadOrStore(i, new(atomic.Int32))
			v.(*atomic.Int32).Add(1)
			done, err := store.CompletedNodes("r")
			if err != nil {
				return err
			}
			for _, d := range deps {
				// A dependency's value is in the State's last checkpoint
				// before its completion is recorded.
				if !st.isDurable(d) || !slices.Contains(done, d) {
					violations.Add(1)
				}
			}
			if i == 9 && failing.Load() {
				return fail
			}
			return s.Put("n"+strconv.Itoa(i), make([]byte, 64<<10))
		}})
	}
	g := mustGraph(t, nodes...)
	e := mustExec(t, executor.Options{Checkpoints: store, Limits: executor.Limits{CPU: 3}})
	_, err = e.RunWith(context.Background(), g, st, executor.RunOptions{ID: "r"})
	require.ErrorIs(t, err, fail)
	assert.Zero(t, violations.Load())
	assert.Positive(t, st.calls, "the State was checkpointed")
	rec, err := store.Run("r")
	require.NoError(t, err)
	assert.True(t, rec.DurableState)
	require.NoError(t, pager.Close())

	// A resume with another kind of State is refused.
	_, err = e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "resume it with that State")

	// The same pager, reopened, still holds the values: only n9 onward runs.
	failing.Store(false)
	pager2, err := paging.Wrap(nil, paging.Options{StoragePath: filepath.Join(dir, "pages"), Mode: paging.ModeDurable, MemoryLimitMB: 1})
	require.NoError(t, err)
	defer pager2.Close()
	res, err := e.RunWith(context.Background(), g, pager2, executor.RunOptions{ID: "r"})
	require.NoError(t, err)
	restored := 0
	for _, n := range res.Nodes {
		if n.Restored {
			restored++
		}
	}
	assert.Equal(t, 9, restored)
	for i := range 9 {
		v, _ := runs.Load(i)
		assert.EqualValues(t, 1, v.(*atomic.Int32).Load(), "n%d ran again", i)
	}
	assert.Len(t, pager2.Keys(), 12)
}
