package remote

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cemaf-go/cemaf/internal/hostlimits"
	"github.com/cemaf-go/cemaf/internal/memfs"
)

// Guard is what a worker consults before pulling tasks: while Check reports
// an error the worker pulls nothing and waits in Wait. The guards of
// packages throttle, thermal and disk (and adaptive's breaker) satisfy it.
type Guard interface {
	Wait(ctx context.Context) error
	Check() error
}

// Status is what a worker reports of its device in its heartbeats.
type Status struct {
	// Mode is the device's operating mode (normal, low_memory, high_temp,
	// low_disk); empty if unknown.
	Mode string
	// TemperatureC is the board temperature in °C; 0 means unknown.
	TemperatureC float64
}

// Defaults of the WorkerOptions fields.
const (
	DefaultDrainTimeout = 10 * time.Second
)

// WorkerOptions configures a Worker. The zero value means the defaults of
// each field.
type WorkerOptions struct {
	// Layout names the fleet's streams and buckets (see Layout).
	Layout Layout
	// ID names the worker in heartbeats and results. Empty means
	// "<hostname>-<pid>-<random>".
	ID string
	// Capabilities restricts the capabilities served to these (each must
	// have a function in the registry). Empty means all of the registry's.
	Capabilities []string
	// Slots is how many tasks run at once; the worker never holds more
	// unfinished tasks than that. 0 means the host-derived pool size:
	// CPUs × 2 in [8, 64] (a worker's tasks mostly wait: on a model, on
	// the network).
	Slots int
	// Guard, if set, stops the worker from pulling while it blocks (the
	// board is hot, memory is short): tasks go to the other workers, or
	// wait. Tasks already running go on.
	Guard Guard
	// Status, if set, is called for each heartbeat (from the worker's
	// own goroutine) to report the device's mode and temperature.
	Status func() Status
	// PollInterval is how often an idle worker pulls even without a
	// doorbell (tasks published while it was disconnected). Default 1s.
	PollInterval time.Duration
	// DrainTimeout is how long Run waits, after its context ends, for the
	// tasks in progress; those still running are then cancelled and
	// handed back to the queue for another worker. Default 10s.
	DrainTimeout time.Duration
	// MaxValueBytes and InlineOnly bound the values of results as the
	// CoordinatorOptions fields of the same name bound those of tasks. A
	// value the function writes in parts is refused by the Write that
	// takes it past MaxValueBytes (a permanent *limit.Error), before it
	// fills SpoolDir.
	MaxValueBytes int64
	InlineOnly    bool
	// SpoolDir is where a task's values too large for a message (those
	// from the object store, and those its function writes in parts with
	// dag.NewValueWriter) are kept while it runs, in files that are
	// unlinked at once: such a value is never held whole in memory. Empty
	// means os.TempDir(); on a board whose /tmp is a tmpfs that is RAM, so
	// give a directory on the storage device (NewWorker logs a warning
	// when it is empty and os.TempDir() is in RAM).
	SpoolDir string
	// Logger receives the worker's diagnostics; nil discards them.
	Logger *slog.Logger
}

// WorkerStats counts what a worker did since it started.
type WorkerStats struct {
	Taken      uint64 // deliveries pulled
	Done       uint64 // tasks whose success this worker recorded
	Failed     uint64 // tasks whose failure this worker recorded
	Duplicates uint64 // deliveries of a node whose result was already recorded
	Rejected   uint64 // malformed task messages, recorded and terminated
	Returned   uint64 // tasks handed back to the queue (drain)
	Paused     uint64 // times the guard stopped the worker from pulling
}

// Worker runs the tasks of the capabilities it serves: it pulls only as
// many as it has free slots, and none while its Guard blocks; it sends
// in-progress acknowledgements while a task runs, records each result once
// and replies to the coordinator; it publishes a heartbeat to the fleet
// bucket. Run owns every goroutine (the pull loop, one per running task,
// and a keeper for heartbeats, in-progress acknowledgements and
// cancellations) and returns after stopping them. Methods other than Run are
// safe for concurrent use.
type Worker struct {
	nc     *nats.Conn
	reg    *Registry
	opts   WorkerOptions
	id     string
	caps   []string
	logger *slog.Logger
	host   string

	started atomic.Bool
	stats   struct {
		taken, done, failed, dups, rejected, returned, paused atomic.Uint64
	}
	busy      atomic.Int64
	slotFreed chan struct{} // capacity 1
	ready     chan struct{} // closed once Run serves

	// mu guards running and paused.
	mu      sync.Mutex
	running map[string]*runningTask // by task ID
	paused  string
}

type runningTask struct {
	msg      jetstream.Msg
	t        *task
	cancel   context.CancelCauseFunc
	deadline time.Time // zero: none
	warned   bool      // guarded by Worker.mu
}

