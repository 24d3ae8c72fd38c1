package remote_test

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/remote"
)

// benchFleet is an embedded server with n workers serving reg, each on its
// own connection, and a coordinator.
func benchFleet(b *testing.B, reg *remote.Registry, workers, slots int) *remote.Coordinator {
	b.Helper()
	h := startHub(b, hubOpts())
	for i := range workers {
		w := newWorker(b, connect(b, h.ClientURL()), reg, remote.WorkerOptions{ID: "w" + strconv.Itoa(i), Slots: slots})
		runWorker(b, w)
		<-w.Ready()
	}
	return newCoordinator(b, connect(b, h.ClientURL()), remote.CoordinatorOptions{})
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkNodeLatency runs a one-node graph whose node copies a 1 KiB
// value, locally (the baseline) and on a remote worker over an embedded
// server on loopback: the difference is the added latency per remote node.
func BenchmarkNodeLatency(b *testing.B) {
	copyNode := dag.Node{ID: "copy", Run: func(_ context.Context, s dag.State) error {
		v, err := s.Get("in")
		if err != nil {
			return err
		}
		return s.Put("out", v)
	}}
	spec := remote.Spec{Capability: "bench", Reads: []string{"in"}, Writes: []string{"out"}}
	payload := bytes.Repeat([]byte("x"), 1024)
	// after, if not nil, is called after each run, within the time.
	run := func(b *testing.B, g *dag.Graph, e *executor.Executor, after func(*executor.Result) error) {
		durs := make([]time.Duration, 0, b.N)
		s := dag.NewMemoryState()
		require.NoError(b, s.Put("in", payload))
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			t0 := time.Now()
			res, err := e.Run(context.Background(), g, s)
			if err == nil && after != nil {
				err = after(res)
			}
			if err != nil {
				b.Fatal(err)
			}
			durs = append(durs, time.Since(t0))
		}
		b.StopTimer()
		reportPercentiles(b, durs)
	}
	b.Run("local", func(b *testing.B) {
		g, _ := dag.New(copyNode)
		run(b, g, mustExec(b, executor.Options{}), nil)
	})
	remoteRun := func(b *testing.B, forget bool) {
		reg := remote.NewRegistry()
		require.NoError(b, reg.RegisterNode(copyNode, spec))
		c := benchFleet(b, reg, 1, 1)
		rn, err := c.Node(copyNode, spec)
		require.NoError(b, err)
		g, _ := dag.New(rn)
		var after func(*executor.Result) error
		if forget {
			// As serve --nats does after each request.
			after = func(res *executor.Result) error {
				_, err := c.Forget(context.Background(), res.RunID)
				return err
			}
		}
		run(b, g, mustExec(b, executor.Options{Gate: c}), after)
	}
	b.Run("remote", func(b *testing.B) { remoteRun(b, false) })
	b.Run("remote-forget", func(b *testing.B) { remoteRun(b, true) })
}

// flatBench is n independent small nodes (each writes 16 bytes).
func flatBench(n int) ([]dag.Node, []remote.Spec) {
	nodes := make([]dag.Node, n)
	specs := make([]remote.Spec, n)
	for i := range n {
		id := "n" + strconv.Itoa(i)
		nodes[i] = dag.Node{ID: id, Run: func(_ context.Context, s dag.State) error { return s.Put(id, []byte("0123456789abcdef")) }}
		specs[i] = remote.Spec{Capability: "bench", Writes: []string{id}}
	}
	return nodes, specs
}

// BenchmarkThroughput runs 2,000 independent small nodes per iteration:
// locally (the baseline), and on 4 workers with 4 slots each.
func BenchmarkThroughput(b *testing.B) {
	const n = 2000
	nodes, specs := flatBench(n)
	run := func(b *testing.B, g *dag.Graph, e *executor.Executor) {
		b.ReportAllocs()
		var total time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := e.Run(context.Background(), g, dag.NewMemoryState()); err != nil {
				b.Fatal(err)
			}
			total += time.Since(t0)
		}
		b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "tasks/s")
	}
	b.Run("local", func(b *testing.B) {
		g, _ := dag.New(nodes...)
		run(b, g, mustExec(b, executor.Options{Limits: executor.Limits{CPU: 64, IO: 64}}))
	})
	b.Run("remote-4-workers", func(b *testing.B) {
		reg := remote.NewRegistry()
		rnodes := make([]dag.Node, n)
		for i := range nodes {
			require.NoError(b, reg.RegisterNode(nodes[i], specs[i]))
		}
		c := benchFleet(b, reg, 4, 16)
		for i := range nodes {
			var err error
			rnodes[i], err = c.Node(nodes[i], specs[i])
			require.NoError(b, err)
		}
		g, _ := dag.New(rnodes...)
		run(b, g, mustExec(b, executor.Options{Gate: c, Limits: executor.Limits{CPU: 256, IO: 256}}))
	})
}

