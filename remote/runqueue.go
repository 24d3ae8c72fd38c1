package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cemaf-go/cemaf/limit"
)

// RunQueueOptions configures OpenRunQueue. The zero value means the
// defaults.
type RunQueueOptions struct {
	// Layout names the fleet's streams; the run queue is the stream
	// <PREFIX>_RUNS, its results share the results bucket.
	Layout Layout
	// MaxQueued bounds the runs waiting in the queue, over all kinds;
	// Submit fails with a *limit.Error (Kind limit.Queue) beyond it.
	// Default 1,024.
	MaxQueued int
}

// RunQueue is a queue of whole runs that several services share: a request
// accepted by one device is submitted, and any device with capacity takes
// it, runs it and records its outcome, which the submitter waits for.
// A service's admission can weigh the queue's Depth against the fleet's
// capacity (Fleet.Capacity of the capabilities its runs need) before it
// submits. It is safe for concurrent use and owns no goroutine.
type RunQueue struct {
	res  *resources
	opts RunQueueOptions
	name string
}

// RunRequest is a run taken from the queue. Its taker must call Done once
// (or let it be delivered again by not calling it: after AckWait another
// taker gets it), and InProgress at least every AckWait while it runs.
type RunRequest struct {
	ID    string
	Kind  string
	Input []byte
	// Delivery counts the deliveries of this request, from 1.
	Delivery int
	msg      jetstream.Msg
	q        *RunQueue
}

// OpenRunQueue creates (or opens) the run queue of opts.Layout on nc.
func OpenRunQueue(ctx context.Context, nc *nats.Conn, opts RunQueueOptions) (*RunQueue, error) {
	lay, err := opts.Layout.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.MaxQueued < 0 {
		return nil, fmt.Errorf("remote: RunQueueOptions.MaxQueued = %d: must be ≥ 0 (0 = 1024)", opts.MaxQueued)
	}
	if opts.MaxQueued == 0 {
		opts.MaxQueued = 1024
	}
	res, err := openResources(ctx, nc, lay)
	if err != nil {
		return nil, err
	}
	q := &RunQueue{res: res, opts: opts, name: strings.ToUpper(lay.Prefix) + "_RUNS"}
	_, err = res.js.Stream(ctx, q.name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = res.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: q.name, Description: "cemaf runs shared by services (work queue)",
			Subjects: []string{lay.Prefix + ".run.>"}, Retention: jetstream.WorkQueuePolicy,
			Storage: jetstream.FileStorage, Replicas: lay.Replicas, MaxAge: lay.ResultTTL, Duplicates: lay.Duplicates,
			MaxMsgs: int64(opts.MaxQueued), Discard: jetstream.DiscardNew,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("remote: create stream %s on %s: %w", q.name, res.url, err)
	}
	return q, nil
}

func queueFull(max int) error {
	return &limit.Error{Kind: limit.Queue, Subject: "run queue", Current: float64(max + 1), Limit: float64(max),
		Detail: "RunQueueOptions.MaxQueued runs are waiting"}
}

func runKey(id string) string     { return "run." + enc(id) }
func runFailKey(id string) string { return "runfail." + enc(id) }

// Submit queues a run of kind (a subject token: "answer", "index") under
// id, unique per request; submitting the same id again within
// Layout.Duplicates stores it once. It fails with a *limit.Error (Kind
// limit.Queue) when MaxQueued runs are waiting.
func (q *RunQueue) Submit(ctx context.Context, kind, id string, input []byte) error {
	if err := checkToken("kind", kind); err != nil {
		return fmt.Errorf("remote: submit run %q: %w", id, err)
	}
	if id == "" || len(id) > maxField {
		return fmt.Errorf("remote: submit run: id %q: must be 1 to %d bytes", id, maxField)
	}
	_, err := q.res.js.PublishMsg(ctx, &nats.Msg{Subject: q.res.lay.Prefix + ".run." + kind, Data: input,
		Header: nats.Header{"Cemaf-Run": []string{id}}}, jetstream.WithMsgID("run/"+id))
	if err != nil {
		// The server refuses with its ErrMaxMsgs text (DiscardNew).
		if strings.Contains(err.Error(), "maximum messages exceeded") {
			return fmt.Errorf("remote: submit run %q: %w", id, queueFull(q.opts.MaxQueued))
		}
		return fmt.Errorf("remote: submit run %q to %s: %w", id, q.name, err)
	}
	return nil
}

