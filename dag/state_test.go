package dag_test

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
)

func TestMemoryStateAccounting(t *testing.T) {
	var s dag.MemoryState // the zero value is usable
	_, err := s.Get("missing")
	require.ErrorIs(t, err, dag.ErrNotFound)
	assert.Contains(t, err.Error(), `"missing"`)

	buf := []byte("hello")
	require.NoError(t, s.Put("a", buf))
	buf[0] = 'J' // Put copied the value
	v, err := s.Get("a")
	require.NoError(t, err)
	assert.Equal(t, "hello", string(v))

	require.NoError(t, s.Put("b", make([]byte, 1000)))
	require.NoError(t, s.Put("a", []byte("hi"))) // replace shrinks
	assert.EqualValues(t, 1002, s.Size())
	size, ok := s.SizeOf("b")
	assert.True(t, ok)
	assert.EqualValues(t, 1000, size)
	_, ok = s.SizeOf("zzz")
	assert.False(t, ok)

	require.NoError(t, s.Put("empty", nil))
	size, ok = s.SizeOf("empty")
	assert.True(t, ok)
	assert.Zero(t, size)
	assert.Equal(t, []string{"a", "b", "empty"}, s.Keys())

	require.NoError(t, s.Delete("b"))
	require.NoError(t, s.Delete("b")) // deleting twice is fine
	assert.EqualValues(t, 2, s.Size())
	assert.Equal(t, []string{"a", "empty"}, s.Keys())
}

func TestMemoryStateConcurrent(t *testing.T) {
	s := dag.NewMemoryState()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 500 {
				key := fmt.Sprintf("k%d", i%50)
				_ = s.Put(key, make([]byte, w+1))
				_, _ = s.Get(key)
				if i%7 == 0 {
					_ = s.Delete(key)
				}
				_ = s.Keys()
			}
		})
	}
	wg.Wait()
	var total int64
	for _, k := range s.Keys() {
		n, _ := s.SizeOf(k)
		total += n
	}
	assert.Equal(t, total, s.Size(), "Size must equal the sum of SizeOf")
}

type doc struct {
	Title  string   `json:"title"`
	Chunks []string `json:"chunks"`
}

func TestJSONHelpers(t *testing.T) {
	s := dag.NewMemoryState()
	require.NoError(t, dag.PutJSON(s, "doc", doc{Title: "t", Chunks: []string{"a", "b"}}))
	got, err := dag.GetJSON[doc](s, "doc")
	require.NoError(t, err)
	assert.Equal(t, doc{Title: "t", Chunks: []string{"a", "b"}}, got)

	_, err = dag.GetJSON[doc](s, "none")
	assert.ErrorIs(t, err, dag.ErrNotFound)

	require.NoError(t, s.Put("bad", []byte("{not json")))
	_, err = dag.GetJSON[doc](s, "bad")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `decode "bad"`)

	err = dag.PutJSON(s, "fn", func() {})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `encode "fn"`)
}

// rangeState is a State that records ReadAt calls, standing in for a pager.
type rangeState struct {
	*dag.MemoryState
	reads int
}

func (r *rangeState) ReadAt(key string, p []byte, off int64) (int, error) {
	r.reads++
	return dag.ReadAt(r.MemoryState, key, p, off) // MemoryState: through Get
}

func TestReadAt(t *testing.T) {
	s := dag.NewMemoryState()
	require.NoError(t, s.Put("v", []byte("0123456789")))
	buf := make([]byte, 4)
	n, err := dag.ReadAt(s, "v", buf, 3)
	assert.NoError(t, err)
	assert.Equal(t, "3456", string(buf[:n]))
	n, err = dag.ReadAt(s, "v", buf, 8)
	assert.ErrorIs(t, err, io.EOF)
	assert.Equal(t, "89", string(buf[:n]))
	_, err = dag.ReadAt(s, "v", buf, 10)
	assert.ErrorIs(t, err, io.EOF)
	_, err = dag.ReadAt(s, "v", buf, -1)
	assert.ErrorContains(t, err, "negative offset")
	_, err = dag.ReadAt(s, "none", buf, 0)
	assert.ErrorIs(t, err, dag.ErrNotFound)
	rs := &rangeState{MemoryState: s}
	_, err = dag.ReadAt(rs, "v", buf, 0)
	assert.NoError(t, err)
	assert.Equal(t, 1, rs.reads, "a RangeReader is used when there is one")
}

