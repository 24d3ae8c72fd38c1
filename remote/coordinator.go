package remote

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// Defaults of the CoordinatorOptions fields.
const (
	DefaultPollInterval  = time.Second
	DefaultMaxValueBytes = 64 << 20
)

// CoordinatorOptions configures a Coordinator. The zero value means the
// defaults of each field.
type CoordinatorOptions struct {
	// Layout names the fleet's streams and buckets (see Layout).
	Layout Layout
	// ID names the coordinator in reply subjects; 1 to 32 characters
	// among a-z, A-Z, 0-9, '_' and '-'. Empty means a random one.
	ID string
	// PollInterval is how often a waiting remote node re-reads its result
	// from the results bucket, in case the reply was lost (a reconnect),
	// and re-checks the fleet to report why it waits. Default 1s.
	PollInterval time.Duration
	// MaxValueBytes bounds a single value a remote node sends or
	// receives; a larger one fails with a *limit.Error (Kind
	// limit.MessageSize) naming the key. Default 64 MiB.
	MaxValueBytes int64
	// InlineOnly keeps every value inside the task and result messages:
	// a task that does not fit in the server's max payload fails with a
	// *limit.Error naming the largest key instead of going through the
	// object store.
	InlineOnly bool
	// OnWaiting is told why a remote node is waiting: when it is
	// published while no live worker serves its capability or all of them
	// are paused, and again whenever that reason changes. It is called
	// from the node's goroutine with the node's context, never while the
	// coordinator holds a lock; it must be quick. Nil means: stream the
	// reason to the run's observers as a "waiting" chunk (executor.Emit),
	// which the pi-agent prints.
	OnWaiting func(ctx context.Context, node, reason string)
	// Now is the clock used to judge the fleet's staleness; nil means
	// time.Now.
	Now func() time.Time
	// Logger receives diagnostics (malformed replies, cleanup failures);
	// nil discards them.
	Logger *slog.Logger
}

// Coordinator is the side of a run that owns the graph and the State: the
// nodes it makes remote (Node) publish their tasks to the fleet's work
// queue and wait for the result, which it writes into the run's State.
//
// A Coordinator owns one goroutine (replies, max-delivery advisories,
// connection changes) and the fleet watcher's; Close stops both. It is a
// Gate for the executor: Check reports ErrDisconnected while the NATS
// connection is down, Wait blocks until it is back, so that a run pauses
// instead of failing. It is safe for concurrent use by many runs.
type Coordinator struct {
	res    *resources
	opts   CoordinatorOptions
	id     string
	reply  string
	logger *slog.Logger
	fleet  *Fleet
	now    func() time.Time

	replies   chan *nats.Msg
	advisory  chan *nats.Msg
	replySub  *nats.Subscription
	adviseSub *nats.Subscription
	status    chan nats.Status
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	connected atomic.Bool
	closed    atomic.Bool

	// mu guards the fields below.
	mu          sync.Mutex
	byOK        map[string][]*waiter // ok key → waiters
	byTask      map[string]*waiter   // task ID → waiter
	connWake    chan struct{}        // closed when the connection comes back
	reconnected chan struct{}        // closed and replaced on every reconnection
}

// waiter is a remote node attempt waiting for its result.
type waiter struct {
	okKey  string
	taskID string
	ch     chan *result // capacity 1; a full channel keeps the first result
}

var (
	_ executor.Gate    = (*Coordinator)(nil)
	_ executor.Checker = (*Coordinator)(nil)
)

