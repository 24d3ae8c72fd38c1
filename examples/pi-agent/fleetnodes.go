package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/remote"
)

// How the agent's graph runs on a fleet (pi-agent run --nats): the index
// shards go to workers serving capIndex, the answer node to workers
// serving capLLM; load, chunk, retrieve and report stay on this device.
//
// A remote node declares the State keys it reads and writes, and an index
// shard reads a number of chunks known only once the corpus is chunked and
// writes one key per term. So an index node becomes a local node that packs
// its shard's chunks into one value (fleetInKey), runs the remote node over
// it, and unpacks the one value the worker wrote back (fleetOutKey) into
// the State. On the worker, indexTask unpacks the chunks into a State of
// its own, runs the very index function of a local run on it and packs what
// it wrote: the postings and the shard's statistics are those of a local
// run, and so is the answer.

func fleetInKey(node string) string  { return "fleet/" + node + "/in" }
func fleetOutKey(node string) string { return "fleet/" + node + "/out" }

// shardOf returns k for the ID of index node "index-k".
func shardOf(id string) (int, bool) {
	s, ok := strings.CutPrefix(id, "index-")
	if !ok {
		return 0, false
	}
	k, err := strconv.Atoi(s)
	return k, err == nil && k >= 0
}

// remoteGraph returns g with its index nodes and its answer node run by
// the fleet of c. The answer node's timeout is at least answerTimeout: the
// worker's answerer (an LLM with its own attempts) may take longer than
// this device's.
func remoteGraph(g *dag.Graph, c *remote.Coordinator, answerTimeout time.Duration) (*dag.Graph, error) {
	nodes := g.Nodes()
	shards := 0
	for _, n := range nodes {
		if _, ok := shardOf(n.ID); ok {
			shards++
		}
	}
	for i, n := range nodes {
		var err error
		if k, ok := shardOf(n.ID); ok {
			nodes[i], err = remoteIndexNode(c, n, k, shards)
		} else if n.ID == "answer" {
			n.Timeout = max(n.Timeout, answerTimeout)
			nodes[i], err = c.Node(n, remote.Spec{Capability: capLLM, Func: "answer", Reads: []string{keyRetrieval}, Writes: []string{keyAnswer}})
		}
		if err != nil {
			return nil, err
		}
	}
	return dag.New(nodes...)
}

// fleetMaxValueBytes bounds a value sent to or from a worker (an index
// shard's pack): both sides stream such values, so it bounds the object
// store's disk, not memory.
const fleetMaxValueBytes = 1 << 30

// remoteIndexNode is index node n (shard k of shards) run by a worker: the
// remote node runs on a shardView of the node's State, which sends the
// shard's chunks and takes the worker's postings in parts.
func remoteIndexNode(c *remote.Coordinator, n dag.Node, k, shards int) (dag.Node, error) {
	rn, err := c.Node(n, remote.Spec{Capability: capIndex, Func: "index", Reads: []string{fleetInKey(n.ID)}, Writes: []string{fleetOutKey(n.ID)}})
	if err != nil {
		return dag.Node{}, err
	}
	wrapped := rn
	wrapped.Run = func(ctx context.Context, s dag.State) error {
		v, err := newShardView(s, n.ID, k, shards, fleetMaxValueBytes)
		if err != nil {
			return err
		}
		if err := rn.Run(ctx, v); err != nil {
			return err
		}
		if !v.received() {
			return dag.Permanent(fmt.Errorf("node %s: the worker wrote no %s", n.ID, v.out))
		}
		return nil
	}
	return wrapped, nil
}

// indexTask is the worker's side of a remote index node: it reads the
// shard's pack in parts into a namespace of scratch (the worker's pager),
// runs the index function of a local run there, and writes the keys the
// function wrote, as a pack, in parts. The namespace is cleared when it
// ends.
func indexTask(scratch dag.State) dag.Func {
	return func(ctx context.Context, s dag.State) (err error) {
		info, ok := remote.TaskInfoFrom(ctx)
		if !ok {
			return dag.Permanent(errors.New("index task: no remote.TaskInfo in the context: it runs on a pi-agent worker"))
		}
		in := fleetInKey(info.Node)
		r, err := dag.NewValueReader(s, in)
		if err != nil {
			return dag.Permanent(fmt.Errorf("index task %s: %w", info.Node, err))
		}
		ns := newNamespace(scratch, "tasks/"+strings.ReplaceAll(info.RunID, "/", "_")+"/"+info.Node+"/"+strconv.Itoa(info.Delivery)+"/")
		defer func() { err = errors.Join(err, ns.Clear()) }()
		given := map[string]bool{}
		head := func(shard, shards int) error {
			if shards < 1 || shard >= shards {
				return dag.Permanent(fmt.Errorf("index task %s: shard %d of %d: want 0 ≤ shard < shards ≤ %d", info.Node, shard, shards, maxShards))
			}
			return nil
		}
		shard, shards, err := readPack(r, fleetMaxValueBytes, head, func(key string, value []byte) error {
			given[key] = true
			return ns.Put(key, value)
		})
		if errors.Is(err, errBadPack) {
			return dag.Permanent(fmt.Errorf("index task %s: %s: %w", info.Node, in, err))
		}
		if err != nil {
			return err
		}
		if err := (agentSpec{Shards: shards}).index(ctx, ns, shard); err != nil {
			return err
		}
		var keys []string
		for _, k := range ns.Keys() {
			if !given[k] {
				keys = append(keys, k)
			}
		}
		w, err := dag.NewValueWriter(s, fleetOutKey(info.Node))
		if err != nil {
			return err
		}
		if err := writePack(w, ns, shard, shards, keys); err != nil {
			w.Abort()
			return err
		}
		return w.Commit()
	}
}

// writePack writes the values of keys in s to w, as a pack.
func writePack(w io.Writer, s dag.State, shard, shards int, keys []string) error {
	p, err := newPackWriter(w, shard, shards, len(keys))
	if err != nil {
		return err
	}
	for _, k := range keys {
		v, err := s.Get(k)
		if err != nil {
			return err
		}
		if err := p.add(k, v); err != nil {
			return err
		}
	}
	return p.flush()
}

// answerTask is the worker's side of the remote answer node: the answer
// node's function with the worker's answerer.
func answerTask(ans answerer) dag.Func {
	return func(ctx context.Context, s dag.State) error { return agentSpec{Answerer: ans}.answer(ctx, s) }
}
