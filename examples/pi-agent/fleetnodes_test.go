package main

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cemaf-go/cemaf/dag"
)

type packEntry struct {
	key   string
	value []byte
}

// encodePack is a pack of entries, written by packWriter.
func encodePack(t testing.TB, shard, shards int, entries []packEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	p, err := newPackWriter(&b, shard, shards, len(entries))
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, p.add(e.key, e.value))
	}
	require.NoError(t, p.flush())
	return b.Bytes()
}

// decodePack reads a pack whole, copying its values.
func decodePack(b []byte) (shard, shards int, entries []packEntry, err error) {
	shard, shards, err = readPack(bytes.NewReader(b), 1<<20, nil, func(key string, value []byte) error {
		entries = append(entries, packEntry{key, bytes.Clone(value)})
		return nil
	})
	return shard, shards, entries, err
}

func TestPackRoundTripAndCorruption(t *testing.T) {
	b := encodePack(t, 2, 4, []packEntry{{"chunks", []byte(`{"chunks":3}`)}, {"chunk/2", []byte("text")}, {"empty", nil}})
	shard, shards, got, err := decodePack(b)
	require.NoError(t, err)
	assert.Equal(t, 2, shard)
	assert.Equal(t, 4, shards)
	require.Len(t, got, 3)
	assert.Equal(t, "chunk/2", got[1].key)
	assert.Equal(t, "text", string(got[1].value))
	assert.Empty(t, got[2].value)

	// Every truncation and a trailing byte are refused, never a panic.
	for i := range len(b) {
		_, _, _, err := decodePack(b[:i])
		assert.ErrorIs(t, err, errBadPack, "truncated to %d bytes", i)
	}
	_, _, _, err = decodePack(append(b, 0))
	assert.ErrorIs(t, err, errBadPack)
	// A count or a length far beyond the bytes, or over the bound, and too
	// many shards.
	for _, bad := range []string{
		packMagic + "\x00\x01\xff\xff\xff\xff\x0f",
		packMagic + "\x00\x01\x01\x01k\xff\xff\x3f", // a value of 1 MiB - 1 claimed: only its bytes count
		packMagic + "\x00\x01\x01\x01k\x81\x80\x40", // a value over the 1 MiB bound
		packMagic + "\x00\x41\x00",                  // 65 shards
		packMagic + "\x00\x01\x80\x80\x80\x80\x08",  // 2^31 entries: a negative int on a 32-bit board
	} {
		_, _, _, err = decodePack([]byte(bad))
		assert.ErrorIs(t, err, errBadPack, "%q", bad)
	}

	// A writer that adds more or fewer entries than its count fails.
	p, err := newPackWriter(io.Discard, 0, 1, 1)
	require.NoError(t, err)
	require.Error(t, p.flush(), "one entry short")
	require.NoError(t, p.add("k", nil))
	require.Error(t, p.add("k2", nil), "one entry over")
}

// A pack for another shard is refused by its header, before any of its
// entries is applied.
func TestPackHeadBeforeEntries(t *testing.T) {
	b := encodePack(t, 1, 2, []packEntry{{"postings/1", []byte("x")}})
	wrong := errors.New("another shard")
	var seen []string
	_, _, err := readPack(bytes.NewReader(b), 1<<20, func(shard, shards int) error {
		assert.Equal(t, []int{1, 2}, []int{shard, shards})
		return wrong
	}, func(key string, _ []byte) error {
		seen = append(seen, key)
		return nil
	})
	require.ErrorIs(t, err, wrong)
	assert.Empty(t, seen)

	// Through the device's view: a worker's pack for shard 1 of 2 leaves
	// the State of shard 0 untouched.
	s := dag.NewMemoryState()
	v := &shardView{State: s, node: "index-0", out: fleetOutKey("index-0"), shard: 0, shards: 2, maxValue: 1 << 20}
	err = v.Put(v.out, b)
	require.ErrorIs(t, err, errBadPack)
	assert.True(t, dag.IsPermanent(err))
	assert.Empty(t, s.Keys())
}

