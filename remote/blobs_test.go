package remote

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/remote/hub"
)

// testResources opens the fleet's stream and buckets on a hub of its own.
func testResources(t *testing.T) *resources {
	t.Helper()
	h, err := hub.Start(hub.Options{StoreDir: t.TempDir(), Port: hub.RandomPort})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	nc, err := nats.Connect(h.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	lay, err := Layout{}.withDefaults()
	require.NoError(t, err)
	r, err := openResources(context.Background(), nc, lay)
	require.NoError(t, err)
	return r
}

// bytesOf is n bytes that differ at every offset of a part.
func bytesOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>16)
	}
	return b
}

// A value is stored in objects of at most blobPartBytes, as many as its
// size says (none empty), and reads back the same, whole or in parts.
func TestBlobParts(t *testing.T) {
	r := testResources(t)
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		size  int
		parts int
	}{
		{"empty", 0, 1},
		{"small", 1000, 1},
		{"one part exactly", blobPartBytes, 1},
		{"a byte more", blobPartBytes + 1, 2},
		{"two parts exactly", 2 * blobPartBytes, 2},
		{"two and a half", 2*blobPartBytes + blobPartBytes/2, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := bytesOf(c.size)
			s := dag.NewMemoryState()
			require.NoError(t, s.Put("k", v))
			name := "in/" + t.Name()
			size, names, err := r.putBlob(ctx, name, s, "k")
			require.NoError(t, err)
			assert.Equal(t, int64(c.size), size)
			require.Len(t, names, c.parts)
			assert.Equal(t, c.parts, blobParts(size))
			assert.Equal(t, name, names[0])
			for i, n := range names {
				info, err := r.blobs.GetInfo(ctx, n)
				require.NoError(t, err, n)
				assert.LessOrEqual(t, info.Size, uint64(blobPartBytes), n)
				assert.Equal(t, partName(name, i), n)
			}

			got, err := r.getBlob(ctx, name, size, 1<<30)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(v, got), "whole: %d bytes back of %d", len(got), len(v))
			dst := &gathering{MemoryState: dag.NewMemoryState()}
			require.NoError(t, r.copyBlob(ctx, dst, "k", name, size, 1<<30))
			got, err = dst.Get("k")
			require.NoError(t, err)
			assert.True(t, bytes.Equal(v, got), "in parts: %d bytes back of %d", len(got), len(v))
			assert.Equal(t, c.size > 0, dst.writes > 0)

			r.deleteBlobs(names)
			for _, n := range names {
				_, err := r.blobs.GetInfo(ctx, n)
				assert.ErrorIs(t, err, jetstream.ErrObjectNotFound, n)
			}
		})
	}
}

// A blob whose parts do not add up to the size its task claims (a part
// missing, short or too long) fails the read with an error that names the
// part; a size over the limit is refused before anything is read.
func TestBlobPartsThatDoNotAddUp(t *testing.T) {
	r := testResources(t)
	ctx := context.Background()
	s := dag.NewMemoryState()
	require.NoError(t, s.Put("k", bytesOf(blobPartBytes+100)))
	size, names, err := r.putBlob(ctx, "in/x", s, "k")
	require.NoError(t, err)
	require.Len(t, names, 2)

	_, err = r.getBlob(ctx, "in/x", size+1, 1<<30)
	assert.ErrorContains(t, err, `"part/1/in/x"`, "the last part is a byte short")
	_, err = r.getBlob(ctx, "in/x", size-1, 1<<30)
	assert.ErrorContains(t, err, `"part/1/in/x"`, "the last part is a byte too long")
	_, err = r.getBlob(ctx, "in/x", 3*blobPartBytes, 1<<30)
	assert.ErrorContains(t, err, `"part/1/in/x"`, "part 1 is short")
	_, err = r.getBlob(ctx, "in/x", 100, 1<<30)
	assert.ErrorContains(t, err, `"in/x"`, "part 0 is too long")
	_, err = r.getBlob(ctx, "in/x", size, size-1)
	assert.ErrorContains(t, err, "MaxValueBytes")

	require.NoError(t, r.blobs.Delete(ctx, "part/1/in/x"))
	_, err = r.getBlob(ctx, "in/x", size, 1<<30)
	assert.ErrorContains(t, err, `"part/1/in/x"`)
	assert.ErrorIs(t, err, jetstream.ErrObjectNotFound)
}

// gathering is a State that takes values in parts and counts the writes.
type gathering struct {
	*dag.MemoryState
	writes int
}

func (g *gathering) CreateValue(key string) (dag.ValueWriter, error) {
	w, err := dag.NewValueWriter(g.MemoryState, key)
	if err != nil {
		return nil, err
	}
	return &countingWriter{ValueWriter: w, g: g}, nil
}

type countingWriter struct {
	dag.ValueWriter
	g *gathering
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.g.writes++
	return w.ValueWriter.Write(p)
}

var _ io.Writer = (*countingWriter)(nil)
