package remote_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/remote"
	"github.com/cemaf-go/cemaf/remote/hub"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats.go v1.55.0 starts this goroutine when a JetStream context
		// first publishes asynchronously (the Object Store's Put does) and
		// reads its status channel only once it is scheduled; when the Put
		// cleans up first, the channel is already nil and the goroutine
		// waits on it forever. It is the library's, one per racing Put, and
		// holds no resource of ours.
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
	)
}

// startHub starts an embedded server on 127.0.0.1 with its store in a
// temporary directory; it is closed when the test ends.
func startHub(t testing.TB, opts hub.Options) *hub.Hub {
	t.Helper()
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	if opts.Port == 0 {
		opts.Port = hub.RandomPort
	}
	h, err := hub.Start(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := remote.Connect(context.Background(), url, remote.ConnectOptions{ReconnectWait: 20 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// testLayout is a Layout with short times, so that redeliveries and stale
// peers happen within a test.
func testLayout() remote.Layout {
	return remote.Layout{AckWait: time.Second, StaleAfter: 2 * time.Second}
}

func newCoordinator(t testing.TB, nc *nats.Conn, opts remote.CoordinatorOptions) *remote.Coordinator {
	t.Helper()
	if opts.Layout == (remote.Layout{}) {
		opts.Layout = testLayout()
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	c, err := remote.NewCoordinator(context.Background(), nc, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// runWorker runs w until the test ends (or stop is called).
func runWorker(t testing.TB, w *remote.Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	// A worker that cannot set up (a JetStream request timing out on a
	// loaded machine, say) fails the test here, with its error, instead
	// of leaving the test's runs waiting for a worker that never comes.
	select {
	case <-w.Ready():
	case err := <-done:
		done <- err // for stop
		t.Fatalf("worker did not start: %v", err)
	}
	return stop
}

func newWorker(t testing.TB, nc *nats.Conn, reg *remote.Registry, opts remote.WorkerOptions) *remote.Worker {
	t.Helper()
	if opts.Layout == (remote.Layout{}) {
		opts.Layout = testLayout()
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	w, err := remote.NewWorker(nc, reg, opts)
	require.NoError(t, err)
	return w
}

func mustExec(t testing.TB, opts executor.Options) *executor.Executor {
	t.Helper()
	e, err := executor.New(opts)
	require.NoError(t, err)
	return e
}

func stateMap(t testing.TB, s dag.State) map[string]string {
	out := map[string]string{}
	for _, k := range s.Keys() {
		v, err := s.Get(k)
		require.NoError(t, err)
		out[k] = string(v)
	}
	return out
}

// countingState counts the Puts of every key.
type countingState struct {
	*dag.MemoryState
	mu   sync.Mutex
	puts map[string]int
}

func newCountingState() *countingState {
	return &countingState{MemoryState: dag.NewMemoryState(), puts: map[string]int{}}
}

func (c *countingState) Put(k string, v []byte) error {
	c.mu.Lock()
	c.puts[k]++
	c.mu.Unlock()
	return c.MemoryState.Put(k, v)
}

func hubOpts() hub.Options { return hub.Options{} }