// BenchmarkGraph1000HalfRemote runs the 1,000-node hashing DAG of the
// crash test all locally (the baseline) and with every other node on one of
// 4 workers.
func BenchmarkGraph1000HalfRemote(b *testing.B) {
	nodes, specs := crashNodes(1000, false)
	run := func(b *testing.B, g *dag.Graph, e *executor.Executor) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Run(context.Background(), g, dag.NewMemoryState()); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("local", func(b *testing.B) {
		g, _ := dag.New(nodes...)
		run(b, g, mustExec(b, executor.Options{Limits: executor.Limits{CPU: 16, IO: 16}}))
	})
	b.Run("half-remote", func(b *testing.B) {
		reg := remote.NewRegistry()
		for i := range nodes {
			if i%2 == 1 {
				require.NoError(b, reg.RegisterNode(nodes[i], specs[i]))
			}
		}
		c := benchFleet(b, reg, 4, 4)
		mixed := slices.Clone(nodes)
		for i := range mixed {
			if i%2 == 1 {
				var err error
				mixed[i], err = c.Node(nodes[i], specs[i])
				require.NoError(b, err)
			}
		}
		g, _ := dag.New(mixed...)
		run(b, g, mustExec(b, executor.Options{Gate: c, Limits: executor.Limits{CPU: 16, IO: 16}}))
	})
}

// BenchmarkLargeValue moves a 32 MiB value to a worker and back: the
// node copies "in" to "out" in parts (dag.NewValueReader and
// dag.NewValueWriter), so the value goes through the object store twice
// (in two parts of 16 MiB each way) and through two spool files. The
// baseline puts the same bytes into an object store of the same server
// and reads them back, twice: what the object store itself costs for the
// value's two trips. MB/s is of the value (32 MiB per run).
func BenchmarkLargeValue(b *testing.B) {
	const size = 32 << 20
	value := pattern(size)
	report := func(b *testing.B, elapsed time.Duration) {
		b.ReportMetric(float64(size)*float64(b.N)/1e6/elapsed.Seconds(), "MB/s")
	}
	h := startHub(b, hubOpts())
	b.Run("object-store", func(b *testing.B) {
		js, err := jetstream.New(connect(b, h.ClientURL()))
		require.NoError(b, err)
		ctx := context.Background()
		obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "BASELINE", Storage: jetstream.FileStorage})
		require.NoError(b, err)
		b.ReportAllocs()
		t0 := time.Now()
		for b.Loop() {
			for _, name := range []string{"in", "out"} {
				if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: 128 << 10}}, bytes.NewReader(value)); err != nil {
					b.Fatal(err)
				}
				r, err := obs.Get(ctx, name)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, r); err != nil || n != size {
					b.Fatal(n, err)
				}
				r.Close()
			}
		}
		report(b, time.Since(t0))
	})
	b.Run("remote", func(b *testing.B) {
		copyNode := dag.Node{ID: "copy", Run: func(_ context.Context, s dag.State) error {
			r, err := dag.NewValueReader(s, "in")
			if err != nil {
				return err
			}
			w, err := dag.NewValueWriter(s, "out")
			if err != nil {
				return err
			}
			if _, err := io.Copy(w, r); err != nil {
				w.Abort()
				return err
			}
			return w.Commit()
		}}
		spec := remote.Spec{Capability: "bench", Reads: []string{"in"}, Writes: []string{"out"}}
		reg := remote.NewRegistry()
		require.NoError(b, reg.RegisterNode(copyNode, spec))
		w := newWorker(b, connect(b, h.ClientURL()), reg, remote.WorkerOptions{ID: "w", Slots: 1, SpoolDir: b.TempDir()})
		runWorker(b, w)
		<-w.Ready()
		c := newCoordinator(b, connect(b, h.ClientURL()), remote.CoordinatorOptions{})
		rn, err := c.Node(copyNode, spec)
		require.NoError(b, err)
		g, _ := dag.New(rn)
		e := mustExec(b, executor.Options{Gate: c})
		s := dag.NewMemoryState()
		require.NoError(b, s.Put("in", value))
		b.ReportAllocs()
		t0 := time.Now()
		for b.Loop() {
			if _, err := e.Run(context.Background(), g, s); err != nil {
				b.Fatal(err)
			}
		}
		report(b, time.Since(t0))
		out, err := s.Get("out")
		require.NoError(b, err)
		require.True(b, bytes.Equal(out, value), "out differs from in")
	})
}
