package remote

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/limit"
)

// msgHeadroom is what a task or result message needs beyond its body
// (headers, subject), subtracted from the server's max payload.
const msgHeadroom = 512

// remoteNode is the Run of a node made remote by Coordinator.Node.
type remoteNode struct {
	c    *Coordinator
	spec Spec
	fn   string
	band int
}

// run is one attempt of a remote node: reuse a result recorded before (a
// resumed run), else publish the task and wait for its result.
func (rn *remoteNode) run(ctx context.Context, s dag.State) error {
	info, ok := executor.NodeInfoFrom(ctx)
	if !ok {
		return dag.Permanent(ErrNoNodeInfo)
	}
	c := rn.c
	w, err := c.register(info.RunID, info.Node, info.Attempt)
	if err != nil {
		return err
	}
	defer c.unregister(w)
	// A result recorded earlier: a worker finished the node while this
	// run's coordinator was down, or this attempt failed before.
	if r, err := c.recorded(ctx, info.RunID, info.Node, 0); err != nil {
		return err
	} else if r != nil {
		return rn.finish(ctx, s, r, info.Attempt)
	}
	t, blobs, err := rn.build(ctx, s, info)
	if err != nil {
		return err
	}
	defer c.res.deleteBlobs(blobs)
	return rn.await(ctx, s, t, w)
}

// recorded returns the success of run/node, or the failure of the
// attempt (if attempt > 0), if either is in the results bucket.
func (c *Coordinator) recorded(ctx context.Context, run, node string, attempt int) (*result, error) {
	keys := []string{okKey(run, node)}
	if attempt > 0 {
		keys = append(keys, failKey(run, node, attempt))
	}
	for _, key := range keys {
		e, err := c.res.results.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			// Not connected, or the server is busy: the caller goes on
			// waiting (publishing waits for the connection) and reads
			// again later.
			c.logger.Debug("remote: read a recorded result", "node", node, "key", key, "error", err)
			return nil, nil
		}
		r, err := decodeResult(e.Value())
		if err != nil {
			return nil, fmt.Errorf("remote: node %q: recorded result %s: %w", node, key, err)
		}
		return r, nil
	}
	return nil, nil
}

// build makes the task of one attempt: the values of the declared reads,
// inline while the message fits in the server's max payload, the largest
// ones in the object store otherwise.
func (rn *remoteNode) build(ctx context.Context, s dag.State, info executor.NodeInfo) (*task, []string, error) {
	c := rn.c
	t := &task{
		ID: taskID(info.RunID, info.Node, info.Attempt), Run: info.RunID, Node: info.Node,
		Capability: rn.spec.Capability, Func: rn.fn, Reply: c.reply, Attempt: info.Attempt,
		Writes: rn.spec.Writes, Inputs: make([]entry, len(rn.spec.Reads)),
	}
	if dl, ok := ctx.Deadline(); ok {
		t.TimeoutNs = max(int64(time.Until(dl)), 1)
	}
	sizes := make([]int64, len(rn.spec.Reads))
	for i, k := range rn.spec.Reads {
		t.Inputs[i] = entry{Key: k, Kind: valueAbsent}
		n, ok := s.SizeOf(k)
		if !ok {
			sizes[i] = -1
			continue
		}
		if n > c.opts.MaxValueBytes {
			return nil, nil, dag.Permanent(fmt.Errorf("remote: node %q: input %w", info.Node,
				&limit.Error{Kind: limit.MessageSize, Subject: k, Current: float64(n), Limit: float64(c.opts.MaxValueBytes), Unit: "bytes",
					Detail: "CoordinatorOptions.MaxValueBytes"}))
		}
		sizes[i] = n
	}
	blobbed, err := placeValues(sizes, t.encodedSize(), c.res.maxPayload, c.opts.InlineOnly)
	if err != nil {
		var le *limit.Error
		if errors.As(err, &le) {
			le.Subject = rn.spec.Reads[blobbed[0]]
		}
		return nil, nil, dag.Permanent(fmt.Errorf("remote: node %q: input %w", info.Node, err))
	}
	var blobs []string
	for i, k := range rn.spec.Reads {
		if sizes[i] < 0 {
			continue
		}
		if slices.Contains(blobbed, i) {
			name := "in/" + t.ID + "/" + k
			size, parts, err := c.res.putBlob(ctx, name, s, k)
			if err != nil {
				c.res.deleteBlobs(blobs)
				return nil, nil, fmt.Errorf("remote: node %q: input %q: %w", info.Node, k, err)
			}
			blobs = append(blobs, parts...)
			t.Inputs[i] = entry{Key: k, Kind: valueBlob, Blob: name, Size: size}
			continue
		}
		v, err := s.Get(k)
		if errors.Is(err, dag.ErrNotFound) {
			continue // deleted since SizeOf
		}
		if err != nil {
			c.res.deleteBlobs(blobs)
			return nil, nil, fmt.Errorf("remote: node %q: read input %q: %w", info.Node, k, err)
		}
		t.Inputs[i] = entry{Key: k, Kind: valueInline, Data: v}
	}
	return t, blobs, nil
}

