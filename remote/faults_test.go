package remote_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/remote"
	"github.com/cemaf-go/cemaf/remote/hub"
)

// oneRemote runs a graph of one remote node fn (capability "llm", reading
// "x" = in, writing "y") with a worker serving it, and returns the result,
// State and error.
func oneRemote(t *testing.T, h *hub.Hub, node dag.Node, copts remote.CoordinatorOptions, wopts remote.WorkerOptions, in []byte) (*executor.Result, dag.State, error) {
	t.Helper()
	spec := remote.Spec{Capability: "llm", Reads: []string{"x"}, Writes: []string{"y"}}
	reg := remote.NewRegistry()
	require.NoError(t, reg.RegisterNode(node, spec))
	w := newWorker(t, connect(t, h.ClientURL()), reg, wopts)
	stop := runWorker(t, w)
	defer stop()
	c := newCoordinator(t, connect(t, h.ClientURL()), copts)
	defer c.Close()
	rn, err := c.Node(node, spec)
	require.NoError(t, err)
	g, err := dag.New(rn)
	require.NoError(t, err)
	s := dag.NewMemoryState()
	if in != nil {
		require.NoError(t, s.Put("x", in))
	}
	res, err := mustExec(t, executor.Options{Gate: c}).Run(context.Background(), g, s)
	return res, s, err
}

func TestLargeValuesGoThroughTheObjectStore(t *testing.T) {
	h := startHub(t, hub.Options{MaxPayload: 64 << 10})
	in := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16) // 200 KiB > 64 KiB
	double := dag.Node{ID: "double", Run: func(_ context.Context, s dag.State) error {
		v, err := s.Get("x")
		if err != nil {
			return err
		}
		return s.Put("y", append(bytes.Clone(v), v...))
	}}
	_, s, err := oneRemote(t, h, double, remote.CoordinatorOptions{}, remote.WorkerOptions{}, in)
	require.NoError(t, err)
	got, err := s.Get("y")
	require.NoError(t, err)
	require.Equal(t, append(bytes.Clone(in), in...), got)

	t.Run("inline only", func(t *testing.T) {
		res, _, err := oneRemote(t, h, double, remote.CoordinatorOptions{InlineOnly: true}, remote.WorkerOptions{}, in)
		var le *limit.Error
		require.ErrorAs(t, err, &le)
		require.Equal(t, limit.MessageSize, le.Kind)
		require.Equal(t, "x", le.Subject)
		require.Equal(t, float64(len(in)), le.Current)
		require.Less(t, le.Limit, float64(64<<10))
		require.Equal(t, 1, res.Nodes[0].Attempts)
	})
	t.Run("over MaxValueBytes", func(t *testing.T) {
		_, _, err := oneRemote(t, h, double, remote.CoordinatorOptions{MaxValueBytes: 100 << 10}, remote.WorkerOptions{}, in)
		var le *limit.Error
		require.ErrorAs(t, err, &le)
		require.Equal(t, "x", le.Subject)
		require.Equal(t, float64(100<<10), le.Limit)
		require.Contains(t, err.Error(), `node "double"`)
	})
}

