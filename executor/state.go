package executor

import (
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/cemaf-go/cemaf/dag"
)

// DurableState is a State that keeps its values in durable storage of its
// own, such as a paging.Pager in ModeDurable. When a run's State is one and
// Durable reports true, the checkpoint store does not copy the values nodes
// write: before it records completions it calls Checkpoint, which must make
// every change made before the call survive a crash. A resumed run must
// then be given the same State (the same pager storage), which still holds
// the values.
//
// Caveat: a durable State may also keep values written by a node that had
// not completed when the process died; that node runs again on resume and
// normally rewrites them.
type DurableState interface {
	dag.State
	Checkpoint() error
	Durable() bool
}

// trackedState records the keys a node attempt changes, for its checkpoint.
type trackedState struct {
	dag.State
	// mu guards changed: a node may write from several goroutines.
	mu      sync.Mutex
	changed map[string]bool // key → deleted
}

func (t *trackedState) Put(key string, value []byte) error {
	err := t.State.Put(key, value)
	if err == nil {
		t.mark(key, false)
	}
	return err
}

func (t *trackedState) Delete(key string) error {
	err := t.State.Delete(key)
	if err == nil {
		t.mark(key, true)
	}
	return err
}

func (t *trackedState) mark(key string, deleted bool) {
	t.mu.Lock()
	if t.changed == nil {
		t.changed = make(map[string]bool)
	}
	t.changed[key] = deleted
	t.mu.Unlock()
}

// ReadAt keeps the wrapped State's incremental reads available.
func (t *trackedState) ReadAt(key string, p []byte, off int64) (int, error) {
	return dag.ReadAt(t.State, key, p, off)
}

// CreateValue keeps the wrapped State's writer of values in parts (if it
// has one; dag.NewValueWriter's otherwise): the key counts as changed once
// the value is committed.
func (t *trackedState) CreateValue(key string) (dag.ValueWriter, error) {
	w, err := dag.NewValueWriter(t.State, key)
	if err != nil {
		return nil, err
	}
	return &trackedWriter{ValueWriter: w, t: t, key: key}, nil
}

// trackedWriter marks its key changed when its value is committed.
type trackedWriter struct {
	dag.ValueWriter
	t   *trackedState
	key string
}

func (w *trackedWriter) Commit() error {
	err := w.ValueWriter.Commit()
	if err == nil {
		w.t.mark(w.key, false)
	}
	return err
}

// changes reads the current value of every key the attempt changed.
func (t *trackedState) changes() ([]change, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]change, 0, len(t.changed))
	for k, deleted := range t.changed {
		if deleted {
			out = append(out, change{key: k, deleted: true})
			continue
		}
		v, err := t.State.Get(k)
		if errors.Is(err, dag.ErrNotFound) {
			out = append(out, change{key: k, deleted: true}) // deleted since by another node
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, change{key: k, value: v})
	}
	slices.SortFunc(out, func(a, b change) int { return strings.Compare(a.key, b.key) })
	return out, nil
}