// placeValues decides which values go to the object store so that a
// message of base bytes plus the inline values fits in maxPayload: the
// largest first. sizes[i] < 0 marks an absent value. With inlineOnly, a
// message that does not fit fails with a *limit.Error for the largest
// value, whose index is returned first.
func placeValues(sizes []int64, base int, maxPayload int64, inlineOnly bool) ([]int, error) {
	budget := maxPayload - msgHeadroom
	total := int64(base)
	for _, n := range sizes {
		total += max(n, 0)
	}
	if total <= budget {
		return nil, nil
	}
	order := make([]int, 0, len(sizes))
	for i, n := range sizes {
		if n >= 0 {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return int(sizes[b] - sizes[a]) })
	if inlineOnly {
		if len(order) == 0 {
			return nil, &limit.Error{Kind: limit.MessageSize, Current: float64(total), Limit: float64(budget), Unit: "bytes"}
		}
		return order[:1], &limit.Error{Kind: limit.MessageSize, Current: float64(sizes[order[0]]), Limit: float64(budget), Unit: "bytes",
			Detail: fmt.Sprintf("the message would be %d bytes, over the server's max payload, and InlineOnly is set", total)}
	}
	var out []int
	for _, i := range order {
		if total <= budget {
			break
		}
		out = append(out, i)
		total -= sizes[i]
	}
	if total > budget {
		return nil, &limit.Error{Kind: limit.MessageSize, Current: float64(total), Limit: float64(budget), Unit: "bytes",
			Detail: "keys and IDs alone exceed the server's max payload"}
	}
	return out, nil
}

