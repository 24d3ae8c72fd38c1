package executor

import "context"

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
	return NodeInfo{RunID: nc.run.id, Node: nc.run.g.At(int(nc.idx)).ID, Attempt: int(nc.attempt)}, true
}

type nodeInfoKey struct{}

// nodeCtx is the context a node attempt runs with: the run's context plus
// the node's identity. The first attempt of every node uses a nodeCtx from
// one array allocated per run, so it costs no allocation.
type nodeCtx struct {
	context.Context
	run     *run
	idx     int32
	attempt int32
}

func (c *nodeCtx) Value(key any) any {
	if _, ok := key.(nodeInfoKey); ok {
		return c
	}
	return c.Context.Value(key)
}
