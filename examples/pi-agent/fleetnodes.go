package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
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

// remoteIndexNode is index node n (shard k of shards) run by a worker.
func remoteIndexNode(c *remote.Coordinator, n dag.Node, k, shards int) (dag.Node, error) {
	in, out := fleetInKey(n.ID), fleetOutKey(n.ID)
	rn, err := c.Node(n, remote.Spec{Capability: capIndex, Func: "index", Reads: []string{in}, Writes: []string{out}})
	if err != nil {
		return dag.Node{}, err
	}
	wrapped := rn
	wrapped.Run = func(ctx context.Context, s dag.State) (err error) {
		packed, err := packShard(s, k, shards)
		if err != nil {
			return err
		}
		if err := s.Put(in, packed); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, s.Delete(in), s.Delete(out)) }()
		if err := rn.Run(ctx, s); err != nil {
			return err
		}
		r, err := dag.NewValueReader(s, out)
		if err != nil {
			return fmt.Errorf("node %s: the worker wrote no %s: %w", n.ID, out, err)
		}
		raw, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		p, err := decodePack(raw)
		if err != nil {
			return dag.Permanent(fmt.Errorf("node %s: the worker's %s: %w", n.ID, out, err))
		}
		for _, e := range p.entries {
			if err := s.Put(e.key, e.value); err != nil {
				return err
			}
		}
		return nil
	}
	return wrapped, nil
}

// packShard packs what index shard k of shards reads: the chunk
// statistics and the blocks of the chunks n with n % shards == k.
func packShard(s dag.State, k, shards int) ([]byte, error) {
	cs, err := dag.GetJSON[chunkStats](s, keyChunks)
	if err != nil {
		return nil, err
	}
	if err := cs.checkLayout(shards); err != nil {
		return nil, err
	}
	keys := []string{keyChunks}
	for b, count := 0, shardChunks(cs.Chunks, cs.Shards, k); b*cs.PerBlock < count; b++ {
		keys = append(keys, chunkBlockKey(k, b))
	}
	p := pack{shard: k, shards: shards}
	for _, key := range keys {
		v, err := s.Get(key)
		if err != nil {
			return nil, err
		}
		p.entries = append(p.entries, packEntry{key, v})
	}
	return p.encode(), nil
}

// indexTask is the worker's side of a remote index node.
func indexTask(ctx context.Context, s dag.State) error {
	info, ok := remote.TaskInfoFrom(ctx)
	if !ok {
		return dag.Permanent(errors.New("index task: no remote.TaskInfo in the context: it runs on a pi-agent worker"))
	}
	in := fleetInKey(info.Node)
	raw, err := s.Get(in)
	if err != nil {
		return dag.Permanent(fmt.Errorf("index task %s: %w", info.Node, err))
	}
	p, err := decodePack(raw)
	if err != nil {
		return dag.Permanent(fmt.Errorf("index task %s: %s: %w", info.Node, in, err))
	}
	if p.shards < 1 || p.shards > maxShards || p.shard >= p.shards {
		return dag.Permanent(fmt.Errorf("index task %s: shard %d of %d: want 0 ≤ shard < shards ≤ %d", info.Node, p.shard, p.shards, maxShards))
	}
	scratch := dag.NewMemoryState()
	given := map[string]bool{}
	for _, e := range p.entries {
		given[e.key] = true
		if err := scratch.Put(e.key, e.value); err != nil {
			return err
		}
	}
	if err := (agentSpec{Shards: p.shards}).index(ctx, scratch, p.shard); err != nil {
		return err
	}
	res := pack{shard: p.shard, shards: p.shards}
	keys := scratch.Keys()
	slices.Sort(keys)
	for _, k := range keys {
		if given[k] {
			continue
		}
		v, err := scratch.Get(k)
		if err != nil {
			return err
		}
		res.entries = append(res.entries, packEntry{k, v})
	}
	return s.Put(fleetOutKey(info.Node), res.encode())
}

// answerTask is the worker's side of the remote answer node: the answer
// node's function with the worker's answerer.
func answerTask(ans answerer) dag.Func {
	return func(ctx context.Context, s dag.State) error { return agentSpec{Answerer: ans}.answer(ctx, s) }
}

// pack is the values an index shard reads or writes, in one value:
//
//	"PIF1" uvarint(shard) uvarint(shards) uvarint(count)
//	count × (uvarint(len key) key uvarint(len value) value)
type pack struct {
	shard, shards int
	entries       []packEntry
}

type packEntry struct {
	key   string
	value []byte
}

const packMagic = "PIF1"

func (p pack) encode() []byte {
	var b bytes.Buffer
	b.WriteString(packMagic)
	var tmp [binary.MaxVarintLen64]byte
	uv := func(v int) { b.Write(tmp[:binary.PutUvarint(tmp[:], uint64(v))]) }
	uv(p.shard)
	uv(p.shards)
	uv(len(p.entries))
	for _, e := range p.entries {
		uv(len(e.key))
		b.WriteString(e.key)
		uv(len(e.value))
		b.Write(e.value)
	}
	return b.Bytes()
}

var errBadPack = errors.New("not a packed shard (corrupt or from another version)")

func decodePack(b []byte) (pack, error) {
	var p pack
	rest, ok := bytes.CutPrefix(b, []byte(packMagic))
	if !ok {
		return p, errBadPack
	}
	uv := func() (int, bool) {
		v, n := binary.Uvarint(rest)
		if n <= 0 || v > uint64(len(b))+maxShards { // no count or length is larger
			return 0, false
		}
		rest = rest[n:]
		return int(v), true
	}
	var count int
	if p.shard, ok = uv(); !ok {
		return p, errBadPack
	}
	if p.shards, ok = uv(); !ok {
		return p, errBadPack
	}
	if count, ok = uv(); !ok || count > len(rest) {
		return p, errBadPack
	}
	for range count {
		kl, ok := uv()
		if !ok || kl > len(rest) {
			return p, errBadPack
		}
		key := string(rest[:kl])
		rest = rest[kl:]
		vl, ok := uv()
		if !ok || vl > len(rest) {
			return p, errBadPack
		}
		p.entries = append(p.entries, packEntry{key, rest[:vl:vl]})
		rest = rest[vl:]
	}
	if len(rest) != 0 {
		return p, errBadPack
	}
	return p, nil
}
