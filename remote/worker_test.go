package remote_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/remote"
)

// boardGuard is a worker's resource guard that the test heats and cools.
type boardGuard struct {
	mu      sync.Mutex
	hot     bool
	cool    chan struct{} // closed when it cools down
	waiting chan struct{} // receives when Wait starts blocking
}

func newBoardGuard(hot bool) *boardGuard {
	return &boardGuard{hot: hot, cool: make(chan struct{}), waiting: make(chan struct{}, 16)}
}

func (g *boardGuard) Check() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hot {
		return &limit.Error{Kind: limit.Temperature, Current: 82, Limit: 80, Unit: "°C"}
	}
	return nil
}

func (g *boardGuard) Wait(ctx context.Context) error {
	g.mu.Lock()
	hot, cool := g.hot, g.cool
	g.mu.Unlock()
	if !hot {
		return nil
	}
	g.waiting <- struct{}{}
	select {
	case <-cool:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *boardGuard) set(hot bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hot && !hot {
		close(g.cool)
	}
	if !g.hot && hot {
		g.cool = make(chan struct{})
	}
	g.hot = hot
}

// flatGraph is n independent remote nodes of capability "hash".
func flatGraph(t *testing.T, c *remote.Coordinator, reg *remote.Registry, prefix string, n int) *dag.Graph {
	t.Helper()
	var nodes []dag.Node
	for i := range n {
		id := prefix + strconv.Itoa(i)
		nd := dag.Node{ID: id, Run: func(_ context.Context, s dag.State) error { return s.Put(id, []byte("v"+id)) }}
		spec := remote.Spec{Capability: "hash", Writes: []string{id}}
		if reg != nil {
			require.NoError(t, reg.RegisterNode(nd, spec))
		}
		rn, err := c.Node(nd, spec)
		require.NoError(t, err)
		nodes = append(nodes, rn)
	}
	g, err := dag.New(nodes...)
	require.NoError(t, err)
	return g
}

// TestHotWorkerTakesNoTask: a worker whose board is hot takes no task while
// hot, its heartbeat says why, the others take them all; once it cools down
// it takes tasks again.
func TestHotWorkerTakesNoTask(t *testing.T) {
	h := startHub(t, hubOpts())
	c := newCoordinator(t, connect(t, h.ClientURL()), remote.CoordinatorOptions{})
	reg := remote.NewRegistry()
	g1 := flatGraph(t, c, reg, "a", 60)
	g2 := flatGraph(t, c, reg, "b", 10)

	guards := []*boardGuard{newBoardGuard(true), newBoardGuard(false), newBoardGuard(false)}
	var workers []*remote.Worker
	for i, gd := range guards {
		w := newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{ID: "w" + strconv.Itoa(i), Slots: 2, Guard: gd,
			Status: func() remote.Status { return remote.Status{Mode: "high_temp", TemperatureC: 82} }})
		workers = append(workers, w)
		runWorker(t, w)
		<-w.Ready()
	}
	<-guards[0].waiting // w0 is paused before any task is queued

	fleet, err := remote.WatchFleet(context.Background(), connect(t, h.ClientURL()), remote.FleetOptions{Layout: testLayout()})
	require.NoError(t, err)
	defer fleet.Close()
	capa := fleet.Capacity("hash", time.Now())
	require.Equal(t, 3, capa.Workers)
	require.Equal(t, 2, capa.Ready)
	for _, p := range fleet.Peers(time.Now()) {
		if p.ID == "w0" {
			require.Contains(t, p.Paused, "temperature limit exceeded: 82 °C > 80 °C")
			require.Equal(t, 82.0, p.TemperatureC)
		}
	}

	e := mustExec(t, executor.Options{Gate: c, Limits: executor.Limits{CPU: 16, IO: 16}})
	_, err = e.Run(context.Background(), g1, dag.NewMemoryState())
	require.NoError(t, err)
	require.Zero(t, workers[0].Stats().Taken, "the hot worker took a task")
	require.Equal(t, uint64(60), workers[1].Stats().Done+workers[2].Stats().Done)

	// w0 cools down; the others heat up: w0 takes every task.
	guards[1].set(true)
	guards[2].set(true)
	<-guards[1].waiting
	<-guards[2].waiting
	guards[0].set(false)
	_, err = e.Run(context.Background(), g2, dag.NewMemoryState())
	require.NoError(t, err)
	require.Equal(t, uint64(10), workers[0].Stats().Done)
	require.Equal(t, uint64(60), workers[1].Stats().Done+workers[2].Stats().Done)
	guards[1].set(false)
	guards[2].set(false)
}

// TestWorkerSlotsBoundPulls: a worker never holds more tasks than its slots.
func TestWorkerSlotsBoundPulls(t *testing.T) {
	h := startHub(t, hubOpts())
	c := newCoordinator(t, connect(t, h.ClientURL()), remote.CoordinatorOptions{})
	reg := remote.NewRegistry()
	var mu sync.Mutex
	running, peak := 0, 0
	var nodes []dag.Node
	for i := range 20 {
		id := "n" + strconv.Itoa(i)
		nd := dag.Node{ID: id, Run: func(ctx context.Context, s dag.State) error {
			mu.Lock()
			running++
			peak = max(peak, running)
			mu.Unlock()
			defer func() { mu.Lock(); running--; mu.Unlock() }()
			return s.Put(id, []byte(id))
		}}
		spec := remote.Spec{Capability: "hash", Writes: []string{id}}
		require.NoError(t, reg.RegisterNode(nd, spec))
		rn, err := c.Node(nd, spec)
		require.NoError(t, err)
		nodes = append(nodes, rn)
	}
	w := newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{Slots: 3})
	runWorker(t, w)
	g, err := dag.New(nodes...)
	require.NoError(t, err)
	_, err = mustExec(t, executor.Options{Gate: c, Limits: executor.Limits{CPU: 20, IO: 20}}).Run(context.Background(), g, dag.NewMemoryState())
	require.NoError(t, err)
	require.LessOrEqual(t, peak, 3)
	require.Equal(t, uint64(20), w.Stats().Taken)
}

