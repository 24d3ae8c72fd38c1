package remote_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/internal/memfs"
	"github.com/cemaf-go/cemaf/remote"
	"github.com/cemaf-go/cemaf/remote/hub"
)

// creatingState is a State that takes values in parts (dag.ValueCreator)
// and records which keys came so and in how many writes.
type creatingState struct {
	*dag.MemoryState
	mu      sync.Mutex
	created map[string]int // key → writes
}

func (c *creatingState) CreateValue(key string) (dag.ValueWriter, error) {
	w, err := dag.NewValueWriter(c.MemoryState, key)
	if err != nil {
		return nil, err
	}
	return &countedWriter{ValueWriter: w, c: c, key: key}, nil
}

type countedWriter struct {
	dag.ValueWriter
	c   *creatingState
	key string
}

func (w *countedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	w.c.created[w.key]++
	w.c.mu.Unlock()
	return w.ValueWriter.Write(p)
}

// pattern is n bytes that compress poorly and differ at every offset.
func pattern(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// A value too large for a message reaches the worker's function through
// a file (read in parts with dag.NewValueReader, or whole with Get), and
// a value the function writes in parts (dag.NewValueWriter) goes to the
// object store from its file and into the coordinator's State in parts
// when that State takes values so, whole otherwise. The spool directory
// is left empty.
func TestLargeValuesStreamThroughFiles(t *testing.T) {
	const size = 3 << 20 // over the server's 1 MiB payload
	in := pattern(size)
	sum := sha256.Sum256(in)

	spec := remote.Spec{Capability: "index", Reads: []string{"in"}, Writes: []string{"out", "small", "gone"}}
	work := dag.Node{ID: "work", Run: func(_ context.Context, s dag.State) error {
		r, err := dag.NewValueReader(s, "in")
		if err != nil {
			return err
		}
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return err
		}
		if !bytes.Equal(h.Sum(nil), sum[:]) {
			return dag.Permanent(assert.AnError)
		}
		whole, err := s.Get("in")
		if err != nil || !bytes.Equal(whole, in) {
			return dag.Permanent(assert.AnError)
		}
		// out: the input reversed in 64 KiB parts.
		w, err := dag.NewValueWriter(s, "out")
		if err != nil {
			return err
		}
		for off := size; off > 0; off -= 64 << 10 {
			if _, err := w.Write(in[off-64<<10 : off]); err != nil {
				w.Abort()
				return err
			}
		}
		if err := w.Commit(); err != nil {
			return err
		}
		// small: written in parts, small enough to go inline.
		w, err = dag.NewValueWriter(s, "small")
		if err != nil {
			return err
		}
		_, _ = io.WriteString(w, "sm")
		_, _ = io.WriteString(w, "all")
		if err := w.Commit(); err != nil {
			return err
		}
		// gone: written in parts, then deleted.
		if w, err = dag.NewValueWriter(s, "gone"); err != nil {
			return err
		}
		_, _ = io.WriteString(w, "x")
		if err := w.Commit(); err != nil {
			return err
		}
		return s.Delete("gone")
	}}
	want := make([]byte, 0, size)
	for off := size; off > 0; off -= 64 << 10 {
		want = append(want, in[off-64<<10:off]...)
	}

	h := startHub(t, hubOpts())
	reg := remote.NewRegistry()
	require.NoError(t, reg.RegisterNode(work, spec))
	spool := t.TempDir()
	runWorker(t, newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{Slots: 2, SpoolDir: spool}))
	c := newCoordinator(t, connect(t, h.ClientURL()), remote.CoordinatorOptions{})
	rn, err := c.Node(work, spec)
	require.NoError(t, err)
	g, err := dag.New(rn)
	require.NoError(t, err)

	for _, name := range []string{"in parts", "whole"} {
		t.Run(name, func(t *testing.T) {
			mem := dag.NewMemoryState()
			require.NoError(t, mem.Put("in", in))
			require.NoError(t, mem.Put("gone", []byte("old")))
			var s dag.State = mem
			cs := &creatingState{MemoryState: mem, created: map[string]int{}}
			if name == "in parts" {
				s = cs
			}
			res, err := mustExec(t, executor.Options{Gate: c}).Run(context.Background(), g, s)
			require.NoError(t, err)
			require.Equal(t, executor.Succeeded, res.Nodes[0].Status, res.Nodes[0].Err)
			out, err := mem.Get("out")
			require.NoError(t, err)
			assert.True(t, bytes.Equal(want, out), "out: %d bytes, want %d", len(out), len(want))
			small, err := mem.Get("small")
			require.NoError(t, err)
			assert.Equal(t, "small", string(small))
			_, ok := mem.SizeOf("gone")
			assert.False(t, ok, "deleted by the node")
			if name == "in parts" {
				assert.Greater(t, cs.created["out"], 1, "out came in parts")
				assert.NotContains(t, cs.created, "small", "small came inline, whole")
			}
			left, err := os.ReadDir(spool)
			require.NoError(t, err)
			assert.Empty(t, left, "the spool directory is left empty")
		})
	}
}

// A spool directory that cannot be written fails the task with an error
// that names WorkerOptions.SpoolDir.
func TestSpoolDirMissing(t *testing.T) {
	h := startHub(t, hubOpts())
	spec := remote.Spec{Capability: "index", Reads: []string{"in"}, Writes: []string{"out"}}
	work := dag.Node{ID: "work", Run: func(_ context.Context, s dag.State) error { return s.Put("out", []byte("x")) }}
	reg := remote.NewRegistry()
	require.NoError(t, reg.RegisterNode(work, spec))
	runWorker(t, newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{Slots: 1, SpoolDir: t.TempDir() + "/missing"}))
	c := newCoordinator(t, connect(t, h.ClientURL()), remote.CoordinatorOptions{})
	rn, err := c.Node(work, spec)
	require.NoError(t, err)
	rn.Retry = &dag.RetryPolicy{MaxAttempts: 1}
	g, err := dag.New(rn)
	require.NoError(t, err)
	s := dag.NewMemoryState()
	require.NoError(t, s.Put("in", pattern(2<<20)))
	res, err := mustExec(t, executor.Options{Gate: c}).Run(context.Background(), g, s)
	require.Error(t, err)
	require.Error(t, res.Nodes[0].Err)
	assert.Contains(t, res.Nodes[0].Err.Error(), "WorkerOptions.SpoolDir")
}

// A worker whose spool would be the temporary directory, in RAM, says so
// when it is made; one given a SpoolDir does not.
func TestWorkerWarnsOfASpoolInRAM(t *testing.T) {
	shm := "/dev/shm"
	if inRAM, err := memfs.InRAM(shm); err != nil || !inRAM {
		t.Skip("no tmpfs at /dev/shm")
	}
	nc := connect(t, startHub(t, hub.Options{}).ClientURL())
	reg := remote.NewRegistry()
	require.NoError(t, reg.Register("cpu", "noop", func(context.Context, dag.State) error { return nil }))
	given := t.TempDir()
	t.Setenv("TMPDIR", shm)
	for _, spool := range []string{"", given} {
		var logs bytes.Buffer
		newWorker(t, nc, reg, remote.WorkerOptions{SpoolDir: spool, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if spool == "" {
			assert.Contains(t, logs.String(), "SpoolDir is empty and the temporary directory is in RAM")
			assert.Contains(t, logs.String(), "dir="+shm)
		} else {
			assert.NotContains(t, logs.String(), "SpoolDir", "SpoolDir %s was given", spool)
		}
	}
}