// NewWorker returns a worker for the functions of reg, over nc. It checks
// the options and starts nothing: call Run.
func NewWorker(nc *nats.Conn, reg *Registry, opts WorkerOptions) (*Worker, error) {
	if nc == nil || reg == nil {
		return nil, errors.New("remote: NewWorker: nil connection or registry")
	}
	lay, err := opts.Layout.withDefaults()
	if err != nil {
		return nil, err
	}
	opts.Layout = lay
	switch {
	case opts.Slots < 0:
		return nil, fmt.Errorf("remote: WorkerOptions.Slots = %d: must be ≥ 0 (0 = the host's pool size)", opts.Slots)
	case opts.PollInterval < 0:
		return nil, fmt.Errorf("remote: WorkerOptions.PollInterval = %v: must be ≥ 0 (0 = %v)", opts.PollInterval, DefaultPollInterval)
	case opts.DrainTimeout < 0:
		return nil, fmt.Errorf("remote: WorkerOptions.DrainTimeout = %v: must be ≥ 0 (0 = %v)", opts.DrainTimeout, DefaultDrainTimeout)
	case opts.MaxValueBytes < 0:
		return nil, fmt.Errorf("remote: WorkerOptions.MaxValueBytes = %d: must be ≥ 0 (0 = %d)", opts.MaxValueBytes, DefaultMaxValueBytes)
	}
	opts.Slots = cmp.Or(opts.Slots, hostlimits.Detect().Pool)
	opts.PollInterval = cmp.Or(opts.PollInterval, DefaultPollInterval)
	opts.DrainTimeout = cmp.Or(opts.DrainTimeout, DefaultDrainTimeout)
	opts.MaxValueBytes = cmp.Or(opts.MaxValueBytes, DefaultMaxValueBytes)
	host, _ := os.Hostname()
	w := &Worker{nc: nc, reg: reg, opts: opts, id: opts.ID, logger: opts.Logger, host: host,
		slotFreed: make(chan struct{}, 1), ready: make(chan struct{}), running: map[string]*runningTask{}}
	if w.id == "" {
		w.id = fmt.Sprintf("%s-%d-%s", cmp.Or(host, "worker"), os.Getpid(), randomID()[:8])
	}
	if len(w.id) > 128 {
		return nil, fmt.Errorf("remote: WorkerOptions.ID is %d bytes: at most 128", len(w.id))
	}
	if w.logger == nil {
		w.logger = slog.New(slog.DiscardHandler)
	}
	if dir := os.TempDir(); opts.SpoolDir == "" {
		if inRAM, err := memfs.InRAM(dir); err == nil && inRAM {
			w.logger.Warn("remote: WorkerOptions.SpoolDir is empty and the temporary directory is in RAM (tmpfs): a large value a task spools takes memory; set SpoolDir to a directory on the storage device", "dir", dir)
		}
	}
	have := reg.Capabilities()
	w.caps = slices.Clone(opts.Capabilities)
	if len(w.caps) == 0 {
		w.caps = have
	}
	slices.Sort(w.caps)
	w.caps = slices.Compact(w.caps)
	if len(w.caps) == 0 {
		return nil, errors.New("remote: NewWorker: the registry has no function: nothing to serve")
	}
	for _, c := range w.caps {
		if !slices.Contains(have, c) {
			return nil, fmt.Errorf("remote: WorkerOptions.Capabilities: %q has no function in the registry (it has %q)", c, have)
		}
	}
	return w, nil
}

// ID returns the worker's ID.
func (w *Worker) ID() string { return w.id }

// Ready returns a channel closed once Run has set up the fleet's streams
// and consumers, subscribed, and published its first heartbeat: from then
// on the worker is in the fleet view and takes tasks.
func (w *Worker) Ready() <-chan struct{} { return w.ready }

// Stats returns the worker's counters.
func (w *Worker) Stats() WorkerStats {
	return WorkerStats{Taken: w.stats.taken.Load(), Done: w.stats.done.Load(), Failed: w.stats.failed.Load(),
		Duplicates: w.stats.dups.Load(), Rejected: w.stats.rejected.Load(), Returned: w.stats.returned.Load(),
		Paused: w.stats.paused.Load()}
}