// NewCoordinator creates (or updates) the fleet's stream and buckets on nc,
// subscribes to its replies and starts watching the fleet. It fails, naming
// the field or the server, on bad options or when JetStream is unavailable.
// The caller keeps ownership of nc and closes it after Close.
func NewCoordinator(ctx context.Context, nc *nats.Conn, opts CoordinatorOptions) (*Coordinator, error) {
	lay, err := opts.Layout.withDefaults()
	if err != nil {
		return nil, err
	}
	opts.Layout = lay
	switch {
	case opts.PollInterval < 0:
		return nil, fmt.Errorf("remote: CoordinatorOptions.PollInterval = %v: must be ≥ 0 (0 = %v)", opts.PollInterval, DefaultPollInterval)
	case opts.MaxValueBytes < 0:
		return nil, fmt.Errorf("remote: CoordinatorOptions.MaxValueBytes = %d: must be ≥ 0 (0 = %d)", opts.MaxValueBytes, DefaultMaxValueBytes)
	}
	opts.PollInterval = cmp.Or(opts.PollInterval, DefaultPollInterval)
	opts.MaxValueBytes = cmp.Or(opts.MaxValueBytes, DefaultMaxValueBytes)
	if opts.OnWaiting == nil {
		opts.OnWaiting = emitWaiting
	}
	id := opts.ID
	if id == "" {
		id = randomID()
	}
	if err := checkToken("CoordinatorOptions.ID", id); err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	res, err := openResources(ctx, nc, lay)
	if err != nil {
		return nil, err
	}
	c := &Coordinator{
		res: res, opts: opts, id: id, reply: lay.replySubject(id), logger: opts.Logger, now: opts.Now,
		replies: make(chan *nats.Msg, 4096), advisory: make(chan *nats.Msg, 256),
		stop: make(chan struct{}), done: make(chan struct{}),
		byOK: map[string][]*waiter{}, byTask: map[string]*waiter{},
		connWake: make(chan struct{}), reconnected: make(chan struct{}),
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.fleet, err = newFleet(ctx, res, c.now, c.logger); err != nil {
		return nil, err
	}
	c.status = nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	fail := func(err error) (*Coordinator, error) {
		nc.RemoveStatusListener(c.status)
		c.unsubscribe()
		_ = c.fleet.Close()
		return nil, err
	}
	if c.replySub, err = nc.ChanSubscribe(c.reply, c.replies); err != nil {
		return fail(fmt.Errorf("remote: subscribe %s: %w", c.reply, err))
	}
	if c.adviseSub, err = nc.ChanSubscribe(lay.maxDeliveriesAdvisory(), c.advisory); err != nil {
		return fail(fmt.Errorf("remote: subscribe %s: %w", lay.maxDeliveriesAdvisory(), err))
	}
	if err := nc.FlushTimeout(lay.AckWait); err != nil {
		return fail(fmt.Errorf("remote: subscribe on %s: %w", nc.ConnectedUrlRedacted(), err))
	}
	c.setConnected(nc.IsConnected())
	go c.loop()
	return c, nil
}

// ID returns the coordinator's ID.
func (c *Coordinator) ID() string { return c.id }

// Fleet returns the coordinator's live view of the workers. It is closed
// with the coordinator.
func (c *Coordinator) Fleet() *Fleet { return c.fleet }

// Node returns a copy of n whose Run publishes the node's task for
// spec.Capability and waits for a worker's result: the values of
// spec.Reads travel with it, and the keys of spec.Writes that the worker's
// function put or deleted are written into the run's State. n.Run is not
// called on this device (it may be nil); workers run the function
// registered under spec.Func (or n.ID), normally the same one
// (Registry.RegisterNode).
//
// Every other field of n is kept, so the executor applies its timeout,
// retry policy, priority and events as for a local node, except its class:
// on this device a remote node only waits on the network, so it is
// dag.IO and counts against the executor's I/O limit, not its CPU limit.
// The node's priority picks its band (Priority > 0: high, 0: normal,
// < 0: low). Node fails, naming the node and field, on an invalid spec.
func (c *Coordinator) Node(n dag.Node, spec Spec) (dag.Node, error) {
	if err := spec.validate(n.ID); err != nil {
		return dag.Node{}, err
	}
	spec.Reads = slices.Clone(spec.Reads)
	spec.Writes = slices.Clone(spec.Writes)
	rn := &remoteNode{c: c, spec: spec, fn: cmp.Or(spec.Func, n.ID), band: bandOf(n.Priority)}
	n.Run = rn.run
	n.Class = dag.IO
	return n, nil
}

// Check reports ErrDisconnected while the NATS connection is down, nil
// otherwise. It does not block or allocate when connected.
func (c *Coordinator) Check() error {
	if c.connected.Load() && c.res.nc.IsConnected() {
		return nil
	}
	if c.res.nc.IsClosed() {
		return fmt.Errorf("remote: NATS connection to %s closed: %w", c.res.url, ErrDisconnected)
	}
	return fmt.Errorf("remote: %s: %w (reconnecting)", c.res.url, ErrDisconnected)
}

// Wait blocks while the NATS connection is down. It returns nil once
// connected, an error wrapping ErrDisconnected when the connection is
// closed for good (or the coordinator is), or context.Cause(ctx).
func (c *Coordinator) Wait(ctx context.Context) error {
	for {
		if c.Check() == nil {
			return nil
		}
		if c.res.nc.IsClosed() || c.closed.Load() {
			return c.Check()
		}
		c.mu.Lock()
		wake := c.connWake
		c.mu.Unlock()
		select {
		case <-wake:
			// The connection dropped but its event has not reached the
			// loop yet: look again shortly rather than spin.
			wake = nil
			t := time.NewTimer(10 * time.Millisecond)
			select {
			case <-t.C:
			case <-c.stop:
			case <-ctx.Done():
			}
			t.Stop()
		case <-c.stop:
		case <-ctx.Done():
		}
		if c.closed.Load() {
			return fmt.Errorf("remote: coordinator: %w", ErrClosed)
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
	}
}

func (c *Coordinator) setConnected(up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.connected.Swap(up)
	switch {
	case up && !was:
		close(c.connWake)
		close(c.reconnected)
		c.reconnected = make(chan struct{})
	case !up && was:
		c.connWake = make(chan struct{})
	}
}

// loop handles replies, advisories and connection changes until Close.
func (c *Coordinator) loop() {
	defer close(c.done)
	status := c.status
	for {
		select {
		case <-c.stop:
			return
		case m := <-c.replies:
			c.onReply(m)
		case m := <-c.advisory:
			c.onMaxDeliveries(m)
		case st, ok := <-status:
			if !ok {
				status = nil
				continue
			}
			c.setConnected(st == nats.CONNECTED)
		}
	}
}

func (c *Coordinator) onReply(m *nats.Msg) {
	r, err := decodeResult(m.Data)
	if err != nil {
		c.logger.Warn("remote: ignore a malformed reply", "subject", m.Subject, "bytes", len(m.Data), "error", err)
		return
	}
	// The message buffer belongs to this reply alone, so the decoded
	// result may alias it.
	c.deliver(r)
}

// deliver hands r to the waiters it answers: a success to every attempt of
// its node, a failure to its own attempt only.
func (c *Coordinator) deliver(r *result) {
	c.mu.Lock()
	var targets []*waiter
	if r.Status == statusOK {
		targets = c.byOK[okKey(r.Run, r.Node)]
	} else if w := c.byTask[r.TaskID]; w != nil {
		targets = []*waiter{w}
	}
	for _, w := range targets {
		select {
		case w.ch <- r:
		default:
		}
	}
	c.mu.Unlock()
}

// advisory is the part of JetStream's max-deliveries advisory used here.
type maxDeliveries struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries int    `json:"deliveries"`
}

// onMaxDeliveries records the failure of a task that reached MaxDeliver
// deliveries without an acknowledgement, tells its waiter, and removes it
// from the stream (a work-queue stream keeps it otherwise).
func (c *Coordinator) onMaxDeliveries(m *nats.Msg) {
	var adv maxDeliveries
	if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
		c.logger.Warn("remote: ignore a malformed max-deliveries advisory", "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.res.lay.AckWait)
	defer cancel()
	raw, err := c.res.stream.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		c.logger.Debug("remote: task of a max-deliveries advisory is gone", "seq", adv.StreamSeq, "error", err)
		return
	}
	t, err := decodeTask(raw.Data)
	if err != nil {
		_ = c.res.stream.DeleteMsg(ctx, adv.StreamSeq)
		return
	}
	last := fmt.Sprintf("no worker acknowledged it within AckWait (%v) on any of %d deliveries: workers killed, disconnected or stuck", c.res.lay.AckWait, adv.Deliveries)
	if e, err := c.res.results.Get(ctx, lastKey(t.Run, t.Node, t.Attempt)); err == nil {
		last = string(e.Value())
	}
	r := &result{TaskID: t.ID, Run: t.Run, Node: t.Node, Status: statusFailed, Deliveries: adv.Deliveries, Message: last, Flags: flagDelivery}
	if _, err := c.res.results.Create(ctx, failKey(t.Run, t.Node, t.Attempt), r.encode()); err != nil {
		c.logger.Debug("remote: record a max-deliveries failure", "task", t.ID, "error", err)
	}
	if err := c.res.stream.DeleteMsg(ctx, adv.StreamSeq); err != nil {
		c.logger.Debug("remote: delete a task past MaxDeliver", "task", t.ID, "error", err)
	}
	c.deliver(r)
}

func (c *Coordinator) register(run, node string, attempt int) (*waiter, error) {
	w := &waiter{okKey: okKey(run, node), taskID: taskID(run, node, attempt), ch: make(chan *result, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return nil, fmt.Errorf("remote: node %q: coordinator: %w", node, ErrClosed)
	}
	c.byOK[w.okKey] = append(c.byOK[w.okKey], w)
	c.byTask[w.taskID] = w
	return w, nil
}

func (c *Coordinator) unregister(w *waiter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := slices.DeleteFunc(c.byOK[w.okKey], func(x *waiter) bool { return x == w })
	if len(ws) == 0 {
		delete(c.byOK, w.okKey)
	} else {
		c.byOK[w.okKey] = ws
	}
	if c.byTask[w.taskID] == w {
		delete(c.byTask, w.taskID)
	}
}

// reconnectedChan returns the channel closed at the next reconnection.
func (c *Coordinator) reconnectedChan() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconnected
}

func (c *Coordinator) unsubscribe() {
	for _, s := range []*nats.Subscription{c.replySub, c.adviseSub} {
		if s != nil {
			_ = s.Unsubscribe()
		}
	}
}

// Close stops the coordinator's goroutines and unsubscribes. Remote nodes
// still waiting fail with ErrClosed; the tasks they published stay in the
// queue and their results in the bucket, for a coordinator that resumes the
// run. Later calls return nil.
func (c *Coordinator) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed.Store(true)
		c.mu.Unlock()
		close(c.stop)
		c.res.nc.RemoveStatusListener(c.status)
		c.unsubscribe()
		<-c.done
		_ = c.fleet.Close()
	})
	return nil
}

// emitWaiting streams why a node waits to the run's observers.
func emitWaiting(ctx context.Context, _, reason string) {
	executor.Emit(ctx, executor.Chunk{Kind: executor.ChunkWaiting, Text: reason})
}