// await publishes t and waits for its result, re-publishing (with the
// same message ID, so JetStream stores it once) after a connection loss.
func (rn *remoteNode) await(ctx context.Context, s dag.State, t *task, w *waiter) error {
	c := rn.c
	data := t.encode()
	subject := c.res.lay.taskSubject(t.Capability, rn.band)
	var seq uint64
	defer func() {
		// A closed coordinator leaves its tasks queued for the one that
		// resumes the run (its closing may also have cancelled ctx).
		if seq != 0 && !c.closed.Load() {
			c.withdraw(t, seq)
		}
	}()
	lastReason := ""
	report := func() {
		if c.opts.OnWaiting == nil {
			return
		}
		capa := c.fleet.Capacity(t.Capability, c.now())
		if capa.Ready > 0 || capa.Reason == lastReason {
			return
		}
		lastReason = capa.Reason
		c.opts.OnWaiting(ctx, t.Node, capa.Reason)
	}
	poll := time.NewTimer(c.opts.PollInterval)
	defer poll.Stop()
	msgID := t.ID
	for {
		if seq == 0 {
			if err := c.Wait(ctx); err != nil {
				return err
			}
			ack, err := c.res.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data}, jetstream.WithMsgID(msgID))
			switch {
			case err == nil:
				seq = ack.Sequence
				_ = c.res.nc.Publish(c.res.lay.bellSubject(t.Capability), nil)
				if ack.Duplicate {
					// Published before, by this run's previous coordinator
					// or before a reconnection: it may have failed already.
					r, err := c.recorded(ctx, t.Run, t.Node, t.Attempt)
					if err != nil {
						return err
					}
					if r == nil && !c.queued(ctx, seq) {
						// The earlier task left the queue and no result
						// is recorded for it (a worker records before it
						// acknowledges: read again, for one that did so
						// meanwhile): it ran and its run was forgotten
						// (Forget). This one is published afresh, or it
						// would never run.
						if r, err = c.recorded(ctx, t.Run, t.Node, t.Attempt); err != nil {
							return err
						}
						if r == nil {
							seq, msgID = 0, t.ID+"/"+randomID()
							continue
						}
					}
					if r != nil {
						seq = 0
						return rn.finish(ctx, s, r, t.Attempt)
					}
				}
				report()
			case ctx.Err() != nil:
				return context.Cause(ctx)
			case errors.Is(err, nats.ErrMaxPayload):
				return dag.Permanent(fmt.Errorf("remote: node %q: task: %w", t.Node,
					&limit.Error{Kind: limit.MessageSize, Subject: t.Node, Current: float64(len(data)), Limit: float64(c.res.maxPayload), Unit: "bytes"}))
			default:
				c.logger.Debug("remote: publish a task, will retry", "task", t.ID, "error", err)
				if reason := "cannot publish the task: " + err.Error(); c.opts.OnWaiting != nil && reason != lastReason {
					lastReason = reason
					c.opts.OnWaiting(ctx, t.Node, reason)
				}
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case r := <-w.ch:
			seq = 0 // answered: nothing to withdraw
			return rn.finish(ctx, s, r, t.Attempt)
		case <-c.reconnectedChan():
		case <-poll.C:
			poll.Reset(c.opts.PollInterval)
			if seq != 0 {
				report()
			}
		case <-c.stop:
			seq = 0 // the task stays queued for a coordinator that resumes the run
			return fmt.Errorf("remote: node %q: coordinator: %w", t.Node, ErrClosed)
		}
		// Replies are not durable: after a reconnection, and now and
		// then, read the result from the bucket.
		if r, err := c.recorded(ctx, t.Run, t.Node, t.Attempt); err != nil {
			return err
		} else if r != nil {
			seq = 0
			return rn.finish(ctx, s, r, t.Attempt)
		}
	}
}

// queued reports whether the task stream still holds the message seq (a
// task not yet done); when that cannot be read, it reports true.
func (c *Coordinator) queued(ctx context.Context, seq uint64) bool {
	_, err := c.res.stream.GetMsg(ctx, seq)
	return !errors.Is(err, jetstream.ErrMsgNotFound)
}

// withdraw removes an unanswered task from the queue (the attempt ended:
// timeout, cancellation) and tells a worker running it to stop.
func (c *Coordinator) withdraw(t *task, seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), c.res.lay.AckWait)
	defer cancel()
	if err := c.res.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		c.logger.Debug("remote: withdraw a task", "task", t.ID, "error", err)
	}
	_ = c.res.nc.Publish(c.res.lay.cancelSubject(t.Capability), []byte(t.ID))
}

// finish turns a result into the node's outcome: a success writes its
// outputs into s, a failure becomes the node's error.
func (rn *remoteNode) finish(ctx context.Context, s dag.State, r *result, attempt int) error {
	if r.Status != statusOK {
		if _, ok := ctx.Deadline(); ok && r.Flags&flagTimeout != 0 {
			// The worker's deadline is the attempt's, measured from a
			// later start: the attempt's own ends first, and the executor
			// reports the node TimedOut as a local one.
			<-ctx.Done()
			return context.Cause(ctx)
		}
		err := r.toError(rn.spec.Capability, attempt)
		var te *TaskError
		if errors.As(err, &te) && te.Permanent {
			return dag.Permanent(err)
		}
		return err
	}
	for _, o := range r.Outputs {
		if !slices.Contains(rn.spec.Writes, o.Key) {
			return fmt.Errorf("remote: node %q: result from worker %q writes %q: %w", r.Node, r.Worker, o.Key, ErrUndeclaredKey)
		}
	}
	for _, o := range r.Outputs {
		var err error
		switch o.Kind {
		case valueInline:
			err = s.Put(o.Key, o.Data)
		case valueAbsent:
			err = s.Delete(o.Key)
		case valueBlob:
			err = rn.c.res.copyBlob(ctx, s, o.Key, o.Blob, o.Size, rn.c.opts.MaxValueBytes)
		}
		if err != nil {
			return fmt.Errorf("remote: node %q: write output %q: %w", r.Node, o.Key, err)
		}
	}
	return nil
}
