package remote_test

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/remote"
)

// startExternalServer runs the nats-server binary on 127.0.0.1, a random
// port and a temporary store, and returns its client URL. It skips the test
// when the binary is not on PATH.
func startExternalServer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Skip("nats-server is not on PATH (Debian: apt-get install nats-server); the embedded server covers the rest")
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", filepath.Join(dir, "js"))
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// The log on stderr names the client address, then says "Server is
	// ready".
	sc := bufio.NewScanner(stderr)
	addr := ""
	for sc.Scan() {
		line := sc.Text()
		if _, after, ok := strings.Cut(line, "Listening for client connections on "); ok {
			addr = strings.TrimSpace(after)
		}
		if strings.Contains(line, "Server is ready") {
			break
		}
	}
	require.NotEmpty(t, addr, "nats-server did not say where it listens")
	go func() { // keep the pipe drained
		for sc.Scan() {
		}
	}()
	return "nats://" + addr
}

// TestExternalServer runs the remote tests' core path (a remote node, a
// 200-node half-remote graph, a worker pause) against a separate
// nats-server process.
func TestExternalServer(t *testing.T) {
	url := startExternalServer(t)
	nc := connect(t, url)
	c := newCoordinator(t, nc, remote.CoordinatorOptions{})

	nodes, specs := crashNodes(200, false)
	reg := remote.NewRegistry()
	mixed := make([]dag.Node, len(nodes))
	for i := range nodes {
		mixed[i] = nodes[i]
		if i%2 == 0 {
			require.NoError(t, reg.RegisterNode(nodes[i], specs[i]))
			var err error
			mixed[i], err = c.Node(nodes[i], specs[i])
			require.NoError(t, err)
		}
	}
	for i := range 2 {
		w := newWorker(t, connect(t, url), reg, remote.WorkerOptions{ID: "ext" + strconv.Itoa(i), Slots: 4})
		runWorker(t, w)
		<-w.Ready()
	}
	g, err := dag.New(mixed...)
	require.NoError(t, err)
	got := newCountingState()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = mustExec(t, executor.Options{Gate: c, Limits: executor.Limits{CPU: 16, IO: 16}}).Run(ctx, g, got)
	require.NoError(t, err)

	lg, _ := dag.New(nodes...)
	want := dag.NewMemoryState()
	_, err = mustExec(t, executor.Options{}).Run(context.Background(), lg, want)
	require.NoError(t, err)
	require.Equal(t, stateMap(t, want), stateMap(t, got.MemoryState))
	for _, n := range nodes {
		require.Equal(t, 1, got.puts[n.ID], n.ID)
	}
	capa := c.Fleet().Capacity("hash", time.Now())
	require.Equal(t, 2, capa.Workers)
}
