package remote

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/cemaf-go/cemaf/dag"
)

// taskState is the State a worker runs a task's function on: the task's
// inputs, reads limited to the declared Reads and Writes, writes to the
// declared Writes. It records the keys the function changed.
//
// Values from the object store, and values the function writes in parts
// (dag.NewValueWriter), are kept in files in dir, not in memory: each file
// is unlinked as soon as it is made, so nothing is left behind even by a
// killed worker, and is closed by release.
type taskState struct {
	mem    dag.MemoryState
	dir    string
	node   string
	reads  []string
	writes []string

	// mu guards changed, files and spent.
	mu      sync.Mutex
	changed map[string]bool // key → deleted
	files   map[string]spoolFile
	spent   []*os.File // files replaced while the task runs, closed by release
}

// spoolFile is a value held in a file.
type spoolFile struct {
	f    *os.File
	size int64
}

var (
	_ dag.State        = (*taskState)(nil)
	_ dag.RangeReader  = (*taskState)(nil)
	_ dag.ValueCreator = (*taskState)(nil)
)

func (t *taskState) declared(key string) bool {
	return slices.Contains(t.reads, key) || slices.Contains(t.writes, key)
}

func (t *taskState) undeclaredRead(key string) error {
	return fmt.Errorf("remote: node %q reads %q: %w (Reads %q)", t.node, key, ErrUndeclaredKey, t.reads)
}

func (t *taskState) undeclaredWrite(key string) error {
	return fmt.Errorf("remote: node %q writes %q: %w (Writes %q)", t.node, key, ErrUndeclaredKey, t.writes)
}

// file returns key's file, if its value is in one.
func (t *taskState) file(key string) (spoolFile, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sf, ok := t.files[key]
	return sf, ok
}

func (t *taskState) Get(key string) ([]byte, error) {
	if !t.declared(key) {
		return nil, t.undeclaredRead(key)
	}
	if sf, ok := t.file(key); ok {
		v := make([]byte, sf.size)
		if _, err := sf.f.ReadAt(v, 0); err != nil {
			return nil, fmt.Errorf("remote: node %q: read %q from its file: %w", t.node, key, err)
		}
		return v, nil
	}
	return t.mem.Get(key)
}

func (t *taskState) ReadAt(key string, p []byte, off int64) (int, error) {
	if !t.declared(key) {
		return 0, t.undeclaredRead(key)
	}
	if sf, ok := t.file(key); ok {
		if off < 0 {
			return 0, fmt.Errorf("remote: node %q: read %q at negative offset %d", t.node, key, off)
		}
		if off >= sf.size {
			return 0, io.EOF
		}
		n, err := sf.f.ReadAt(p[:min(int64(len(p)), sf.size-off)], off)
		if err == nil && n < len(p) {
			err = io.EOF
		}
		return n, err
	}
	return dag.ReadAt(&t.mem, key, p, off)
}

func (t *taskState) Put(key string, value []byte) error {
	if !slices.Contains(t.writes, key) {
		return t.undeclaredWrite(key)
	}
	if err := t.mem.Put(key, value); err != nil {
		return err
	}
	t.mark(key, false, nil)
	return nil
}

func (t *taskState) Delete(key string) error {
	if !slices.Contains(t.writes, key) {
		return fmt.Errorf("remote: node %q deletes %q: %w (Writes %q)", t.node, key, ErrUndeclaredKey, t.writes)
	}
	if err := t.mem.Delete(key); err != nil {
		return err
	}
	t.mark(key, true, nil)
	return nil
}

func (t *taskState) Keys() []string {
	keys := t.mem.Keys()
	t.mu.Lock()
	for k := range t.files {
		keys = append(keys, k)
	}
	t.mu.Unlock()
	slices.Sort(keys)
	return slices.Compact(keys)
}

func (t *taskState) Size() int64 {
	n := t.mem.Size()
	t.mu.Lock()
	for _, sf := range t.files {
		n += sf.size
	}
	t.mu.Unlock()
	return n
}

func (t *taskState) SizeOf(key string) (int64, bool) {
	if sf, ok := t.file(key); ok {
		return sf.size, true
	}
	return t.mem.SizeOf(key)
}

