package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/cemaf-go/cemaf/dag"
)

// shardView is the State a remote index node runs on, on the device that
// runs the agent: s, where the value of in is the pack of the shard's
// chunk statistics and blocks, read in parts from s as the coordinator
// sends it (never assembled), and where the pack the worker writes to out
// is decoded into s as it arrives (out itself is never stored).
type shardView struct {
	dag.State
	node          string
	in, out       string
	shard, shards int
	maxValue      int64 // the longest value the worker's pack may hold

	segs []packSeg // the parts of in's value, in order
	size int64     // the length of in's value
	got  atomic.Bool
}

// packSeg is a part of a packed input: literal bytes, or the value of key
// in the State.
type packSeg struct {
	off int64 // where the part starts in the pack
	n   int64
	lit []byte
	key string
}

var (
	_ dag.RangeReader  = (*shardView)(nil)
	_ dag.ValueCreator = (*shardView)(nil)
)

// newShardView lays out the pack of shard k of shards over the chunk
// statistics and blocks in s.
func newShardView(s dag.State, node string, k, shards int, maxValue int64) (*shardView, error) {
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
	v := &shardView{State: s, node: node, in: fleetInKey(node), out: fleetOutKey(node), shard: k, shards: shards, maxValue: maxValue}
	v.addLit(appendPackHeader(nil, k, shards, len(keys)))
	for _, key := range keys {
		n, ok := s.SizeOf(key)
		if !ok {
			return nil, fmt.Errorf("node %s: chunk block %q: %w", node, key, dag.ErrNotFound)
		}
		v.addLit(appendEntryHead(nil, key, n))
		v.segs = append(v.segs, packSeg{off: v.size, n: n, key: key})
		v.size += n
	}
	return v, nil
}

func (v *shardView) addLit(b []byte) {
	v.segs = append(v.segs, packSeg{off: v.size, n: int64(len(b)), lit: b})
	v.size += int64(len(b))
}

func (v *shardView) SizeOf(key string) (int64, bool) {
	if key == v.in {
		return v.size, true
	}
	return v.State.SizeOf(key)
}

func (v *shardView) Get(key string) ([]byte, error) {
	if key != v.in {
		return v.State.Get(key)
	}
	b := make([]byte, v.size)
	if _, err := v.ReadAt(key, b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// ReadAt reads part of in's value from the State's values, through its
// RangeReader.
func (v *shardView) ReadAt(key string, p []byte, off int64) (int, error) {
	if key != v.in {
		return dag.ReadAt(v.State, key, p, off)
	}
	if off < 0 {
		return 0, fmt.Errorf("node %s: read %s at negative offset %d", v.node, key, off)
	}
	i := sort.Search(len(v.segs), func(i int) bool { return v.segs[i].off+v.segs[i].n > off })
	n := 0
	for ; n < len(p) && i < len(v.segs); i++ {
		sg := &v.segs[i]
		rel := off + int64(n) - sg.off
		want := int(min(int64(len(p)-n), sg.n-rel))
		if sg.lit != nil {
			n += copy(p[n:n+want], sg.lit[rel:])
			continue
		}
		m, err := dag.ReadAt(v.State, sg.key, p[n:n+want], rel)
		n += m
		if m < want {
			if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("%q is shorter than when its shard was laid out", sg.key)
			}
			return n, fmt.Errorf("node %s: read %s: %w", v.node, key, err)
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Put decodes the worker's pack into the State when key is out.
func (v *shardView) Put(key string, value []byte) error {
	if key != v.out {
		return v.State.Put(key, value)
	}
	return v.unpack(bytes.NewReader(value))
}

// Delete does nothing for in and out, which the State never holds.
func (v *shardView) Delete(key string) error {
	if key == v.in || key == v.out {
		return nil
	}
	return v.State.Delete(key)
}

// CreateValue decodes the worker's pack into the State as it is written,
// when key is out.
func (v *shardView) CreateValue(key string) (dag.ValueWriter, error) {
	if key != v.out {
		return dag.NewValueWriter(v.State, key)
	}
	pr, pw := io.Pipe()
	u := &unpacker{pw: pw, done: make(chan error, 1)}
	go func() {
		err := v.unpack(pr)
		pr.CloseWithError(cmpErr(err, errUnpacked))
		u.done <- err
	}()
	return u, nil
}

// errUnpacked ends the writes of a pack decoded to its end.
var errUnpacked = errors.New("the pack is decoded to its end")

func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// unpack decodes the worker's pack from r into the State, entry by entry.
// Only the shard's own index keys are accepted; a pack that holds another
// key fails, as a corrupt one does, at that key.
func (v *shardView) unpack(r io.Reader) error {
	head := func(shard, shards int) error {
		if shard != v.shard || shards != v.shards {
			return fmt.Errorf("%w: shard %d of %d, want %d of %d", errBadPack, shard, shards, v.shard, v.shards)
		}
		return nil
	}
	stats, postings := statsKey(v.shard), postingKey(v.shard, "")
	put := func(key string, value []byte) error {
		// The worker writes the keys of its shard's index and no other:
		// a pack cannot reach the corpus, another shard or the answer.
		if term, ok := strings.CutPrefix(key, postings); key != stats && (!ok || term == "") {
			return fmt.Errorf("%w: key %q is not of shard %d (want %q or %s<term>)", errBadPack, key, v.shard, stats, postings)
		}
		return v.State.Put(key, value)
	}
	_, _, err := readPack(r, v.maxValue, head, put)
	if errors.Is(err, errBadPack) {
		return dag.Permanent(fmt.Errorf("node %s: the worker's %s: %w", v.node, v.out, err))
	}
	if err != nil {
		return err
	}
	v.got.Store(true)
	return nil
}

// received reports whether the worker's pack was decoded.
func (v *shardView) received() bool { return v.got.Load() }

// unpacker is the writer of the worker's pack: each Write goes to the
// decoding goroutine, which Commit and Abort wait for.
type unpacker struct {
	pw    *io.PipeWriter
	done  chan error
	ended bool
}

func (u *unpacker) Write(p []byte) (int, error) {
	if u.ended {
		return 0, dag.ErrValueEnded
	}
	return u.pw.Write(p)
}

func (u *unpacker) Commit() error {
	if u.ended {
		return dag.ErrValueEnded
	}
	u.ended = true
	u.pw.Close()
	return <-u.done
}

func (u *unpacker) Abort() {
	if !u.ended {
		u.ended = true
		u.pw.CloseWithError(errors.New("aborted"))
		<-u.done
	}
}
