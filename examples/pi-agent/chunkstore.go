package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/paging"
)

// The State holds the chunks in blocks, so that the number of keys (each
// costs the pager's key index some 250 bytes of RAM) does not grow with
// the corpus by one per chunk: chunk n is in shard n % shards (the shard
// whose index node indexes it), at position n / shards of that shard, and
// a block holds perBlock consecutive positions of one shard, as a JSON
// array of chunks.

// chunkBlockBytes is about how many bytes of chunks a block holds.
const chunkBlockBytes = 256 << 10

// chunksPerBlock is how many chunks of size bytes make a block.
func chunksPerBlock(size int) int { return min(max(chunkBlockBytes/max(size, 1), 1), 256) }

func chunkBlockKey(shard, block int) string {
	return "chunks/" + strconv.Itoa(shard) + "/" + strconv.Itoa(block)
}

// chunkLocation is where chunk n is: the key of its block and its index
// there.
func chunkLocation(n, shards, perBlock int) (string, int) {
	pos := n / shards
	return chunkBlockKey(n%shards, pos/perBlock), pos % perBlock
}

// shardChunks is how many of total chunks shard k of shards holds.
func shardChunks(total, shards, k int) int {
	if k >= total {
		return 0
	}
	return (total-k-1)/shards + 1
}

// chunkWriter stores chunks numbered 0, 1, … in their blocks, holding at
// most one block per shard.
type chunkWriter struct {
	s        dag.State
	shards   int
	perBlock int
	blocks   [][]chunk // the block being filled, per shard
	next     []int     // the number of that block, per shard
	n        int       // chunks written
}

func newChunkWriter(s dag.State, shards, perBlock int) *chunkWriter {
	return &chunkWriter{s: s, shards: shards, perBlock: perBlock, blocks: make([][]chunk, shards), next: make([]int, shards)}
}

// add stores the next chunk: text, of document doc named name.
func (w *chunkWriter) add(doc int, name, text string) error {
	k := w.n % w.shards
	w.blocks[k] = append(w.blocks[k], chunk{N: w.n, Doc: doc, Name: name, Text: text})
	w.n++
	if len(w.blocks[k]) == w.perBlock {
		return w.flush(k)
	}
	return nil
}

func (w *chunkWriter) flush(k int) error {
	if len(w.blocks[k]) == 0 {
		return nil
	}
	if err := dag.PutJSON(w.s, chunkBlockKey(k, w.next[k]), w.blocks[k]); err != nil {
		return err
	}
	w.blocks[k], w.next[k] = w.blocks[k][:0], w.next[k]+1
	return nil
}

// close stores the blocks not yet full.
func (w *chunkWriter) close() error {
	for k := range w.shards {
		if err := w.flush(k); err != nil {
			return err
		}
	}
	return nil
}

// checkLayout refuses chunks stored for another number of shards (or by a
// pi-agent that stored one value per chunk).
func (cs chunkStats) checkLayout(shards int) error {
	if cs.PerBlock <= 0 || cs.Shards != shards {
		return dag.Permanent(fmt.Errorf("the chunks were stored for %d shards, %d per block, not for --shards %d: start a new run", cs.Shards, cs.PerBlock, shards))
	}
	return nil
}

// getChunk reads chunk n.
func getChunk(s dag.State, cs chunkStats, n int) (chunk, error) {
	key, i := chunkLocation(n, cs.Shards, cs.PerBlock)
	block, err := dag.GetJSON[[]chunk](s, key)
	if err != nil {
		return chunk{}, err
	}
	if i >= len(block) || block[i].N != n {
		return chunk{}, fmt.Errorf("chunk %d: not in its block %s", n, key)
	}
	return block[i], nil
}

// valueWriter streams one value into a State.
type valueWriter interface {
	io.Writer
	// Close stores the value; Abort discards it.
	Close() error
	Abort()
}

// valueCreator is a State that stores a value as it is written (the pager).
type valueCreator interface {
	Create(key string) (*paging.ValueWriter, error)
}

// createValue returns a writer of the value under key: streamed into s
// when s can, else gathered and stored with Put on Close.
func createValue(s dag.State, key string) (valueWriter, error) {
	if c, ok := s.(valueCreator); ok {
		return c.Create(key)
	}
	return &bufferedValue{s: s, key: key}, nil
}

type bufferedValue struct {
	s   dag.State
	key string
	buf bytes.Buffer
}

func (b *bufferedValue) Write(p []byte) (int, error) { return b.buf.Write(p) }
func (b *bufferedValue) Close() error                { return b.s.Put(b.key, b.buf.Bytes()) }
func (b *bufferedValue) Abort()                      { b.buf.Reset() }

// writeErr remembers the first error of w, so that a caller can tell it
// from the errors of what it reads.
type writeErr struct {
	w   io.Writer
	err error
}

func (w *writeErr) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}