// CreateValue writes key's value to a file.
func (t *taskState) CreateValue(key string) (dag.ValueWriter, error) {
	if !slices.Contains(t.writes, key) {
		return nil, t.undeclaredWrite(key)
	}
	f, err := t.createFile()
	if err != nil {
		return nil, fmt.Errorf("remote: node %q writes %q: %w", t.node, key, err)
	}
	return &spoolWriter{t: t, key: key, f: f}, nil
}

// createFile makes an unlinked file in dir.
func (t *taskState) createFile() (*os.File, error) {
	f, err := os.CreateTemp(t.dir, "cemaf-task-value-*")
	if err != nil {
		return nil, fmt.Errorf("spool a value (WorkerOptions.SpoolDir): %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("spool a value (WorkerOptions.SpoolDir): %w", err)
	}
	return f, nil
}

// spool stores the size bytes of r as input key's value, in a file.
func (t *taskState) spool(key string, r io.Reader, size int64) error {
	f, err := t.createFile()
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, size+1))
	if err == nil && n != size {
		err = fmt.Errorf("%d bytes, want %d", n, size)
	}
	if err != nil {
		f.Close()
		return err
	}
	t.mu.Lock()
	t.setFileLocked(key, spoolFile{f: f, size: size})
	t.mu.Unlock()
	return nil
}

// setFileLocked makes sf key's value. Called with mu held.
func (t *taskState) setFileLocked(key string, sf spoolFile) {
	if t.files == nil {
		t.files = make(map[string]spoolFile)
	}
	if old, ok := t.files[key]; ok {
		t.spent = append(t.spent, old.f)
	}
	t.files[key] = sf
}

// mark records a change of key: to the file sf when it is set, else to
// key's value in mem (or its deletion). A file it replaces stays open
// until release, for readers that still have it.
func (t *taskState) mark(key string, deleted bool, sf *os.File) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.changed == nil {
		t.changed = make(map[string]bool)
	}
	t.changed[key] = deleted
	if old, ok := t.files[key]; ok && (sf == nil || old.f != sf) {
		t.spent = append(t.spent, old.f)
		delete(t.files, key)
	}
}

// release closes the task's files.
func (t *taskState) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, sf := range t.files {
		sf.f.Close()
	}
	for _, f := range t.spent {
		f.Close()
	}
	t.files, t.spent = nil, nil
}

// outputs returns the changed keys, sorted, with their sizes (-1 for a
// deleted key). A value in memory is inline; a value in a file is inline
// without its bytes (Data nil): the caller reads it (Get) or sends it to
// the object store from the file.
func (t *taskState) outputs() ([]entry, []int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]entry, 0, len(t.changed))
	for k, deleted := range t.changed {
		if sf, ok := t.files[k]; ok && !deleted {
			out = append(out, entry{Key: k, Kind: valueInline, Size: sf.size})
			continue
		}
		v, err := t.mem.Get(k)
		if deleted || err != nil {
			out = append(out, entry{Key: k, Kind: valueAbsent})
			continue
		}
		out = append(out, entry{Key: k, Kind: valueInline, Data: v, Size: int64(len(v))})
	}
	slices.SortFunc(out, func(a, b entry) int { return strings.Compare(a.Key, b.Key) })
	sizes := make([]int64, len(out))
	for i, o := range out {
		sizes[i] = o.Size
		if o.Kind == valueAbsent {
			sizes[i] = -1
		}
	}
	return out, sizes
}

// spoolWriter is a value a task's function writes in parts, into a file.
type spoolWriter struct {
	t     *taskState
	key   string
	f     *os.File
	size  int64
	ended bool
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	if w.ended {
		return 0, dag.ErrValueEnded
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	return n, err
}

func (w *spoolWriter) Commit() error {
	if w.ended {
		return dag.ErrValueEnded
	}
	w.ended = true
	t := w.t
	if err := t.mem.Delete(w.key); err != nil {
		w.f.Close()
		return err
	}
	t.mu.Lock()
	t.setFileLocked(w.key, spoolFile{f: w.f, size: w.size})
	t.mu.Unlock()
	t.mark(w.key, false, w.f)
	return nil
}

func (w *spoolWriter) Abort() {
	if !w.ended {
		w.ended = true
		w.f.Close()
	}
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
