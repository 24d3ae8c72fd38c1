package executor

import (
	"context"
	"time"
)

// NodeInfo describes the node attempt a context belongs to.
type NodeInfo struct {
	RunID   string
	Node    string
	Attempt int
}

// IdempotencyKey is stable for a node within a run: the same on every
// attempt and after the run is resumed from a checkpoint. Node code can use
// it to make side effects exactly-once (for example as an HTTP
// Idempotency-Key, or a unique row key).
func (i NodeInfo) IdempotencyKey() string { return i.RunID + "/" + i.Node }

// NodeInfoFrom returns the NodeInfo of the node attempt whose context is ctx
// (or a context derived from it).
func NodeInfoFrom(ctx context.Context) (NodeInfo, bool) {
	nc, ok := ctx.Value(nodeInfoKey{}).(*nodeCtx)
	if !ok {
		return NodeInfo{}, false
	}
	return NodeInfo{RunID: nc.ref.id, Node: nc.ref.g.At(int(nc.idx)).ID, Attempt: int(nc.attempt)}, true
}

type nodeInfoKey struct{}

// nodeCtx is the context a node attempt runs with: the run's context plus
// the node's identity. The first attempt of every node uses a nodeCtx from
// one array allocated per run (16 bytes a node). Node contexts are never
// reused by a later run: a goroutine a node left behind keeps a context
// that ends with its own run (Done always returns the same channel).
type nodeCtx struct {
	ref     *runRef
	idx     int32
	attempt int32
}

// Deadline is the run's.
func (c *nodeCtx) Deadline() (time.Time, bool) { return c.ref.ctx.Deadline() }

// Done is the run's.
func (c *nodeCtx) Done() <-chan struct{} { return c.ref.ctx.get().Done() }

// Err is the run's (it does not make the run's context: runContext.err).
func (c *nodeCtx) Err() error { return c.ref.ctx.err() }

// Value returns the node's identity for nodeInfoKey, else the run's value.
func (c *nodeCtx) Value(key any) any {
	if _, ok := key.(nodeInfoKey); ok {
		return c
	}
	return c.ref.ctx.get().Value(key)
}

// String names the node, for debugging.
func (c *nodeCtx) String() string {
	return "executor.nodeContext(" + c.ref.id + "/" + c.ref.g.At(int(c.idx)).ID + ")"
}
