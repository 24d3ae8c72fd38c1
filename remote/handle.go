package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/limit"
)

// Rejected is the record a worker keeps, in the results bucket under
// "bad.<stream sequence>", of a task message it could not decode.
type Rejected struct {
	Worker   string    `json:"worker"`
	Subject  string    `json:"subject"`
	Sequence uint64    `json:"sequence"`
	Bytes    int       `json:"bytes"`
	Error    string    `json:"error"`
	Time     time.Time `json:"time"`
}

// handle runs one delivery of a task to its end: recorded result, reply,
// acknowledgement; or, when the worker drains, back to the queue.
func (w *Worker) handle(taskCtx context.Context, res *resources, m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		w.reject(res, m, 0, fmt.Errorf("remote: task: metadata: %w: %w", err, ErrMalformed))
		return
	}
	t, err := decodeTask(m.Data())
	if err != nil {
		w.reject(res, m, meta.Sequence.Stream, err)
		return
	}
	delivery := int(meta.NumDelivered)
	ctx, cancel := context.WithCancelCause(taskCtx)
	defer cancel(nil)
	rt := &runningTask{msg: m, t: t, cancel: cancel}
	if t.TimeoutNs > 0 {
		rt.deadline = time.Now().Add(time.Duration(t.TimeoutNs))
		var c2 context.CancelFunc
		ctx, c2 = context.WithDeadline(ctx, rt.deadline)
		defer c2()
	}
	w.mu.Lock()
	w.running[t.ID] = rt
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		if w.running[t.ID] == rt {
			delete(w.running, t.ID)
		}
		w.mu.Unlock()
	}()

	// A redelivery of a node already finished (by this worker before a
	// lost ack, or by another): reply with the recorded result.
	if delivery > 1 {
		if e, err := res.results.Get(ctx, okKey(t.Run, t.Node)); err == nil {
			w.stats.dups.Add(1)
			w.ackThenReply(ctx, res, m, t, e.Value())
			return
		}
	}

	r := &result{TaskID: t.ID, Run: t.Run, Node: t.Node, Worker: w.id, Deliveries: delivery}
	var blobs []string
	fn, ok := w.reg.lookup(t.Capability, t.Func)
	if !ok {
		r.Status, r.Flags = statusFailed, flagUnknownFunc
		r.Message = fmt.Sprintf("function %q of capability %q: %v", t.Func, t.Capability, ErrUnknownFunc)
	} else {
		var runErr error
		blobs, runErr = w.execute(ctx, res, t, delivery, fn, r)
		if runErr != nil && errors.Is(context.Cause(ctx), errDraining) {
			// The worker stops: another worker gets the task at once.
			w.stats.returned.Add(1)
			w.recordLast(res, t, fmt.Sprintf("worker %s stopped (drain timeout) while running it", w.id))
			res.deleteBlobs(blobs)
			_ = m.Nak()
			return
		}
		if runErr != nil {
			r.Status, r.Outputs = statusFailed, nil
			r.Message = runErr.Error()
			if dag.IsPermanent(runErr) {
				r.Flags |= flagPermanent
			}
			if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				r.Flags |= flagTimeout
			}
			var pe *executor.PanicError
			if errors.As(runErr, &pe) {
				r.Flags |= flagPanic
			}
			var le *limit.Error
			if errors.As(runErr, &le) {
				r.Limit = le
			}
		}
	}
	data := r.encode()
	key := okKey(t.Run, t.Node)
	if r.Status != statusOK {
		key = failKey(t.Run, t.Node, t.Attempt)
	}
	// First write wins: a node's success is recorded once, whatever the
	// deliveries and workers; a later one is dropped and the recorded one
	// is what every waiter gets.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), res.lay.AckWait)
	defer rcancel()
	if _, err := res.results.Create(rctx, key, data); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			// Not recorded: let the task be delivered again.
			w.logger.Warn("remote: record a result", "worker", w.id, "task", t.ID, "error", err)
			res.deleteBlobs(blobs)
			_ = m.Nak()
			return
		}
		res.deleteBlobs(blobs)
		w.stats.dups.Add(1)
		if e, err := res.results.Get(rctx, key); err == nil {
			data = e.Value()
		}
	} else if r.Status == statusOK {
		w.stats.done.Add(1)
	} else {
		w.stats.failed.Add(1)
	}
	w.ackThenReply(rctx, res, m, t, data)
}

// ackThenReply acknowledges a delivery whose result is recorded, waits for
// the server to confirm it, then replies: a coordinator that has a node's
// result from the reply no longer finds its task in the queue
// (Coordinator.Backlog). Without the confirmation (a lost connection) it
// replies anyway: the result is recorded, and a redelivery is answered
// with it.
func (w *Worker) ackThenReply(ctx context.Context, res *resources, m jetstream.Msg, t *task, data []byte) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), res.lay.AckWait)
	defer cancel()
	if err := m.DoubleAck(actx); err != nil {
		w.logger.Debug("remote: acknowledge a task", "worker", w.id, "task", t.ID, "error", err)
	}
	w.reply(res, t, data)
}

