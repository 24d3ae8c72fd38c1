package remote_test

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/remote"
	"github.com/cemaf-go/cemaf/remote/hub"
)

// resumeNodes is a → {b, c} → d with b and c remote.
func resumeNodes(count func(string)) ([]dag.Node, map[string]remote.Spec) {
	work := func(id, in, out string) dag.Func {
		return func(_ context.Context, s dag.State) error {
			if count != nil {
				count(id)
			}
			v, err := s.Get(in)
			if err != nil {
				return err
			}
			return s.Put(out, []byte(strings.ToUpper(string(v))+"-"+id))
		}
	}
	nodes := []dag.Node{
		{ID: "a", Run: func(_ context.Context, s dag.State) error { return s.Put("x", []byte("seed")) }},
		{ID: "b", DependsOn: []string{"a"}, Run: work("b", "x", "y")},
		{ID: "c", DependsOn: []string{"a"}, Run: work("c", "x", "z")},
		{ID: "d", DependsOn: []string{"b", "c"}, Run: func(_ context.Context, s dag.State) error {
			y, _ := s.Get("y")
			z, _ := s.Get("z")
			return s.Put("out", append(append([]byte{}, y...), z...))
		}},
	}
	specs := map[string]remote.Spec{
		"b": {Capability: "llm", Reads: []string{"x"}, Writes: []string{"y"}},
		"c": {Capability: "llm", Reads: []string{"x"}, Writes: []string{"z"}},
	}
	return nodes, specs
}

func remoteGraph(t *testing.T, c *remote.Coordinator, nodes []dag.Node, specs map[string]remote.Spec) *dag.Graph {
	t.Helper()
	out := make([]dag.Node, len(nodes))
	for i, n := range nodes {
		out[i] = n
		if sp, ok := specs[n.ID]; ok {
			var err error
			out[i], err = c.Node(n, sp)
			require.NoError(t, err)
		}
	}
	g, err := dag.New(out...)
	require.NoError(t, err)
	return g
}