// TestPriorityBands: with tasks of every band queued, a one-slot worker
// runs the high band first and the low band last.
func TestPriorityBands(t *testing.T) {
	h := startHub(t, hubOpts())
	// OnWaiting tells when each task is queued with no worker to take it.
	queued := make(chan struct{}, 9)
	c := newCoordinator(t, connect(t, h.ClientURL()), remote.CoordinatorOptions{
		OnWaiting: func(context.Context, string, string) { queued <- struct{}{} }})
	reg := remote.NewRegistry()
	var mu sync.Mutex
	var order []string
	var nodes []dag.Node
	for _, p := range []struct {
		name string
		prio int
	}{{"low", -1}, {"normal", 0}, {"high", 1}} {
		for i := range 3 {
			id := p.name + strconv.Itoa(i)
			nd := dag.Node{ID: id, Priority: p.prio, Run: func(_ context.Context, s dag.State) error {
				mu.Lock()
				order = append(order, p.name)
				mu.Unlock()
				return s.Put(id, nil)
			}}
			spec := remote.Spec{Capability: "hash", Writes: []string{id}}
			require.NoError(t, reg.RegisterNode(nd, spec))
			rn, err := c.Node(nd, spec)
			require.NoError(t, err)
			nodes = append(nodes, rn)
		}
	}
	g, err := dag.New(nodes...)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := mustExec(t, executor.Options{Gate: c, Limits: executor.Limits{CPU: 9, IO: 9}}).Run(context.Background(), g, dag.NewMemoryState())
		done <- err
	}()
	for range 9 {
		<-queued
	}
	w := newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{Slots: 1})
	runWorker(t, w)
	require.NoError(t, <-done)
	require.Equal(t, []string{"high", "high", "high", "normal", "normal", "normal", "low", "low", "low"}, order)
}

// TestDrainHandsTasksBack: a worker stopped mid-task waits DrainTimeout,
// cancels the task and hands it back; another worker finishes it at once.
func TestDrainHandsTasksBack(t *testing.T) {
	h := startHub(t, hubOpts())
	c := newCoordinator(t, connect(t, h.ClientURL()), remote.CoordinatorOptions{})
	reg := remote.NewRegistry()
	started := make(chan struct{}, 2)
	nd := dag.Node{ID: "long", Run: func(ctx context.Context, s dag.State) error {
		ti, _ := remote.TaskInfoFrom(ctx)
		if ti.Worker == "first" {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		}
		return s.Put("long", []byte(ti.Worker))
	}}
	spec := remote.Spec{Capability: "hash", Writes: []string{"long"}}
	require.NoError(t, reg.RegisterNode(nd, spec))
	first := newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{ID: "first", DrainTimeout: 50 * time.Millisecond})
	stopFirst := runWorker(t, first)
	<-first.Ready()
	rn, err := c.Node(nd, spec)
	require.NoError(t, err)
	g, err := dag.New(rn)
	require.NoError(t, err)
	s := dag.NewMemoryState()
	done := make(chan error, 1)
	go func() {
		_, err := mustExec(t, executor.Options{Gate: c}).Run(context.Background(), g, s)
		done <- err
	}()
	<-started
	second := newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{ID: "second"})
	runWorker(t, second)
	<-second.Ready()
	stopFirst()
	require.NoError(t, <-done)
	v, _ := s.Get("long")
	require.Equal(t, "second", string(v))
	require.Equal(t, uint64(1), first.Stats().Returned)
	require.Equal(t, uint64(1), second.Stats().Done)
}

// TestLongTaskKeptByInProgress: a task running for several AckWaits is
// kept by in-progress acknowledgements: it is delivered once and runs once.
func TestLongTaskKeptByInProgress(t *testing.T) {
	h := startHub(t, hubOpts())
	lay := remote.Layout{AckWait: 150 * time.Millisecond, StaleAfter: 2 * time.Second}
	c := newCoordinator(t, connect(t, h.ClientURL()), remote.CoordinatorOptions{Layout: lay})
	reg := remote.NewRegistry()
	var mu sync.Mutex
	var deliveries []int
	nd := dag.Node{ID: "long", Run: func(ctx context.Context, s dag.State) error {
		ti, _ := remote.TaskInfoFrom(ctx)
		mu.Lock()
		deliveries = append(deliveries, ti.Delivery)
		mu.Unlock()
		select { // the work: five AckWaits
		case <-time.After(5 * lay.AckWait):
		case <-ctx.Done():
			return ctx.Err()
		}
		return s.Put("long", []byte("done"))
	}}
	spec := remote.Spec{Capability: "hash", Writes: []string{"long"}}
	require.NoError(t, reg.RegisterNode(nd, spec))
	for i := range 2 {
		w := newWorker(t, connect(t, h.ClientURL()), reg, remote.WorkerOptions{Layout: lay, ID: "w" + strconv.Itoa(i)})
		runWorker(t, w)
		<-w.Ready()
	}
	rn, err := c.Node(nd, spec)
	require.NoError(t, err)
	g, err := dag.New(rn)
	require.NoError(t, err)
	_, err = mustExec(t, executor.Options{Gate: c}).Run(context.Background(), g, dag.NewMemoryState())
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int{1}, deliveries)
}