// execute runs fn on the task's inputs and fills r's outputs (large values
// go to the object store; their names are returned for cleanup if the
// result loses the first write).
func (w *Worker) execute(ctx context.Context, res *resources, t *task, delivery int, fn dag.Func, r *result) ([]string, error) {
	st := &taskState{dir: w.opts.SpoolDir, node: t.Node, writes: t.Writes, maxValue: w.opts.MaxValueBytes, reads: make([]string, 0, len(t.Inputs))}
	defer st.release()
	for _, in := range t.Inputs {
		st.reads = append(st.reads, in.Key)
		switch in.Kind {
		case valueInline:
			if err := st.mem.Put(in.Key, in.Data); err != nil {
				return nil, err
			}
		case valueBlob:
			if err := res.spoolBlob(ctx, st, in.Key, in.Blob, in.Size, w.opts.MaxValueBytes); err != nil {
				return nil, fmt.Errorf("remote: node %q: input %q: %w", t.Node, in.Key, err)
			}
		}
	}
	info := TaskInfo{RunID: t.Run, Node: t.Node, Attempt: t.Attempt, Delivery: delivery, Worker: w.id}
	if err := call(context.WithValue(ctx, taskInfoKey{}, info), fn, st); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx) // returned nil after its context ended: not a result
	}
	outs, sizes := st.outputs()
	for i, o := range outs {
		if sizes[i] > w.opts.MaxValueBytes {
			return nil, outputTooLarge(t.Node, o.Key, sizes[i], w.opts.MaxValueBytes)
		}
	}
	r.Outputs = outs
	blobbed, err := placeValues(sizes, r.encodedSize()-entriesSize(outs)+entriesSize(nil), res.maxPayload, w.opts.InlineOnly)
	if err != nil {
		var le *limit.Error
		if errors.As(err, &le) && len(blobbed) > 0 {
			le.Subject = outs[blobbed[0]].Key
		}
		return nil, dag.Permanent(fmt.Errorf("remote: node %q: output %w", t.Node, err))
	}
	for i := range outs {
		o := &outs[i]
		if o.Kind != valueInline || slices.Contains(blobbed, i) {
			continue
		}
		if o.Data == nil && o.Size > 0 { // in a file, and small enough to go inline
			if o.Data, err = st.Get(o.Key); err != nil {
				return nil, fmt.Errorf("remote: node %q: output %q: %w", t.Node, o.Key, err)
			}
		}
		o.Size = 0
	}
	var blobs []string
	nonce := fmt.Sprintf("%s/%d", w.id, delivery)
	for _, i := range blobbed {
		o := &outs[i]
		name := "out/" + t.ID + "/" + nonce + "/" + o.Key
		size, parts, err := res.putBlob(ctx, name, st, o.Key)
		if err != nil {
			res.deleteBlobs(blobs)
			return nil, fmt.Errorf("remote: node %q: output %q: %w", t.Node, o.Key, err)
		}
		blobs = append(blobs, parts...)
		*o = entry{Key: o.Key, Kind: valueBlob, Blob: name, Size: size}
	}
	return blobs, nil
}

// outputTooLarge is the permanent error of an output value of size bytes
// over WorkerOptions.MaxValueBytes.
func outputTooLarge(node, key string, size, maxBytes int64) error {
	return dag.Permanent(fmt.Errorf("remote: node %q: output %w", node, &limit.Error{Kind: limit.MessageSize,
		Subject: key, Current: float64(size), Limit: float64(maxBytes), Unit: "bytes", Detail: "WorkerOptions.MaxValueBytes"}))
}

// call runs fn, turning a panic into an *executor.PanicError.
func call(ctx context.Context, fn dag.Func, s dag.State) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &executor.PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn(ctx, s)
}

// reply sends the recorded result to the task's coordinator. Replies are
// not durable: a coordinator that misses one reads the results bucket.
func (w *Worker) reply(res *resources, t *task, data []byte) {
	if t.Reply == "" {
		return
	}
	if err := res.nc.Publish(t.Reply, data); err != nil {
		w.logger.Debug("remote: reply", "worker", w.id, "task", t.ID, "error", err)
	}
}

// reject records a task message that cannot be decoded and terminates it:
// it is never delivered again and never panics the worker.
func (w *Worker) reject(res *resources, m jetstream.Msg, seq uint64, err error) {
	w.stats.rejected.Add(1)
	w.logger.Warn("remote: reject a malformed task", "worker", w.id, "subject", m.Subject(), "seq", seq, "error", err)
	rec := Rejected{Worker: w.id, Subject: m.Subject(), Sequence: seq, Bytes: len(m.Data()), Error: err.Error(), Time: time.Now()}
	b, _ := json.Marshal(rec)
	ctx, cancel := context.WithTimeout(context.Background(), res.lay.AckWait)
	defer cancel()
	if _, perr := res.results.Put(ctx, badKey(seq), b); perr != nil {
		w.logger.Debug("remote: record a rejected task", "error", perr)
	}
	_ = m.TermWithReason("malformed task: " + err.Error())
}

func (r *resources) deleteBlobs(names []string) {
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.lay.AckWait)
	defer cancel()
	for _, n := range names {
		_ = r.deleteObject(ctx, n)
	}
}
