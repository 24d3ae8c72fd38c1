package remote_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/remote"
)

// TestBacklog: the tasks of a capability nobody serves stay in the stream
// and count in its backlog, not in another capability's; withdrawn, they
// leave it.
func TestBacklog(t *testing.T) {
	h := startHub(t, hubOpts())
	waiting := make(chan string, 4)
	c := newCoordinator(t, connect(t, h.ClientURL()), remote.CoordinatorOptions{
		OnWaiting: func(_ context.Context, node, _ string) { waiting <- node },
	})
	ctx := context.Background()
	n, err := c.Backlog(ctx, "slow")
	require.NoError(t, err)
	require.Zero(t, n)

	var nodes []dag.Node
	for _, id := range []string{"a", "b"} {
		rn, err := c.Node(dag.Node{ID: id, Priority: len(nodes)}, remote.Spec{Capability: "slow"})
		require.NoError(t, err)
		nodes = append(nodes, rn)
	}
	g, err := dag.New(nodes...)
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := mustExec(t, executor.Options{Gate: c}).Run(runCtx, g, dag.NewMemoryState())
		done <- err
	}()
	<-waiting
	<-waiting // both published (one per band)
	n, err = c.Backlog(ctx, "slow")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	n, err = c.Backlog(ctx, "fast")
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = c.Backlog(ctx, "no spaces")
	require.ErrorContains(t, err, `capability = "no spaces"`)

	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	n, err = c.Backlog(ctx, "slow")
	require.NoError(t, err)
	require.Zero(t, n, "withdrawn tasks leave the stream")
}
