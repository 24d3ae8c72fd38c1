package remote

import (
	"context"
	"errors"
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
// killed worker, and is closed by release, with the files of writers the
// function left open. A key's value is either in mem or in files; mu is
// held across every change that moves it, so that a reader never finds it
// in neither.
type taskState struct {
	mem      dag.MemoryState
	dir      string
	node     string
	reads    []string
	writes   []string
	maxValue int64 // the largest value a writer takes, in bytes (0: no bound)

	// mu guards the changes of mem and the fields below.
	mu       sync.Mutex
	changed  map[string]bool // key → deleted
	files    map[string]spoolFile
	spent    []*os.File            // files replaced while the task runs, closed by release
	open     map[*spoolWriter]bool // writers neither committed nor aborted
	released bool                  // release ran: writers are refused
}

// errReleased is returned to a goroutine the task's function left running
// that writes after the task ended.
var errReleased = errors.New("the task has ended")

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

func (t *taskState) Get(key string) ([]byte, error) {
	if !t.declared(key) {
		return nil, t.undeclaredRead(key)
	}
	t.mu.Lock()
	sf, ok := t.files[key]
	if !ok {
		defer t.mu.Unlock()
		return t.mem.Get(key)
	}
	t.mu.Unlock()
	// A file stays open until release, even once replaced: read it
	// without mu.
	v := make([]byte, sf.size)
	if _, err := sf.f.ReadAt(v, 0); err != nil {
		return nil, fmt.Errorf("remote: node %q: read %q from its file: %w", t.node, key, err)
	}
	return v, nil
}

func (t *taskState) ReadAt(key string, p []byte, off int64) (int, error) {
	if !t.declared(key) {
		return 0, t.undeclaredRead(key)
	}
	t.mu.Lock()
	sf, ok := t.files[key]
	if !ok {
		defer t.mu.Unlock()
		return dag.ReadAt(&t.mem, key, p, off)
	}
	t.mu.Unlock()
	if off < 0 {
		return 0, fmt.Errorf("remote: node %q: read %q at negative offset %d", t.node, key, off)
	}
	if off >= sf.size {
		return 0, io.EOF
	}
	n, err := sf.f.ReadAt(p[:min(int64(len(p)), sf.size-off)], off)
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("remote: node %q: read %q from its file: %w", t.node, key, err)
	}
	if n < len(p) {
		err = io.EOF
	}
	return n, err
}

func (t *taskState) Put(key string, value []byte) error {
	if !slices.Contains(t.writes, key) {
		return t.undeclaredWrite(key)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.mem.Put(key, value); err != nil {
		return err
	}
	t.markLocked(key, false)
	return nil
}

func (t *taskState) Delete(key string) error {
	if !slices.Contains(t.writes, key) {
		return fmt.Errorf("remote: node %q deletes %q: %w (Writes %q)", t.node, key, ErrUndeclaredKey, t.writes)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.mem.Delete(key); err != nil {
		return err
	}
	t.markLocked(key, true)
	return nil
}

func (t *taskState) Keys() []string {
	t.mu.Lock()
	keys := t.mem.Keys()
	for k := range t.files {
		keys = append(keys, k)
	}
	t.mu.Unlock()
	slices.Sort(keys)
	return slices.Compact(keys)
}

func (t *taskState) Size() int64 {
	t.mu.Lock()
	n := t.mem.Size()
	for _, sf := range t.files {
		n += sf.size
	}
	t.mu.Unlock()
	return n
}

func (t *taskState) SizeOf(key string) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sf, ok := t.files[key]; ok {
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
	w := &spoolWriter{t: t, key: key, f: f}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.released {
		f.Close()
		return nil, fmt.Errorf("remote: node %q writes %q: %w", t.node, key, errReleased)
	}
	if t.open == nil {
		t.open = make(map[*spoolWriter]bool)
	}
	t.open[w] = true
	return w, nil
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

// spool stores the size bytes of r as input key's value, in a file. It is
// called before the function runs, by the goroutine that later calls
// release.
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

// markLocked records a change of key to its value in mem (or its
// deletion). A file it replaces stays open until release, for readers that
// still have it. Called with mu held.
func (t *taskState) markLocked(key string, deleted bool) {
	t.changedLocked(key, deleted)
	if old, ok := t.files[key]; ok {
		t.spent = append(t.spent, old.f)
		delete(t.files, key)
	}
}

// changedLocked records that the function changed key. Called with mu
// held.
func (t *taskState) changedLocked(key string, deleted bool) {
	if t.changed == nil {
		t.changed = make(map[string]bool)
	}
	t.changed[key] = deleted
}

// release closes the task's files, those of writers left open included,
// and refuses the writes of goroutines the function left running.
func (t *taskState) release() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, sf := range t.files {
		sf.f.Close()
	}
	for _, f := range t.spent {
		f.Close()
	}
	for w := range t.open {
		w.f.Close()
	}
	t.files, t.spent, t.open = nil, nil, nil
	t.released = true
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
// Its fields other than t are the writing goroutine's.
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
	t := w.t
	if t.maxValue > 0 && w.size+int64(len(p)) > t.maxValue {
		return 0, outputTooLarge(t.node, w.key, w.size+int64(len(p)), t.maxValue)
	}
	n, err := w.f.Write(p)
	w.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("remote: node %q: write %q to its file: %w", t.node, w.key, err)
	}
	return n, nil
}

func (w *spoolWriter) Commit() error {
	if w.ended {
		return dag.ErrValueEnded
	}
	w.ended = true
	t := w.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.released {
		// release closed the file.
		return fmt.Errorf("remote: node %q writes %q: %w", t.node, w.key, errReleased)
	}
	delete(t.open, w)
	if err := t.mem.Delete(w.key); err != nil {
		w.f.Close()
		return err
	}
	t.setFileLocked(w.key, spoolFile{f: w.f, size: w.size})
	t.changedLocked(w.key, false)
	return nil
}

func (w *spoolWriter) Abort() {
	if w.ended {
		return
	}
	w.ended = true
	t := w.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.released { // else release closed the file
		delete(t.open, w)
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
