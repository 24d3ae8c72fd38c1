package remote_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/remote"
)

// TestCoordinatorChild is the coordinator process of TestCoordinatorKilled;
// it does nothing unless started by it. It runs the resume graph durably
// and writes the final State to final.json.
func TestCoordinatorChild(t *testing.T) {
	dir := os.Getenv("CEMAF_COORD_DIR")
	if dir == "" {
		t.Skip("child of TestCoordinatorKilled")
	}
	nc, err := remote.Connect(context.Background(), os.Getenv("CEMAF_REMOTE_URL"), remote.ConnectOptions{})
	require.NoError(t, err)
	defer nc.Close()
	store, err := executor.OpenCheckpoints(filepath.Join(dir, "ckpt.db"), executor.CheckpointOptions{})
	require.NoError(t, err)
	defer store.Close()
	c, err := remote.NewCoordinator(context.Background(), nc, remote.CoordinatorOptions{Layout: testLayout(), PollInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	defer c.Close()
	nodes, specs := resumeNodes(nil)
	s := dag.NewMemoryState()
	_, err = mustExec(t, executor.Options{Checkpoints: store, Gate: c}).RunWith(context.Background(),
		remoteGraph(t, c, nodes, specs), s, executor.RunOptions{ID: "killed-coordinator"})
	require.NoError(t, err)
	b, err := json.Marshal(stateMap(t, s))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "final.json"), b, 0o600))
}

// TestCoordinatorKilled: the coordinator process is SIGKILLed while its two
// remote nodes run on a worker; the worker finishes them meanwhile; the
// coordinator restarted with the same run ID resumes from its checkpoint
// and takes their results: each remote node ran once, and the State equals
// a local run's.
func TestCoordinatorKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns 2 processes; skipped with -short")
	}
	h := startHub(t, hubOpts())
	dir := t.TempDir()
	var mu sync.Mutex
	runs := map[string]int{}
	started := make(chan string, 4)
	release := make(chan struct{})
	nodes, specs := resumeNodes(nil)
	reg := remote.NewRegistry()
	for _, n := range nodes[1:3] {
		work := n.Run
		n.Run = func(ctx context.Context, s dag.State) error {
			mu.Lock()
			runs[n.ID]++
			mu.Unlock()
			started <- n.ID
			<-release
			return work(ctx, s)
		}
		require.NoError(t, reg.RegisterNode(n, specs[n.ID]))
	}
	w := newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{Slots: 2})
	runWorker(t, w)
	<-w.Ready()

	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCoordinatorChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CEMAF_COORD_DIR="+dir, "CEMAF_REMOTE_URL="+h.ClientURL())
		cmd.Stderr = os.Stderr
		return cmd
	}
	first := child()
	require.NoError(t, first.Start())
	<-started
	<-started // both remote nodes run on the worker
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	var ee *exec.ExitError
	require.ErrorAs(t, first.Wait(), &ee)

	// The worker finishes both with no coordinator there.
	js, err := jetstream.New(connect(t, h.ClientURL()))
	require.NoError(t, err)
	kv, err := js.KeyValue(context.Background(), "CEMAF_RESULTS")
	require.NoError(t, err)
	watch, err := kv.Watch(context.Background(), "ok.>")
	require.NoError(t, err)
	defer watch.Stop()
	close(release)
	bound := time.NewTimer(30 * time.Second) // a bound, not a wait
	defer bound.Stop()
	for seen := 0; seen < 2; {
		select {
		case e := <-watch.Updates():
			if e != nil {
				seen++
			}
		case <-bound.C:
			t.Fatal("the worker did not record both results")
		}
	}

	second := child()
	second.Stderr = nil
	out, err := second.CombinedOutput()
	require.NoError(t, err, "%s", out)
	raw, err := os.ReadFile(filepath.Join(dir, "final.json"))
	require.NoError(t, err)
	var got map[string]string
	require.NoError(t, json.Unmarshal(raw, &got))
	mu.Lock()
	require.Equal(t, map[string]int{"b": 1, "c": 1}, runs, "a remote node ran again after the resume")
	mu.Unlock()

	want := dag.NewMemoryState()
	lg, _ := dag.New(nodes...)
	_, err = mustExec(t, executor.Options{}).Run(context.Background(), lg, want)
	require.NoError(t, err)
	require.Equal(t, stateMap(t, want), got)
}
