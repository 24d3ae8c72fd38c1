package executor

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewRunIDKeepsTheSecondNotTheRandomBits(t *testing.T) {
	e, err := New(Options{})
	require.NoError(t, err)
	berlin := time.FixedZone("CET", 3600)
	t0 := time.Date(2026, 11, 22, 15, 25, 30, 100, berlin)
	a := e.newRunID(t0)
	b := e.newRunID(t0.Add(900 * time.Millisecond))
	assert.Regexp(t, `^20261122T142530Z-[0-9a-f]{8}$`, a)
	assert.Equal(t, a[:len("20261122T142530Z-")], b[:len("20261122T142530Z-")])
	assert.NotEqual(t, a, b, "the random bits are drawn for every run")
	c := e.newRunID(t0.Add(time.Second))
	assert.Regexp(t, `^20261122T142531Z-[0-9a-f]{8}$`, c)
	// A clock stepped back gives that second again, not the cached one.
	assert.Regexp(t, `^20261122T142529Z-[0-9a-f]{8}$`, e.newRunID(t0.Add(-time.Second)))
	assert.Regexp(t, `^20261122T142530Z-[0-9a-f]{8}$`, NewRunID(t0))
}

func TestNewRunIDBatchesStayDistinct(t *testing.T) {
	e, err := New(Options{})
	require.NoError(t, err)
	t0 := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for k := range 3*idBatch + 1 {
		id := e.newRunID(t0.Add(time.Duration(k) * time.Millisecond))
		require.Regexp(t, `^20261203T160000Z-[0-9a-f]{8}$`, id)
		require.False(t, seen[id], "ID %d repeats %s", k, id)
		seen[id] = true
	}
	// A new second starts a new batch, even when the last one has IDs left.
	assert.Regexp(t, `^20261203T160001Z-[0-9a-f]{8}$`, e.newRunID(t0.Add(time.Second)))
}