// A worker's pack writes the keys of its shard's index and no other: a
// pack that holds the corpus's, another shard's or the answer's key fails
// permanently, naming the key, and that key's value is left as it was.
func TestShardViewOutputOnlyItsShard(t *testing.T) {
	for _, key := range []string{keyChunks, chunkBlockKey(0, 0), statsKey(0), postingKey(0, "valve"), keyAnswer, "postings/1/", "postings/10/x", "index/1/stats/x"} {
		t.Run(key, func(t *testing.T) {
			s, _ := shardState(t)
			before, _ := s.Get(key)
			v, err := newShardView(s, "index-1", 1, 2, 1<<20)
			require.NoError(t, err)
			err = v.Put(v.out, encodePack(t, 1, 2, []packEntry{{postingKey(1, "dawn"), []byte{1}}, {key, []byte("forged")}}))
			require.ErrorIs(t, err, errBadPack)
			assert.True(t, dag.IsPermanent(err))
			assert.Contains(t, err.Error(), strconv.Quote(key))
			assert.Contains(t, err.Error(), "index-1")
			assert.False(t, v.received())
			after, _ := s.Get(key)
			assert.Equal(t, before, after, "the forged value is not stored")
		})
	}
}

// A pack that claims a huge value allocates for the bytes it has, not for
// the length it claims.
func TestPackClaimedLengthAllocatesNothing(t *testing.T) {
	claim := append([]byte(packMagic+"\x00\x01\x01\x01k"), 0x80, 0x80, 0x80, 0x80, 0x02) // 512 MiB
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := readPack(bytes.NewReader(append(claim, "short"...)), 1<<30, nil, func(string, []byte) error { return nil })
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, errBadPack)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20))
}

func FuzzReadPack(f *testing.F) {
	f.Add(encodePack(f, 1, 2, []packEntry{{"k", []byte("v")}}))
	f.Add([]byte(packMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		shard, shards, entries, err := decodePack(b)
		if err != nil {
			return
		}
		// What decodes encodes to a value that decodes the same (varints
		// may have been written longer than needed).
		s2, n2, again, err := decodePack(encodePack(t, shard, shards, entries))
		require.NoError(t, err)
		assert.Equal(t, []int{shard, shards}, []int{s2, n2})
		assert.Equal(t, entries, again)
	})
}

// shardState is a State with the chunks of 2 shards, 3 chunk blocks in
// shard 1.
func shardState(t *testing.T) (dag.State, []packEntry) {
	t.Helper()
	s := dag.NewMemoryState()
	require.NoError(t, dag.PutJSON(s, keyChunks, chunkStats{Chunks: 10, Size: 100, Shards: 2, PerBlock: 2}))
	stats, err := s.Get(keyChunks)
	require.NoError(t, err)
	want := []packEntry{{keyChunks, stats}}
	for b := range 3 {
		v := bytes.Repeat([]byte("block"+strconv.Itoa(b)), 50+b)
		require.NoError(t, s.Put(chunkBlockKey(1, b), v))
		want = append(want, packEntry{chunkBlockKey(1, b), v})
	}
	require.NoError(t, s.Put(chunkBlockKey(0, 0), []byte("shard 0: not in shard 1's pack")))
	return s, want
}