// Run serves tasks until ctx ends, then stops pulling, gives the tasks in
// progress DrainTimeout to finish, cancels the others and hands them back
// to the queue, removes its heartbeat and returns nil. A function that
// ignores its cancellation for another DrainTimeout is abandoned: its
// goroutine is the only one Run leaves behind. It returns an error, naming the
// server, when the fleet's streams cannot be set up, and ErrClosed when
// called a second time.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return fmt.Errorf("remote: worker %s: Run called twice: %w", w.id, ErrClosed)
	}
	res, err := openResources(ctx, w.nc, w.opts.Layout)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it served
		}
		return err
	}
	cons := make([][numBands]jetstream.Consumer, len(w.caps))
	for i, c := range w.caps {
		for b := range numBands {
			if cons[i][b], err = res.consumer(ctx, c, b); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
	}
	bells := make(chan *nats.Msg, 64)
	cancels := make(chan *nats.Msg, 256)
	var subs []*nats.Subscription
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	for _, c := range w.caps {
		for subj, ch := range map[string]chan *nats.Msg{res.lay.bellSubject(c): bells, res.lay.cancelSubject(c): cancels} {
			s, err := w.nc.ChanSubscribe(subj, ch)
			if err != nil {
				return fmt.Errorf("remote: worker %s: subscribe %s: %w", w.id, subj, err)
			}
			subs = append(subs, s)
		}
	}

	// Tasks run under their own context, so that they may finish after
	// ctx ends (the drain).
	taskCtx, stopTasks := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopTasks(nil)
	var tasks sync.WaitGroup
	keeperStop := make(chan struct{})
	keeperDone := make(chan struct{})
	w.heartbeat(res)
	close(w.ready)
	go w.keep(res, cancels, keeperStop, keeperDone)

	w.pull(ctx, taskCtx, res, cons, bells, &tasks)

	// Drain.
	w.setPaused("draining")
	w.heartbeat(res)
	drained := make(chan struct{})
	go func() { tasks.Wait(); close(drained) }()
	timer := time.NewTimer(w.opts.DrainTimeout)
	select {
	case <-drained:
	case <-timer.C:
		stopTasks(errDraining)
		// Functions that ignore their context get one more
		// DrainTimeout; then they are abandoned, as the executor
		// abandons a stuck node, and their tasks go to other workers
		// after AckWait.
		timer.Reset(w.opts.DrainTimeout)
		select {
		case <-drained:
		case <-timer.C:
			w.logger.Warn("remote: worker stops with tasks whose function ignores its context", "worker", w.id, "running", w.busy.Load())
		}
	}
	timer.Stop()
	close(keeperStop)
	<-keeperDone
	dctx, cancel := context.WithTimeout(context.Background(), res.lay.AckWait)
	defer cancel()
	if err := res.fleet.Delete(dctx, peerKey(w.id)); err != nil {
		w.logger.Debug("remote: remove the heartbeat", "worker", w.id, "error", err)
	}
	return nil
}

// errDraining is the cause of the cancellation of tasks still running when
// the drain timeout ends.
var errDraining = errors.New("remote: worker draining")

// errWithdrawn is the cause of the cancellation of a task its coordinator
// gave up on.
var errWithdrawn = errors.New("remote: task withdrawn by its coordinator")

// pull is the worker's main loop: while there are free slots and the guard
// allows, fetch tasks, higher bands first.
func (w *Worker) pull(ctx, taskCtx context.Context, res *resources, cons [][numBands]jetstream.Consumer,
	bells <-chan *nats.Msg, tasks *sync.WaitGroup) {
	poll := time.NewTimer(w.opts.PollInterval)
	defer poll.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	rang := false // the last wake-up was a doorbell
	for ctx.Err() == nil {
		free := w.opts.Slots - int(w.busy.Load())
		if free <= 0 {
			select {
			case <-w.slotFreed:
			case <-ctx.Done():
			}
			continue
		}
		if g := w.opts.Guard; g != nil {
			if err := g.Check(); err != nil {
				w.stats.paused.Add(1)
				w.setPaused(err.Error())
				w.heartbeat(res)
				w.logger.Info("remote: worker paused", "worker", w.id, "reason", err)
				werr := g.Wait(ctx)
				w.setPaused("")
				w.heartbeat(res)
				if werr != nil && ctx.Err() == nil {
					w.logger.Warn("remote: guard failed; waiting a poll interval", "worker", w.id, "error", werr)
					select {
					case <-poll.C:
						poll.Reset(w.opts.PollInterval)
					case <-ctx.Done():
					}
				}
				continue
			}
		}
		got, fetchErr := 0, error(nil)
		for b := 0; b < numBands && free > 0; b++ {
			for i := range cons {
				if free <= 0 {
					break
				}
				batch, err := cons[i][b].FetchNoWait(free)
				if err != nil {
					fetchErr = err
					continue
				}
				for m := range batch.Messages() {
					got++
					free--
					w.start(taskCtx, res, m, tasks)
				}
				if err := batch.Error(); err != nil {
					fetchErr = err
				}
			}
		}
		if got > 0 {
			rang = false
			continue
		}
		if fetchErr != nil && ctx.Err() == nil {
			w.logger.Debug("remote: fetch", "worker", w.id, "error", fetchErr)
		}
		// A doorbell comes after the server stored the task, but its
		// consumer may learn of it a moment later: a pull answered empty
		// right after a doorbell is tried once more, shortly.
		var again <-chan time.Time
		if rang {
			rang = false
			retry.Reset(2 * time.Millisecond)
			again = retry.C
		}
		select {
		case <-bells:
			for len(bells) > 0 { // one pull answers them all
				<-bells
			}
			rang = true
		case <-again:
		case <-poll.C:
			poll.Reset(w.opts.PollInterval)
		case <-ctx.Done():
		}
		if again != nil && !retry.Stop() {
			select { // drain a fired timer not received
			case <-retry.C:
			default:
			}
		}
	}
}