func TestRemoteFailuresBehaveAsLocal(t *testing.T) {
	h := startHub(t, hubOpts())
	retry := &dag.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, Jitter: -1}
	t.Run("retried until it succeeds", func(t *testing.T) {
		flaky := dag.Node{ID: "flaky", Retry: retry, Run: func(ctx context.Context, s dag.State) error {
			ti, ok := remote.TaskInfoFrom(ctx)
			if !ok {
				return errors.New("no task info")
			}
			if ti.Attempt < 3 {
				return fmt.Errorf("attempt %d fails", ti.Attempt)
			}
			return s.Put("y", []byte(ti.IdempotencyKey()))
		}}
		res, s, err := oneRemote(t, h, flaky, remote.CoordinatorOptions{}, remote.WorkerOptions{}, []byte("in"))
		require.NoError(t, err)
		require.Equal(t, 3, res.Nodes[0].Attempts)
		v, _ := s.Get("y")
		require.Equal(t, res.RunID+"/flaky", string(v))
	})
	t.Run("panic is permanent", func(t *testing.T) {
		p := dag.Node{ID: "p", Retry: retry, Run: func(context.Context, dag.State) error { panic("boom") }}
		res, _, err := oneRemote(t, h, p, remote.CoordinatorOptions{}, remote.WorkerOptions{}, nil)
		var te *remote.TaskError
		require.ErrorAs(t, err, &te)
		require.True(t, te.Panic)
		require.Contains(t, te.Message, "boom")
		require.Equal(t, 1, res.Nodes[0].Attempts)
	})
	t.Run("limit error crosses the wire", func(t *testing.T) {
		l := dag.Node{ID: "l", Run: func(context.Context, dag.State) error {
			return fmt.Errorf("model: %w", &limit.Error{Kind: limit.Memory, Current: 900, Limit: 512, Unit: "MB"})
		}}
		_, _, err := oneRemote(t, h, l, remote.CoordinatorOptions{}, remote.WorkerOptions{}, nil)
		var le *limit.Error
		require.ErrorAs(t, err, &le)
		require.Equal(t, limit.Memory, le.Kind)
		require.ErrorIs(t, err, limit.ErrExceeded)
	})
	t.Run("undeclared key", func(t *testing.T) {
		u := dag.Node{ID: "u", Run: func(_ context.Context, s dag.State) error { return s.Put("secret", nil) }}
		_, _, err := oneRemote(t, h, u, remote.CoordinatorOptions{}, remote.WorkerOptions{}, nil)
		require.ErrorContains(t, err, `"secret"`)
		require.ErrorContains(t, err, "not declared")
	})
	t.Run("timeout", func(t *testing.T) {
		slow := dag.Node{ID: "slow", Timeout: 50 * time.Millisecond, Run: func(ctx context.Context, s dag.State) error {
			<-ctx.Done()
			return ctx.Err()
		}}
		res, _, err := oneRemote(t, h, slow, remote.CoordinatorOptions{}, remote.WorkerOptions{}, nil)
		require.Error(t, err)
		require.Equal(t, executor.TimedOut, res.Nodes[0].Status, "%v", res.Nodes[0].Err)
	})
}

// TestUnservedCapabilityWaitsVisibly: a node whose capability no worker
// serves waits, says why, and times out; its task is withdrawn.
func TestUnservedCapabilityWaitsVisibly(t *testing.T) {
	h := startHub(t, hubOpts())
	var mu sync.Mutex
	var reasons []string
	c := newCoordinator(t, connect(t, h.ClientURL()), remote.CoordinatorOptions{OnWaiting: func(ctx context.Context, node, reason string) {
		_, ok := executor.NodeInfoFrom(ctx)
		mu.Lock()
		reasons = append(reasons, fmt.Sprintf("%s %v: %s", node, ok, reason))
		mu.Unlock()
	}})
	rn, err := c.Node(dag.Node{ID: "render", Timeout: 300 * time.Millisecond}, remote.Spec{Capability: "gpu"})
	require.NoError(t, err)
	g, err := dag.New(rn)
	require.NoError(t, err)
	res, err := mustExec(t, executor.Options{Gate: c}).Run(context.Background(), g, dag.NewMemoryState())
	require.Error(t, err)
	require.Equal(t, executor.TimedOut, res.Nodes[0].Status)
	require.Equal(t, []string{`render true: no live worker serves capability "gpu"`}, reasons)

	js, err := jetstream.New(connect(t, h.ClientURL()))
	require.NoError(t, err)
	st, err := js.Stream(context.Background(), "CEMAF_TASKS")
	require.NoError(t, err)
	info, err := st.Info(context.Background())
	require.NoError(t, err)
	require.Zero(t, info.State.Msgs, "the timed-out task is still queued")
}

// TestWaitingReachesObservers: by default the reason a node waits is a
// "waiting" chunk of its output, which the run's observers receive.
func TestWaitingReachesObservers(t *testing.T) {
	h := startHub(t, hubOpts())
	c := newCoordinator(t, connect(t, h.ClientURL()), remote.CoordinatorOptions{})
	rn, err := c.Node(dag.Node{ID: "render", Timeout: 300 * time.Millisecond}, remote.Spec{Capability: "gpu"})
	require.NoError(t, err)
	require.Equal(t, dag.IO, rn.Class, "a remote node only waits on this device")
	g, err := dag.New(rn)
	require.NoError(t, err)
	var mu sync.Mutex
	var chunks []executor.Chunk
	obs := executor.ObserverFunc(func(ev executor.Event) {
		if ev.Kind == executor.NodeOutput {
			mu.Lock()
			chunks = append(chunks, ev.Chunk)
			mu.Unlock()
		}
	})
	_, err = mustExec(t, executor.Options{Gate: c, Observers: []executor.Observer{obs}}).Run(context.Background(), g, dag.NewMemoryState())
	require.Error(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []executor.Chunk{{Kind: executor.ChunkWaiting, Text: `no live worker serves capability "gpu"`}}, chunks)
}

