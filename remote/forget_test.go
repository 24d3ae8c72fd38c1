package remote_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/remote"
	"github.com/cemaf-go/cemaf/remote/hub"
)

// Forget deletes a run's results and the large values they point to, and
// nothing of another run; a run it forgot runs its remote node again when
// resumed under the same ID.
func TestForget(t *testing.T) {
	h := startHub(t, hub.Options{MaxPayload: 64 << 10})
	ctx := context.Background()
	var calls int
	node := dag.Node{ID: "big", Run: func(_ context.Context, s dag.State) error {
		calls++
		n := 200 << 10 // over the payload: one object
		if v, err := s.Get("x"); err == nil && string(v) == "two parts" {
			n = 16<<20 + 1000 // over an object's 16 MiB: two
		}
		return s.Put("y", bytes.Repeat([]byte{'y'}, n))
	}}
	spec := remote.Spec{Capability: "llm", Reads: []string{"x"}, Writes: []string{"y"}}
	reg := remote.NewRegistry()
	require.NoError(t, reg.RegisterNode(node, spec))
	runWorker(t, newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{}))
	nc := connect(t, h.ClientURL())
	c := newCoordinator(t, nc, remote.CoordinatorOptions{})
	rn, err := c.Node(node, spec)
	require.NoError(t, err)
	g, err := dag.New(rn)
	require.NoError(t, err)
	e := mustExec(t, executor.Options{Gate: c})
	run := func(id, x string) {
		t.Helper()
		s := dag.NewMemoryState()
		require.NoError(t, s.Put("x", []byte(x)))
		_, err := e.RunWith(ctx, g, s, executor.RunOptions{ID: id})
		require.NoError(t, err)
	}
	run("keep", "one part")
	run("forget", "two parts")
	require.Equal(t, 2, calls)

	js, err := jetstream.New(nc)
	require.NoError(t, err)
	blobs, err := js.ObjectStore(ctx, "CEMAF_BLOBS")
	require.NoError(t, err)
	results, err := js.KeyValue(ctx, "CEMAF_RESULTS")
	require.NoError(t, err)
	objects := func() int {
		l, err := blobs.List(ctx)
		if errors.Is(err, jetstream.ErrNoObjectsFound) {
			return 0
		}
		require.NoError(t, err)
		return len(l)
	}
	require.Equal(t, 3, objects(), "the outputs of both runs: one object, then two")

	st, err := c.Forget(ctx, "forget")
	require.NoError(t, err)
	assert.Equal(t, remote.ForgetStats{Records: 1, Values: 2, Bytes: 16<<20 + 1000}, st)
	assert.Equal(t, 1, objects(), "the other run's output stays")
	keys, err := results.ListKeys(ctx)
	require.NoError(t, err)
	var left []string
	for k := range keys.Keys() {
		left = append(left, k)
	}
	require.Len(t, left, 1, "the other run's result stays: %v", left)

	st, err = c.Forget(ctx, "forget")
	require.NoError(t, err)
	assert.Zero(t, st, "nothing left to forget")
	_, err = c.Forget(ctx, "")
	assert.ErrorContains(t, err, "empty run ID")

	// The forgotten run, run again under its ID, runs its node again
	// rather than finding a result whose value is gone.
	run("forget", "one part")
	assert.Equal(t, 3, calls)
	st, err = c.Forget(ctx, "keep")
	require.NoError(t, err)
	assert.Equal(t, remote.ForgetStats{Records: 1, Values: 1, Bytes: 200 << 10}, st)
	st, err = c.Forget(ctx, "forget")
	require.NoError(t, err)
	assert.Equal(t, remote.ForgetStats{Records: 1, Values: 1, Bytes: 200 << 10}, st)

	// Nothing is left behind, not even a marker: a message left in a
	// file-store block keeps the whole block on the server's disk.
	for _, name := range []string{"OBJ_CEMAF_BLOBS", "KV_CEMAF_RESULTS"} {
		str, err := js.Stream(ctx, name)
		require.NoError(t, err)
		info, err := str.Info(ctx)
		require.NoError(t, err)
		assert.Zero(t, info.State.Msgs, "messages left in %s", name)
	}
}