// The view's input is the pack of the shard's chunks, read at any offset
// and length as the bytes packWriter writes; it is not stored.
func TestShardViewInput(t *testing.T) {
	s, entries := shardState(t)
	v, err := newShardView(s, "index-1", 1, 2, 1<<20)
	require.NoError(t, err)
	want := encodePack(t, 1, 2, entries)
	size, ok := v.SizeOf(v.in)
	require.True(t, ok)
	require.Equal(t, int64(len(want)), size)
	whole, err := v.Get(v.in)
	require.NoError(t, err)
	require.Equal(t, want, whole)
	for off := 0; off <= len(want); off += 7 {
		for _, n := range []int{1, 13, 400, len(want)} {
			p := make([]byte, n)
			got, err := v.ReadAt(v.in, p, int64(off))
			wantN := min(n, len(want)-off)
			require.Equal(t, wantN, got, "off %d len %d", off, n)
			assert.Equal(t, want[off:off+wantN], p[:got], "off %d len %d", off, n)
			if wantN < n {
				assert.ErrorIs(t, err, io.EOF)
			} else {
				assert.NoError(t, err)
			}
		}
	}
	r, err := dag.NewValueReader(v, v.in)
	require.NoError(t, err)
	streamed, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, want, streamed)
	_, ok = s.SizeOf(v.in)
	assert.False(t, ok, "the pack is not stored")

	// A block that shrinks after the layout is an error naming it.
	require.NoError(t, s.Put(chunkBlockKey(1, 2), []byte("short")))
	_, err = v.Get(v.in)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"chunks/1/2" is shorter`)

	// A missing block is an error naming it.
	require.NoError(t, s.Delete(chunkBlockKey(1, 1)))
	_, err = newShardView(s, "index-1", 1, 2, 1<<20)
	require.ErrorIs(t, err, dag.ErrNotFound)
	assert.Contains(t, err.Error(), `"chunks/1/1"`)
}

// The worker's pack is decoded into the State as it is written in parts,
// or when it arrives whole; out is never stored. A corrupt pack, or one of
// another shard, is a permanent error; an aborted one leaves no goroutine.
func TestShardViewOutput(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	postings := []packEntry{{"index/1/stats", []byte(`{"chunks":5}`)}, {postingKey(1, "valve"), bytes.Repeat([]byte{7}, 100_000)}, {postingKey(1, "dawn"), []byte{1, 2}}}
	packed := encodePack(t, 1, 2, postings)
	for _, how := range []string{"in parts", "whole"} {
		t.Run(how, func(t *testing.T) {
			s, _ := shardState(t)
			v, err := newShardView(s, "index-1", 1, 2, 1<<20)
			require.NoError(t, err)
			if how == "whole" {
				require.NoError(t, v.Put(v.out, packed))
			} else {
				w, err := v.CreateValue(v.out)
				require.NoError(t, err)
				for b := packed; len(b) > 0; b = b[min(len(b), 1000):] {
					_, err := w.Write(b[:min(len(b), 1000)])
					require.NoError(t, err)
				}
				require.NoError(t, w.Commit())
				require.ErrorIs(t, w.Commit(), dag.ErrValueEnded)
			}
			assert.True(t, v.received())
			for _, e := range postings {
				got, err := s.Get(e.key)
				require.NoError(t, err)
				assert.Equal(t, e.value, got, e.key)
			}
			_, ok := s.SizeOf(v.out)
			assert.False(t, ok, "out is not stored")
		})
	}

	s, _ := shardState(t)
	v, err := newShardView(s, "index-1", 1, 2, 1<<20)
	require.NoError(t, err)
	for name, bad := range map[string][]byte{
		"truncated":     packed[:len(packed)-1],
		"trailing":      append(bytes.Clone(packed), 0),
		"another shard": encodePack(t, 0, 2, postings),
	} {
		w, err := v.CreateValue(v.out)
		require.NoError(t, err)
		_, _ = w.Write(bad) // may fail once the decoder has stopped
		err = w.Commit()
		require.ErrorIs(t, err, errBadPack, name)
		assert.True(t, dag.IsPermanent(err), name)
		assert.Contains(t, err.Error(), "index-1", name)
		assert.False(t, v.received(), name)
	}
	w, err := v.CreateValue(v.out)
	require.NoError(t, err)
	_, err = w.Write(packed[:10])
	require.NoError(t, err)
	w.Abort()
	w.Abort()
	require.False(t, v.received())
	// Other keys pass through.
	w, err = v.CreateValue("other")
	require.NoError(t, err)
	_, _ = w.Write([]byte("x"))
	require.NoError(t, w.Commit())
	got, err := s.Get("other")
	require.NoError(t, err)
	assert.Equal(t, "x", string(got))
	require.NoError(t, v.Delete(v.out))
	require.False(t, errors.Is(v.Delete("other"), dag.ErrNotFound))
}