// TestMalformedTaskRejected: garbage on a task subject is terminated and
// recorded, the worker goes on.
func TestMalformedTaskRejected(t *testing.T) {
	h := startHub(t, hubOpts())
	nc := connect(t, h.ClientURL())
	c := newCoordinator(t, nc, remote.CoordinatorOptions{})
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.Publish(context.Background(), "cemaf.task.llm.normal", []byte("not a task"))
	require.NoError(t, err)
	_, err = js.Publish(context.Background(), "cemaf.task.llm.normal", []byte("CMT1\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"))
	require.NoError(t, err)

	reg := remote.NewRegistry()
	nd := threeNodes()[1]
	nd.DependsOn = nil
	require.NoError(t, reg.RegisterNode(nd, bSpec))
	w := newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{Slots: 1})
	runWorker(t, w)
	rn, err := c.Node(nd, bSpec)
	require.NoError(t, err)
	g, err := dag.New(rn)
	require.NoError(t, err)
	s := dag.NewMemoryState()
	require.NoError(t, s.Put("x", []byte("ok")))
	_, err = mustExec(t, executor.Options{Gate: c}).Run(context.Background(), g, s)
	require.NoError(t, err)
	require.Equal(t, uint64(2), w.Stats().Rejected)
	rej, err := c.Rejected(context.Background())
	require.NoError(t, err)
	require.Len(t, rej, 2)
	require.Contains(t, rej[0].Error, "magic")
	require.Contains(t, rej[1].Error, "field id")
}

// TestMaxDeliver: a task whose every delivery goes unanswered (the worker
// dies each time) stops after MaxDeliver with a *DeliveryError naming the
// node, recorded for inspection.
func TestMaxDeliver(t *testing.T) {
	h := startHub(t, hubOpts())
	nc := connect(t, h.ClientURL())
	lay := remote.Layout{AckWait: 200 * time.Millisecond, MaxDeliver: 2, StaleAfter: 2 * time.Second}
	c := newCoordinator(t, nc, remote.CoordinatorOptions{Layout: lay})
	reg := remote.NewRegistry()
	nd := threeNodes()[1]
	nd.DependsOn = nil
	require.NoError(t, reg.RegisterNode(nd, bSpec))
	// A worker that stops on its first look at its guard creates the
	// consumers; then a black hole takes every delivery and never
	// answers, as a worker killed each time would.
	wctx, wcancel := context.WithCancel(context.Background())
	w := newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{Layout: lay, Slots: 1,
		Guard: guardFunc(func() error { wcancel(); return errors.New("stopping") })})
	require.NoError(t, w.Run(wctx))
	require.Zero(t, w.Stats().Taken)

	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cons, err := js.Consumer(context.Background(), "CEMAF_TASKS", "llm_normal")
	require.NoError(t, err)
	hole := make(chan struct{})
	holeDone := make(chan struct{})
	go func() {
		defer close(holeDone)
		for {
			select {
			case <-hole:
				return
			default:
			}
			b, err := cons.Fetch(1, jetstream.FetchMaxWait(100*time.Millisecond))
			if err != nil {
				continue
			}
			for range b.Messages() {
			}
		}
	}()
	defer func() { close(hole); <-holeDone }()

	rn, err := c.Node(nd, bSpec)
	require.NoError(t, err)
	g, err := dag.New(rn)
	require.NoError(t, err)
	_, err = mustExec(t, executor.Options{Gate: c}).Run(context.Background(), g, dag.NewMemoryState())
	var de *remote.DeliveryError
	require.ErrorAs(t, err, &de)
	require.Equal(t, "b", de.Node)
	require.Equal(t, 2, de.Deliveries)
	require.ErrorIs(t, err, remote.ErrMaxDeliver)
	require.Contains(t, de.Last, "no worker acknowledged it")
	fails, err := c.Failures(context.Background())
	require.NoError(t, err)
	require.Len(t, fails, 1)
	require.Equal(t, "b", fails[0].Node)
	require.ErrorAs(t, fails[0].Err, &de)
}

