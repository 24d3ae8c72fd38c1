package remote_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/remote"
	"github.com/cemaf-go/cemaf/remote/hub"
)

// TestLeafNode: a device runs a leaf server with its own JetStream domain;
// its coordinator reaches the fleet's queue on the hub through it
// (Layout.Domain), and a worker connected to the hub runs the node.
func TestLeafNode(t *testing.T) {
	hubSrv := startHub(t, hub.Options{JetStreamDomain: "hub", LeafPort: freePort(t), ServerName: "hub"})
	leaf := startHub(t, hub.Options{JetStreamDomain: "leaf1", Leaf: []string{hubSrv.LeafURL()}, ServerName: "leaf1"})

	lay := testLayout()
	lay.Domain = "hub"
	reg := remote.NewRegistry()
	nodes := threeNodes()
	require.NoError(t, reg.RegisterNode(nodes[1], bSpec))
	w := newWorker(t, connect(t, hubSrv.ClientURL()), reg, remote.WorkerOptions{Layout: lay})
	runWorker(t, w)
	<-w.Ready()

	lnc := connect(t, leaf.ClientURL())
	// Wait until the leaf is linked to the hub: a request through it to
	// the hub's JetStream answers.
	for i := 0; ; i++ {
		require.Less(t, i, 100000, "the leaf never linked to the hub")
		_, err := lnc.Request("$JS.hub.API.INFO", nil, time.Second)
		if err == nil {
			break
		}
		require.ErrorIs(t, err, nats.ErrNoResponders)
		require.NoError(t, lnc.FlushTimeout(time.Second))
	}
	c := newCoordinator(t, lnc, remote.CoordinatorOptions{Layout: lay})
	rb, err := c.Node(nodes[1], bSpec)
	require.NoError(t, err)
	g, err := dag.New(nodes[0], rb, nodes[2])
	require.NoError(t, err)
	s := dag.NewMemoryState()
	_, err = mustExec(t, executor.Options{Gate: c}).Run(context.Background(), g, s)
	require.NoError(t, err)
	v, err := s.Get("z")
	require.NoError(t, err)
	require.Equal(t, "HELLO!", string(v))
}