func TestNewValueReader(t *testing.T) {
	mem := dag.NewMemoryState()
	want := strings.Repeat("0123456789", 10000)
	require.NoError(t, mem.Put("big", []byte(want)))

	r, err := dag.NewValueReader(mem, "big")
	require.NoError(t, err)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, want, string(got))

	rs := &rangeState{MemoryState: mem}
	r, err = dag.NewValueReader(rs, "big")
	require.NoError(t, err)
	got, err = io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, want, string(got))
	assert.Greater(t, rs.reads, 1, "a RangeReader State is read incrementally")

	_, err = dag.NewValueReader(mem, "absent")
	assert.ErrorIs(t, err, dag.ErrNotFound)
}

func TestRetryBackoff(t *testing.T) {
	p := dag.RetryPolicy{InitialBackoff: 100, MaxBackoff: 1000, Multiplier: 3, Jitter: -1}
	assert.EqualValues(t, 100, p.Backoff(1, 0.9))
	assert.EqualValues(t, 300, p.Backoff(2, 0.1))
	assert.EqualValues(t, 900, p.Backoff(3, 0.5))
	assert.EqualValues(t, 1000, p.Backoff(4, 0.5))
	assert.EqualValues(t, 1000, p.Backoff(400, 0.5), "large attempt counts stay capped")

	j := dag.RetryPolicy{InitialBackoff: 1000, Jitter: 0.5}
	assert.EqualValues(t, 500, j.Backoff(1, 0))
	assert.EqualValues(t, 1000, j.Backoff(1, 0.5))
	assert.EqualValues(t, 1499, j.Backoff(1, 0.999))

	assert.Nil(t, dag.Permanent(nil))
	err := dag.Permanent(io.ErrUnexpectedEOF)
	assert.True(t, dag.IsPermanent(fmt.Errorf("wrapped: %w", err)))
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.False(t, dag.IsPermanent(io.ErrUnexpectedEOF))
}

func TestNewValueWriterBuffered(t *testing.T) {
	s := dag.NewMemoryState()
	require.NoError(t, s.Put("k", []byte("old")))

	w, err := dag.NewValueWriter(s, "k")
	require.NoError(t, err)
	_, err = io.WriteString(w, "new ")
	require.NoError(t, err)
	_, err = io.WriteString(w, "value")
	require.NoError(t, err)
	v, err := s.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "old", string(v), "the key keeps its value until Commit")
	require.NoError(t, w.Commit())
	v, err = s.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "new value", string(v))
	_, err = w.Write([]byte("x"))
	require.ErrorIs(t, err, dag.ErrValueEnded)
	require.ErrorIs(t, w.Commit(), dag.ErrValueEnded)

	w, err = dag.NewValueWriter(s, "k")
	require.NoError(t, err)
	_, _ = io.WriteString(w, "discarded")
	w.Abort()
	w.Abort()
	require.ErrorIs(t, w.Commit(), dag.ErrValueEnded)
	v, err = s.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "new value", string(v), "Abort keeps the earlier value")

	w, err = dag.NewValueWriter(s, "fresh")
	require.NoError(t, err)
	require.NoError(t, w.Commit())
	n, ok := s.SizeOf("fresh")
	assert.True(t, ok, "an empty value is a value")
	assert.Zero(t, n)
}

// creatorState is a State with its own ValueWriter.
type creatorState struct {
	*dag.MemoryState
	created []string
}

func (c *creatorState) CreateValue(key string) (dag.ValueWriter, error) {
	c.created = append(c.created, key)
	return dag.NewValueWriter(c.MemoryState, key)
}

func TestNewValueWriterUsesTheStates(t *testing.T) {
	s := &creatorState{MemoryState: dag.NewMemoryState()}
	w, err := dag.NewValueWriter(s, "k")
	require.NoError(t, err)
	_, _ = io.WriteString(w, "v")
	require.NoError(t, w.Commit())
	assert.Equal(t, []string{"k"}, s.created)
	v, err := s.Get("k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
}
