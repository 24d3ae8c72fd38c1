package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPackRoundTripAndCorruption(t *testing.T) {
	p := pack{shard: 2, shards: 4, entries: []packEntry{{"chunks", []byte(`{"chunks":3}`)}, {"chunk/2", []byte("text")}, {"empty", nil}}}
	b := p.encode()
	got, err := decodePack(b)
	require.NoError(t, err)
	assert.Equal(t, 2, got.shard)
	assert.Equal(t, 4, got.shards)
	require.Len(t, got.entries, 3)
	assert.Equal(t, "chunk/2", got.entries[1].key)
	assert.Equal(t, "text", string(got.entries[1].value))
	assert.Empty(t, got.entries[2].value)

	// Every truncation and a trailing byte are refused, never a panic.
	for i := range len(b) {
		_, err := decodePack(b[:i])
		assert.ErrorIs(t, err, errBadPack, "truncated to %d bytes", i)
	}
	_, err = decodePack(append(b, 0))
	assert.ErrorIs(t, err, errBadPack)
	// A count or length far beyond the value.
	_, err = decodePack([]byte(packMagic + "\x00\x01\xff\xff\xff\xff\x0f"))
	assert.ErrorIs(t, err, errBadPack)
}

func FuzzDecodePack(f *testing.F) {
	f.Add(pack{shard: 1, shards: 2, entries: []packEntry{{"k", []byte("v")}}}.encode())
	f.Add([]byte(packMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePack(b)
		if err != nil {
			return
		}
		// What decodes encodes to a value that decodes the same (varints
		// may have been written longer than needed).
		again, err := decodePack(p.encode())
		require.NoError(t, err)
		assert.Equal(t, p, again)
	})
}