// Depth returns how many runs are waiting in the queue.
func (q *RunQueue) Depth(ctx context.Context) (int, error) {
	st, err := q.res.js.Stream(ctx, q.name)
	if err != nil {
		return 0, fmt.Errorf("remote: run queue %s: %w", q.name, err)
	}
	return int(st.CachedInfo().State.Msgs), nil
}

// Take waits for a run of kind and returns it, or ctx's cause. The caller
// runs one request at a time per call: Take pulls one.
func (q *RunQueue) Take(ctx context.Context, kind string) (*RunRequest, error) {
	if err := checkToken("kind", kind); err != nil {
		return nil, fmt.Errorf("remote: take run: %w", err)
	}
	cons, err := q.res.js.CreateOrUpdateConsumer(ctx, q.name, jetstream.ConsumerConfig{
		Durable: "runs_" + kind, FilterSubject: q.res.lay.Prefix + ".run." + kind,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: q.res.lay.AckWait, MaxDeliver: q.res.lay.MaxDeliver,
		Replicas: q.res.lay.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("remote: run queue consumer for %q: %w", kind, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, context.Cause(ctx)
		}
		wait := time.Second
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		if wait <= 0 {
			return nil, context.Cause(ctx)
		}
		b, err := cons.Fetch(1, jetstream.FetchMaxWait(wait))
		if err != nil {
			continue
		}
		for m := range b.Messages() {
			meta, err := m.Metadata()
			id := m.Headers().Get("Cemaf-Run")
			if err != nil || id == "" {
				_ = m.TermWithReason("malformed run request: no Cemaf-Run header")
				continue
			}
			return &RunRequest{ID: id, Kind: kind, Input: m.Data(), Delivery: int(meta.NumDelivered), msg: m, q: q}, nil
		}
	}
}

// InProgress tells the queue the run is still going, so that it is not
// given to another taker after AckWait.
func (r *RunRequest) InProgress() error { return r.msg.InProgress() }

// Done records the run's outcome (output, or runErr's text) once, first
// write wins, and removes the request from the queue.
func (r *RunRequest) Done(ctx context.Context, output []byte, runErr error) error {
	key, val := runKey(r.ID), output
	if runErr != nil {
		key, val = runFailKey(r.ID), []byte(runErr.Error())
	}
	if _, err := r.q.res.results.Create(ctx, key, val); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		_ = r.msg.Nak()
		return fmt.Errorf("remote: record run %q: %w", r.ID, err)
	}
	return r.msg.DoubleAck(ctx) // confirmed: the request has left the queue when Done returns
}

// RunFailedError is the recorded failure of a run taken from the queue.
type RunFailedError struct {
	ID      string
	Message string
}

// Error names the run and its failure.
func (e *RunFailedError) Error() string {
	return fmt.Sprintf("remote: run %q failed: %s", e.ID, e.Message)
}

// Result waits for the outcome of run id: its output, a *RunFailedError, or
// ctx's cause.
func (q *RunQueue) Result(ctx context.Context, id string) ([]byte, error) {
	w, err := q.res.results.WatchFiltered(ctx, []string{runKey(id), runFailKey(id)})
	if err != nil {
		return nil, fmt.Errorf("remote: watch run %q: %w", id, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("remote: watch run %q: stopped", id)
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if e.Key() == runFailKey(id) {
				return nil, &RunFailedError{ID: id, Message: string(e.Value())}
			}
			return e.Value(), nil
		}
	}
}
