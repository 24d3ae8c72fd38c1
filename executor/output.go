package executor

import (
	"context"
	"time"
)

// Chunk is partial output of a running node.
type Chunk struct {
	Kind string // "token", "progress", "waiting", or an application-defined kind
	Text string
}

// Chunk kinds used by the module. Applications may define their own.
const (
	ChunkToken    = "token"    // a piece of generated text, such as LLM tokens
	ChunkProgress = "progress" // how far the node has got, in words
	ChunkWaiting  = "waiting"  // what the node is waiting for
)

// maxQueuedChunks bounds how many undelivered chunks of one node the run
// queues between two deliveries; past it, a chunk of the same kind and
// attempt as the node's last queued one is appended to that one's Text.
const maxQueuedChunks = 64

// Emit sends c to the observers of the run that ctx's node belongs to, after
// the node's NodeStarted event and before its final event, in the order of
// Emit calls. It never blocks on observers. It reports false when ctx is not
// a node's context (no run to deliver to).
//
// Each chunk is delivered as a NodeOutput event whose Chunk is c and whose
// Attempt is the attempt that emitted it. Nothing is dropped: when an
// observer is slow and more than a few dozen chunks of a node wait for it,
// consecutive chunks of the same node, attempt and kind are coalesced into
// one event whose Text is their concatenation. Chunks are not checkpointed.
//
// Emit may be called from any goroutine with a context derived from the
// node's. Once the attempt has finished (returned, or been abandoned), Emit
// drops c and reports false: a goroutine the node left running cannot add
// output after the node's final event. With no observer, Emit only checks
// that the attempt is running. Cost: a context lookup and an atomic load;
// with observers, also one lock of the run, time.Now and an append to the
// run's event queue (no allocation once the queue has grown).
func Emit(ctx context.Context, c Chunk) bool {
	nc, ok := ctx.Value(nodeInfoKey{}).(*nodeCtx)
	if !ok {
		return false
	}
	return nc.ref.output(nc, c)
}

// outState is a node's queue bookkeeping for coalescing, valid for one
// delivery epoch. Guarded by run.mu.
type outState struct {
	epoch  uint32
	queued int32 // this node's chunks in run.events
	last   int32 // index in run.events of its last queued chunk
	// buf accumulates the Text of a coalesced chunk (run.events[last]), so
	// that appending to it costs amortised O(len(Text)); takeEvents turns
	// it into the event's Text.
	buf []byte
}

// output queues c from attempt nc of run f, unless that attempt has
// finished.
func (f *runRef) output(nc *nodeCtx, c Chunk) bool {
	// The slots may have gone back to the pool with the run object; the
	// token carries the buffers' generation, so it cannot match then.
	sl := &f.slots[nc.idx]
	running := f.tok(nc.attempt)
	if !f.observed {
		return sl.token.Load() == running
	}
	now := f.now()
	r := f.r
	r.mu.Lock()
	// The token is checked under mu: an attempt's end is reported under mu
	// after its token changes, so a chunk accepted here precedes the
	// attempt's final event. Once the run has ended, r may be another
	// run's.
	if f.ended || sl.token.Load() != running {
		r.mu.Unlock()
		return false
	}
	r.queueChunk(nc.idx, nc.attempt, c, now)
	kicked := r.kick
	r.kick = true
	r.mu.Unlock()
	if !kicked {
		r.signal()
	}
	return true
}

// queueChunk appends c to the event queue, or coalesces it into the node's
// last queued chunk when the node has too many queued. Called with mu held.
func (r *run) queueChunk(i, attempt int32, c Chunk, now time.Time) {
	if r.out == nil {
		r.out = make([]outState, r.g.Len())
	}
	o := &r.out[i]
	if o.epoch != r.epoch {
		o.epoch, o.queued, o.buf = r.epoch, 0, o.buf[:0]
	}
	if o.queued >= maxQueuedChunks {
		last := &r.events[o.last]
		if last.Chunk.Kind == c.Kind && last.Attempt == int(attempt) {
			if len(o.buf) == 0 {
				o.buf = append(o.buf, last.Chunk.Text...)
				r.coalesced = append(r.coalesced, i)
			}
			o.buf = append(o.buf, c.Text...)
			return
		}
		r.flushCoalesced(o)
	}
	o.last = int32(len(r.events))
	o.queued++
	r.events = append(r.events, Event{Kind: NodeOutput, RunID: r.id, Node: r.res.Nodes[i].ID, Attempt: int(attempt), Time: now, Chunk: c})
}

// flushCoalesced sets the Text of o's coalesced chunk from its buffer.
// Called with mu held.
func (r *run) flushCoalesced(o *outState) {
	if len(o.buf) == 0 {
		return
	}
	r.events[o.last].Chunk.Text = string(o.buf)
	if cap(o.buf) > 64<<10 {
		o.buf = nil // do not keep a large buffer for the rest of the run
	} else {
		o.buf = o.buf[:0]
	}
}

// takeEvents returns the queued events for delivery and makes spare the
// new queue, starting a new coalescing epoch. Called with mu held.
func (r *run) takeEvents(spare []Event) []Event {
	for _, i := range r.coalesced {
		if o := &r.out[i]; o.epoch == r.epoch {
			r.flushCoalesced(o)
		}
	}
	r.coalesced = r.coalesced[:0]
	r.epoch++
	evs := r.events
	r.events = spare[:0]
	return evs
}