// TestCoordinatorResumeUsesFinishedResults: the coordinator goes away
// (closed) with two remote tasks queued; a worker finishes them meanwhile;
// the run resumed from its checkpoint by a new coordinator takes their
// results instead of running the nodes again.
func TestCoordinatorResumeUsesFinishedResults(t *testing.T) {
	h := startHub(t, hubOpts())
	store, err := executor.OpenCheckpoints(filepath.Join(t.TempDir(), "ckpt.db"), executor.CheckpointOptions{})
	require.NoError(t, err)
	defer store.Close()

	var mu sync.Mutex
	runs := map[string]int{}
	nodes, specs := resumeNodes(func(id string) { mu.Lock(); runs[id]++; mu.Unlock() })

	queued := make(chan struct{}, 2)
	c1 := newCoordinator(t, connect(t, h.ClientURL()), remote.CoordinatorOptions{
		OnWaiting: func(context.Context, string, string) { queued <- struct{}{} }})
	s1 := dag.NewMemoryState()
	done := make(chan error, 1)
	go func() {
		_, err := mustExec(t, executor.Options{Checkpoints: store}).RunWith(context.Background(),
			remoteGraph(t, c1, nodes, specs), s1, executor.RunOptions{ID: "resume-me"})
		done <- err
	}()
	<-queued
	<-queued
	require.NoError(t, c1.Close()) // the coordinator dies with b and c queued
	require.ErrorIs(t, <-done, remote.ErrClosed)

	// A worker finishes both while no coordinator is there.
	nc := connect(t, h.ClientURL())
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := js.KeyValue(context.Background(), "CEMAF_RESULTS")
	require.NoError(t, err)
	watch, err := kv.Watch(context.Background(), "ok.>", jetstream.UpdatesOnly())
	require.NoError(t, err)
	defer watch.Stop()
	reg := remote.NewRegistry()
	for _, n := range nodes[1:3] {
		require.NoError(t, reg.RegisterNode(n, specs[n.ID]))
	}
	w := newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{})
	runWorker(t, w)
	bound := time.NewTimer(30 * time.Second) // a bound, not a wait: results come in milliseconds
	defer bound.Stop()
	for seen := 0; seen < 2; {
		select {
		case e := <-watch.Updates():
			if e != nil {
				seen++
			}
		case <-bound.C:
			t.Fatalf("the worker recorded %d of 2 results (stats %+v)", seen, w.Stats())
		}
	}

	// Resume with a fresh State (the process restarted): a is restored
	// from the checkpoint, b and c come from the results bucket.
	c2 := newCoordinator(t, connect(t, h.ClientURL()), remote.CoordinatorOptions{})
	s2 := dag.NewMemoryState()
	res, err := mustExec(t, executor.Options{Checkpoints: store}).RunWith(context.Background(),
		remoteGraph(t, c2, nodes, specs), s2, executor.RunOptions{ID: "resume-me"})
	require.NoError(t, err)
	require.True(t, res.Nodes[0].Restored)
	mu.Lock()
	require.Equal(t, map[string]int{"b": 1, "c": 1}, runs)
	mu.Unlock()

	want := dag.NewMemoryState()
	lg, _ := dag.New(nodes...)
	_, err = mustExec(t, executor.Options{}).Run(context.Background(), lg, want)
	require.NoError(t, err)
	require.Equal(t, stateMap(t, want), stateMap(t, s2))
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestConnectionLossPausesRun: the server goes away while a remote node
// runs; the coordinator's gate reports the disconnection and blocks; the
// server comes back (same store) and the run finishes with the right
// State.
func TestConnectionLossPausesRun(t *testing.T) {
	port, dir := freePort(t), t.TempDir()
	h1, err := hub.Start(hub.Options{Port: port, StoreDir: dir})
	require.NoError(t, err)
	url := h1.ClientURL()

	started := make(chan struct{}, 4)
	release := make(chan struct{})
	nodes, specs := resumeNodes(nil)
	blockB := nodes[1].Run
	nodes[1].Run = func(ctx context.Context, s dag.State) error {
		started <- struct{}{}
		<-release
		return blockB(ctx, s)
	}
	reg := remote.NewRegistry()
	for _, n := range nodes[1:3] {
		require.NoError(t, reg.RegisterNode(n, specs[n.ID]))
	}
	w := newWorker(t, connect(t, url), reg, remote.WorkerOptions{})
	stopWorker := runWorker(t, w)
	cnc := connect(t, url)
	c := newCoordinator(t, cnc, remote.CoordinatorOptions{})
	s := dag.NewMemoryState()
	done := make(chan error, 1)
	go func() {
		_, err := mustExec(t, executor.Options{Gate: c}).Run(context.Background(), remoteGraph(t, c, nodes, specs), s)
		done <- err
	}()
	<-started
	down := cnc.StatusChanged(nats.RECONNECTING)
	require.NoError(t, h1.Close())
	<-down
	cnc.RemoveStatusListener(down)
	require.ErrorIs(t, c.Check(), remote.ErrDisconnected)
	waited := make(chan error, 1)
	go func() { waited <- c.Wait(context.Background()) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned %v while disconnected", err)
	default:
	}
	close(release)

	h2, err := hub.Start(hub.Options{Port: port, StoreDir: dir})
	require.NoError(t, err)
	defer h2.Close()
	require.NoError(t, <-waited)
	require.NoError(t, <-done)
	out, err := s.Get("out")
	require.NoError(t, err)
	require.Equal(t, "SEED-bSEED-c", string(out))
	stopWorker()
	require.NoError(t, c.Close())
}

func TestFleetDropsStalePeers(t *testing.T) {
	h := startHub(t, hubOpts())
	nc := connect(t, h.ClientURL())
	lay := testLayout()
	now := time.Now()
	clock := func() time.Time { return now }
	f, err := remote.WatchFleet(context.Background(), nc, remote.FleetOptions{Layout: lay, Now: clock}) // creates the bucket
	require.NoError(t, err)
	require.NoError(t, f.Close())

	// A heartbeat from a worker that is then killed (it never deletes it).
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := js.KeyValue(context.Background(), "CEMAF_FLEET")
	require.NoError(t, err)
	b, _ := json.Marshal(remote.Peer{ID: "ghost", Capabilities: []string{"llm"}, Slots: 4, Free: 4, Sent: now})
	watch, err := kv.Watch(context.Background(), "w.>", jetstream.UpdatesOnly())
	require.NoError(t, err)
	defer watch.Stop()
	_, err = kv.Put(context.Background(), "w.Z2hvc3Q", b)
	require.NoError(t, err)
	<-watch.Updates()

	// A view loaded after the put has it.
	f2, err := remote.WatchFleet(context.Background(), nc, remote.FleetOptions{Layout: lay, Now: clock})
	require.NoError(t, err)
	defer f2.Close()
	require.Equal(t, remote.Capacity{Capability: "llm", Workers: 1, Ready: 1, FreeSlots: 4}, f2.Capacity("llm", now))
	require.Len(t, f2.Peers(now.Add(lay.StaleAfter)), 1)
	later := now.Add(lay.StaleAfter + time.Millisecond)
	require.Empty(t, f2.Peers(later))
	require.Contains(t, f2.Capacity("llm", later).Reason, `no live worker serves capability "llm"`)
	n, err := f2.Prune(context.Background(), later)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = kv.Get(context.Background(), "w.Z2hvc3Q")
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound)
}
