package remote

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
)

func newTestTaskState(t *testing.T, maxValue int64) *taskState {
	t.Helper()
	return &taskState{dir: t.TempDir(), node: "n", writes: []string{"k"}, maxValue: maxValue}
}

// commitValue writes v as k's value in parts.
func commitValue(st *taskState, v []byte) error {
	w, err := dag.NewValueWriter(st, "k")
	if err != nil {
		return err
	}
	if _, err := w.Write(v); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

// TestTaskStateConcurrentWritesOfAKey: a function whose goroutines Put and
// commit written values of one key at once leaves the key with one of the
// values written, never absent, and a reader never finds it missing.
func TestTaskStateConcurrentWritesOfAKey(t *testing.T) {
	st := newTestTaskState(t, 0)
	defer st.release()
	inMem, inFile := []byte("in memory"), []byte("in a file")
	require.NoError(t, st.Put("k", inMem))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// spin calls f in a goroutine of its own until stop is closed or f
	// returns false.
	spin := func(f func() bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !f() {
					return
				}
			}
		}()
	}
	var readErr error
	spin(func() bool {
		_, readErr = st.Get("k")
		return readErr == nil
	})
	// Goroutines that Put the key as fast as they can, beside one that
	// commits values written in parts.
	for range 3 {
		spin(func() bool { return assert.NoError(t, st.Put("k", inMem)) })
	}
	var commitErr error
	for range 300 {
		if commitErr = commitValue(st, inFile); commitErr != nil {
			break
		}
	}
	close(stop)
	wg.Wait()
	require.NoError(t, commitErr)
	require.NoError(t, readErr, "a reader found the key missing while it was being written")
	outs, sizes := st.outputs()
	require.Len(t, outs, 1)
	assert.Equal(t, "k", outs[0].Key)
	require.Equal(t, valueInline, outs[0].Kind, "the key was reported deleted")
	v, err := st.Get("k")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(v, inMem) || bytes.Equal(v, inFile), "value %q", v)
	assert.Equal(t, int64(len(v)), sizes[0])
}

// TestTaskStateReleaseClosesOpenWriters: a writer the function neither
// committed nor aborted (it panicked, or returned early) has its file
// closed by release; a goroutine left running cannot commit or write after.
func TestTaskStateReleaseClosesOpenWriters(t *testing.T) {
	st := newTestTaskState(t, 0)
	w, err := st.CreateValue("k")
	require.NoError(t, err)
	_, err = w.Write([]byte("half a value"))
	require.NoError(t, err)
	f := w.(*spoolWriter).f
	st.release()
	_, err = f.Write([]byte("x"))
	require.ErrorIs(t, err, os.ErrClosed, "release left the writer's file open")
	_, err = w.Write([]byte("more"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"k"`)
	require.ErrorIs(t, w.Commit(), errReleased)
	assert.Empty(t, st.files)
	_, err = st.CreateValue("k")
	require.ErrorIs(t, err, errReleased)
	w.Abort() // after release: nothing to close twice
}

// TestTaskStateAbortClosesItsFile: an aborted writer's file is closed at
// once and is not kept for release.
func TestTaskStateAbortClosesItsFile(t *testing.T) {
	st := newTestTaskState(t, 0)
	defer st.release()
	w, err := st.CreateValue("k")
	require.NoError(t, err)
	f := w.(*spoolWriter).f
	w.Abort()
	_, err = f.Write([]byte("x"))
	require.ErrorIs(t, err, os.ErrClosed)
	assert.Empty(t, st.open)
	_, ok := st.SizeOf("k")
	assert.False(t, ok)
}

// TestTaskStateWriterBound: a value written in parts is refused as it
// passes WorkerOptions.MaxValueBytes, before it fills the disk, with a
// limit error naming the key and the bound.
func TestTaskStateWriterBound(t *testing.T) {
	st := newTestTaskState(t, 1000)
	defer st.release()
	w, err := st.CreateValue("k")
	require.NoError(t, err)
	_, err = w.Write(make([]byte, 1000))
	require.NoError(t, err, "a value of exactly the bound")
	n, err := w.Write([]byte{1})
	require.Error(t, err)
	assert.Zero(t, n)
	var le *limit.Error
	require.True(t, errors.As(err, &le), "%v", err)
	assert.Equal(t, limit.MessageSize, le.Kind)
	assert.Equal(t, "k", le.Subject)
	assert.Equal(t, float64(1000), le.Limit)
	assert.True(t, dag.IsPermanent(err))
	assert.True(t, strings.Contains(err.Error(), "MaxValueBytes"), "%v", err)
	w.Abort()
}
