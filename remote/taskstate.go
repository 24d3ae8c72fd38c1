package remote

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/cemaf-go/cemaf/dag"
)

// taskState is the State a worker runs a task's function on: the task's
// inputs, reads limited to the declared Reads and Writes, writes to the
// declared Writes. It records the keys the function changed.
type taskState struct {
	mem    dag.MemoryState
	node   string
	reads  []string
	writes []string

	// mu guards changed.
	mu      sync.Mutex
	changed map[string]bool // key → deleted
}

var (
	_ dag.State       = (*taskState)(nil)
	_ dag.RangeReader = (*taskState)(nil)
)

func (t *taskState) declared(key string) bool {
	return slices.Contains(t.reads, key) || slices.Contains(t.writes, key)
}

func (t *taskState) Get(key string) ([]byte, error) {
	if !t.declared(key) {
		return nil, fmt.Errorf("remote: node %q reads %q: %w (Reads %q)", t.node, key, ErrUndeclaredKey, t.reads)
	}
	return t.mem.Get(key)
}

func (t *taskState) ReadAt(key string, p []byte, off int64) (int, error) {
	if !t.declared(key) {
		return 0, fmt.Errorf("remote: node %q reads %q: %w (Reads %q)", t.node, key, ErrUndeclaredKey, t.reads)
	}
	return dag.ReadAt(&t.mem, key, p, off)
}

func (t *taskState) Put(key string, value []byte) error {
	if !slices.Contains(t.writes, key) {
		return fmt.Errorf("remote: node %q writes %q: %w (Writes %q)", t.node, key, ErrUndeclaredKey, t.writes)
	}
	if err := t.mem.Put(key, value); err != nil {
		return err
	}
	t.mark(key, false)
	return nil
}

func (t *taskState) Delete(key string) error {
	if !slices.Contains(t.writes, key) {
		return fmt.Errorf("remote: node %q deletes %q: %w (Writes %q)", t.node, key, ErrUndeclaredKey, t.writes)
	}
	if err := t.mem.Delete(key); err != nil {
		return err
	}
	t.mark(key, true)
	return nil
}

func (t *taskState) Keys() []string                  { return t.mem.Keys() }
func (t *taskState) Size() int64                     { return t.mem.Size() }
func (t *taskState) SizeOf(key string) (int64, bool) { return t.mem.SizeOf(key) }

func (t *taskState) mark(key string, deleted bool) {
	t.mu.Lock()
	if t.changed == nil {
		t.changed = make(map[string]bool)
	}
	t.changed[key] = deleted
	t.mu.Unlock()
}

// outputs returns the changed keys, sorted, with their values inline.
func (t *taskState) outputs() []entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]entry, 0, len(t.changed))
	for k, deleted := range t.changed {
		v, err := t.mem.Get(k)
		if deleted || err != nil {
			out = append(out, entry{Key: k, Kind: valueAbsent})
			continue
		}
		out = append(out, entry{Key: k, Kind: valueInline, Data: v})
	}
	slices.SortFunc(out, func(a, b entry) int {
		if a.Key < b.Key {
			return -1
		}
		return 1
	})
	return out
}

// TaskInfo describes the task a worker-side context belongs to: the
// remote counterpart of executor.NodeInfo, which is not available on the
// worker.
type TaskInfo struct {
	RunID    string
	Node     string
	Attempt  int // the coordinator's executor attempt
	Delivery int // JetStream's delivery count of this attempt's task, from 1
	Worker   string
}

// IdempotencyKey is the node's key within its run, the same as the
// coordinator's executor.NodeInfo.IdempotencyKey: stable across attempts,
// deliveries, workers and resumed runs.
func (i TaskInfo) IdempotencyKey() string { return i.RunID + "/" + i.Node }

type taskInfoKey struct{}

// TaskInfoFrom returns the TaskInfo of the task whose context is ctx, on a
// worker.
func TaskInfoFrom(ctx context.Context) (TaskInfo, bool) {
	i, ok := ctx.Value(taskInfoKey{}).(TaskInfo)
	return i, ok
}
