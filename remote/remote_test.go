package remote_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/remote"
)

func upper(_ context.Context, s dag.State) error {
	v, err := s.Get("x")
	if err != nil {
		return err
	}
	return s.Put("y", []byte(strings.ToUpper(string(v))))
}

// threeNodes is a → b → c with b the node to run remotely.
func threeNodes() []dag.Node {
	return []dag.Node{
		{ID: "a", Run: func(_ context.Context, s dag.State) error { return s.Put("x", []byte("hello")) }},
		{ID: "b", DependsOn: []string{"a"}, Run: upper},
		{ID: "c", DependsOn: []string{"b"}, Run: func(_ context.Context, s dag.State) error {
			v, err := s.Get("y")
			if err != nil {
				return err
			}
			return s.Put("z", append(v, '!'))
		}},
	}
}

var bSpec = remote.Spec{Capability: "llm", Reads: []string{"x"}, Writes: []string{"y"}}

func TestRemoteNodeMatchesLocal(t *testing.T) {
	h := startHub(t, hubOpts())
	nc := connect(t, h.ClientURL())
	reg := remote.NewRegistry()
	nodes := threeNodes()
	require.NoError(t, reg.RegisterNode(nodes[1], bSpec))
	w := newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{Slots: 2})
	runWorker(t, w)
	c := newCoordinator(t, nc, remote.CoordinatorOptions{})

	rb, err := c.Node(nodes[1], bSpec)
	require.NoError(t, err)
	g, err := dag.New(nodes[0], rb, nodes[2])
	require.NoError(t, err)
	got := dag.NewMemoryState()
	_, err = mustExec(t, executor.Options{Gate: c}).Run(context.Background(), g, got)
	require.NoError(t, err)

	want := dag.NewMemoryState()
	lg, _ := dag.New(threeNodes()...)
	_, err = mustExec(t, executor.Options{}).Run(context.Background(), lg, want)
	require.NoError(t, err)
	require.Equal(t, stateMap(t, want), stateMap(t, got))
	require.Equal(t, uint64(1), w.Stats().Done)
}