type guardFunc func() error

func (g guardFunc) Check() error                   { return g() }
func (g guardFunc) Wait(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

func TestConnectErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "nats://" + l.Addr().String()
	require.NoError(t, l.Close())
	_, err = remote.Connect(context.Background(), url, remote.ConnectOptions{ConnectTimeout: 200 * time.Millisecond})
	require.ErrorContains(t, err, url)

	_, err = remote.Connect(context.Background(), url, remote.ConnectOptions{User: "u", Token: "t"})
	require.ErrorContains(t, err, "at most one")
}

func TestConnectionLimit(t *testing.T) {
	h := startHub(t, hub.Options{MaxConnections: 2})
	connect(t, h.ClientURL())
	connect(t, h.ClientURL())
	_, err := remote.Connect(context.Background(), h.ClientURL(), remote.ConnectOptions{})
	// The server refuses the third client; depending on timing the
	// client sees "maximum connections exceeded" or the closed socket.
	require.Error(t, err)
	require.ErrorContains(t, err, h.ClientURL())
	require.Equal(t, 2, h.NumClients())
}

func TestConnectAuth(t *testing.T) {
	h := startHub(t, hub.Options{User: "agent", Password: "s3cret"})
	_, err := remote.Connect(context.Background(), h.ClientURL(), remote.ConnectOptions{})
	require.ErrorContains(t, err, h.ClientURL())
	require.ErrorContains(t, err, "uthorization")
	nc, err := remote.Connect(context.Background(), h.ClientURL(), remote.ConnectOptions{User: "agent", Password: "s3cret"})
	require.NoError(t, err)
	nc.Close()

	ht := startHub(t, hub.Options{Token: "t0ken"})
	_, err = remote.Connect(context.Background(), ht.ClientURL(), remote.ConnectOptions{Token: "wrong"})
	require.Error(t, err)
	nc, err = remote.Connect(context.Background(), ht.ClientURL(), remote.ConnectOptions{Token: "t0ken"})
	require.NoError(t, err)
	nc.Close()

	_, err = remote.Connect(context.Background(), h.ClientURL(), remote.ConnectOptions{NKeySeedFile: "/nonexistent/seed"})
	require.ErrorContains(t, err, "/nonexistent/seed")

	// NKeys: the server knows the public key, the client signs with the seed.
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	require.NoError(t, os.WriteFile(seedFile, seed, 0o600))
	hn := startHub(t, hub.Options{NKeys: []string{pub}})
	_, err = remote.Connect(context.Background(), hn.ClientURL(), remote.ConnectOptions{})
	require.ErrorContains(t, err, "uthorization")
	other, err := nkeys.CreateUser()
	require.NoError(t, err)
	otherSeed, err := other.Seed()
	require.NoError(t, err)
	otherFile := filepath.Join(t.TempDir(), "other.nk")
	require.NoError(t, os.WriteFile(otherFile, otherSeed, 0o600))
	_, err = remote.Connect(context.Background(), hn.ClientURL(), remote.ConnectOptions{NKeySeedFile: otherFile})
	require.ErrorContains(t, err, "uthorization", "a key the server does not list")
	nc, err = remote.Connect(context.Background(), hn.ClientURL(), remote.ConnectOptions{NKeySeedFile: seedFile})
	require.NoError(t, err)
	nc.Close()

	_, err = hub.Start(hub.Options{StoreDir: t.TempDir(), NKeys: []string{"Unot-a-key"}})
	require.ErrorContains(t, err, "Options.NKeys[0]")
}

func TestConnectTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hub"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	h := startHub(t, hub.Options{TLS: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}})
	pool := x509.NewCertPool()
	pool.AddCert(cert)

	_, err = remote.Connect(context.Background(), h.ClientURL(), remote.ConnectOptions{ConnectTimeout: time.Second})
	require.Error(t, err, "a client without the CA must not connect")
	nc, err := remote.Connect(context.Background(), h.ClientURL(), remote.ConnectOptions{TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
	require.NoError(t, err)
	require.True(t, nc.TLSRequired())
	nc.Close()
}