func (w *Worker) start(taskCtx context.Context, res *resources, m jetstream.Msg, tasks *sync.WaitGroup) {
	w.stats.taken.Add(1)
	w.busy.Add(1)
	tasks.Add(1)
	go func() {
		defer tasks.Done()
		defer func() {
			w.busy.Add(-1)
			select {
			case w.slotFreed <- struct{}{}:
			default:
			}
		}()
		w.handle(taskCtx, res, m)
	}()
}

func (w *Worker) setPaused(reason string) {
	w.mu.Lock()
	w.paused = reason
	w.mu.Unlock()
}

// keep sends heartbeats and in-progress acknowledgements, and cancels the
// tasks their coordinators withdraw, until stop is closed.
func (w *Worker) keep(res *resources, cancels <-chan *nats.Msg, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	beat := time.NewTicker(res.lay.StaleAfter / 4)
	defer beat.Stop()
	progress := time.NewTicker(res.lay.AckWait / 3)
	defer progress.Stop()
	for {
		select {
		case <-stop:
			return
		case <-beat.C:
			w.heartbeat(res)
		case <-progress.C:
			w.inProgress(res)
		case m := <-cancels:
			w.mu.Lock()
			rt := w.running[string(m.Data)]
			w.mu.Unlock()
			if rt != nil {
				rt.cancel(errWithdrawn)
			}
		}
	}
}

// inProgress tells JetStream that the running tasks are still being worked
// on, except those past their deadline by AckWait: their function ignores
// its context, and another worker should get the task.
func (w *Worker) inProgress(res *resources) {
	now := time.Now()
	w.mu.Lock()
	var ack []jetstream.Msg
	var stuck []*runningTask
	for _, rt := range w.running {
		if !rt.deadline.IsZero() && now.After(rt.deadline.Add(res.lay.AckWait)) {
			if !rt.warned {
				rt.warned = true
				stuck = append(stuck, rt)
			}
			continue
		}
		ack = append(ack, rt.msg)
	}
	w.mu.Unlock()
	for _, m := range ack {
		_ = m.InProgress()
	}
	for _, rt := range stuck {
		w.logger.Warn("remote: task function ignores its context; letting the task go to another worker", "worker", w.id, "node", rt.t.Node)
		w.recordLast(res, rt.t, fmt.Sprintf("worker %s: function %q did not return within its timeout and AckWait", w.id, rt.t.Func))
	}
}

// recordLast records why the latest delivery of t ended without an answer,
// for the *DeliveryError the coordinator reports after MaxDeliver.
func (w *Worker) recordLast(res *resources, t *task, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), res.lay.AckWait)
	defer cancel()
	if _, err := res.results.Put(ctx, lastKey(t.Run, t.Node, t.Attempt), []byte(why)); err != nil {
		w.logger.Debug("remote: record a delivery failure", "task", t.ID, "error", err)
	}
}

// heartbeat publishes the worker's Peer record.
func (w *Worker) heartbeat(res *resources) {
	p := Peer{ID: w.id, Host: w.host, Capabilities: w.caps, Slots: w.opts.Slots,
		Free: max(w.opts.Slots-int(w.busy.Load()), 0), Done: w.stats.done.Load(), Sent: time.Now()}
	w.mu.Lock()
	p.Paused = w.paused
	w.mu.Unlock()
	if w.opts.Status != nil {
		st := w.opts.Status()
		p.Mode, p.TemperatureC = st.Mode, st.TemperatureC
	}
	b, _ := json.Marshal(p) // plain fields: cannot fail
	ctx, cancel := context.WithTimeout(context.Background(), res.lay.StaleAfter/4)
	defer cancel()
	if _, err := res.fleet.Put(ctx, peerKey(w.id), b); err != nil {
		w.logger.Debug("remote: heartbeat", "worker", w.id, "error", err)
	}
}
