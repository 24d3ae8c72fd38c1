package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/cemaf-go/cemaf/dag"
)

// index builds the postings of shard k: the chunks n with n % Shards == k,
// read block by block. Each term's postings are stored under their own key,
// so that retrieval pages in only the terms of the question. The postings
// are gathered in RAM up to a bound (postingBuffer); past it they are
// spilled to the State in sorted runs, merged term by term at the end.
func (spec agentSpec) index(ctx context.Context, s dag.State, k int) error {
	cs, err := dag.GetJSON[chunkStats](s, keyChunks)
	if err != nil {
		return err
	}
	if err := cs.checkLayout(spec.Shards); err != nil {
		return err
	}
	pb := newPostingBuilder(s, k, postingBuffer(s, spec.Shards))
	var st shardStats
	tf := map[string]int{}
	var toks []string
	count := shardChunks(cs.Chunks, cs.Shards, k)
	for b := 0; b*cs.PerBlock < count; b++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		block, err := dag.GetJSON[[]chunk](s, chunkBlockKey(k, b))
		if err != nil {
			return err
		}
		for _, c := range block {
			clear(tf)
			var cut int
			toks, cut = appendTokens(toks[:0], c.Text)
			st.Cut += cut
			for _, t := range toks {
				tf[t]++
			}
			for t, f := range tf {
				pb.add(t, c.N, f, len(toks))
			}
			st.Chunks++
			st.TotalLen += int64(len(toks))
		}
		if err := pb.spillIfFull(); err != nil {
			return err
		}
	}
	if st.Terms, err = pb.finish(ctx); err != nil {
		return err
	}
	return dag.PutJSON(s, statsKey(k), st)
}

// memoryLimited is a State with a RAM budget (the pager).
type memoryLimited interface{ MemoryLimit() int64 }

// postingBuffer is how many bytes of postings one index node gathers in
// RAM before spilling them: an eighth of the State's budget shared by the
// shards, in [256 KiB, 32 MiB].
func postingBuffer(s dag.State, shards int) int {
	budget := int64(16 << 20)
	if m, ok := s.(memoryLimited); ok && m.MemoryLimit() > 0 {
		budget = m.MemoryLimit()
	}
	return int(min(max(budget/8/int64(max(shards, 1)), 256<<10), 32<<20))
}

func postingRunKey(shard, run int) string {
	return fmt.Sprintf("postings-run/%d/%d", shard, run)
}

// postingBuilder gathers the postings of one shard: for each term, the
// chunks (in increasing order) it occurs in, as uvarints chunk, term
// frequency, chunk length.
type postingBuilder struct {
	s     dag.State
	shard int
	limit int
	buf   map[string][]byte
	bytes int // what buf holds, roughly
	runs  int
}

func newPostingBuilder(s dag.State, shard, limit int) *postingBuilder {
	return &postingBuilder{s: s, shard: shard, limit: limit, buf: map[string][]byte{}}
}

func (b *postingBuilder) add(term string, n, tf, length int) {
	p, ok := b.buf[term]
	if !ok {
		b.bytes += len(term) + 64 // the map entry
	}
	c := cap(p)
	p = binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(p, uint64(n)), uint64(tf)), uint64(length))
	b.bytes += cap(p) - c
	b.buf[term] = p
}

func (b *postingBuilder) spillIfFull() error {
	if b.bytes < b.limit {
		return nil
	}
	return b.spill()
}

// spill writes what buf holds as one run: records of uvarint length,
// term, uvarint length, postings, in term order.
func (b *postingBuilder) spill() error {
	vw, err := createValue(b.s, postingRunKey(b.shard, b.runs))
	if err != nil {
		return err
	}
	// w keeps the first error of vw, which Flush returns.
	w := bufio.NewWriterSize(vw, 64<<10)
	var hdr []byte
	for _, t := range slices.Sorted(maps.Keys(b.buf)) {
		p := b.buf[t]
		hdr = binary.AppendUvarint(hdr[:0], uint64(len(t)))
		hdr = append(hdr, t...)
		hdr = binary.AppendUvarint(hdr, uint64(len(p)))
		w.Write(hdr)
		w.Write(p)
	}
	if err := w.Flush(); err != nil {
		vw.Abort()
		return err
	}
	if err := vw.Close(); err != nil {
		return err
	}
	b.runs++
	b.buf, b.bytes = map[string][]byte{}, 0
	return nil
}

// finish stores the postings of every term and returns how many terms
// there are.
func (b *postingBuilder) finish(ctx context.Context) (int, error) {
	if b.runs == 0 {
		for t, p := range b.buf {
			if err := b.s.Put(postingKey(b.shard, t), p); err != nil {
				return 0, err
			}
		}
		return len(b.buf), nil
	}
	if len(b.buf) > 0 {
		if err := b.spill(); err != nil {
			return 0, err
		}
	}
	terms, err := b.merge(ctx)
	if err != nil {
		return 0, err
	}
	for r := range b.runs {
		if err := b.s.Delete(postingRunKey(b.shard, r)); err != nil {
			return 0, err
		}
	}
	return terms, nil
}

// runReader reads the records of one run.
type runReader struct {
	r    *bufio.Reader
	term string
	size int64 // of the postings of term
	ok   bool
}

func (rr *runReader) next() error {
	n, err := binary.ReadUvarint(rr.r)
	if errors.Is(err, io.EOF) {
		rr.ok = false
		return nil
	}
	if err != nil {
		return err
	}
	t := make([]byte, n)
	if _, err := io.ReadFull(rr.r, t); err != nil {
		return err
	}
	size, err := binary.ReadUvarint(rr.r)
	if err != nil {
		return err
	}
	rr.term, rr.size, rr.ok = string(t), int64(size), true
	return nil
}

// mergeInRAM is the largest merged postings value assembled in RAM before
// it is stored; a larger one streams into the State.
const mergeInRAM = 256 << 10

// merge writes each term's postings: the concatenation of its postings in
// every run, in run order (chunk order).
func (b *postingBuilder) merge(ctx context.Context) (int, error) {
	runs := make([]*runReader, b.runs)
	for i := range runs {
		r, err := dag.NewValueReader(b.s, postingRunKey(b.shard, i))
		if err != nil {
			return 0, err
		}
		runs[i] = &runReader{r: bufio.NewReaderSize(r, 32<<10)}
		if err := runs[i].next(); err != nil {
			return 0, fmt.Errorf("postings run %d of shard %d: %w", i, b.shard, err)
		}
	}
	var buf []byte
	terms := 0
	for {
		if err := ctx.Err(); err != nil {
			return terms, err
		}
		term, total, found := "", int64(0), false
		for _, rr := range runs {
			switch {
			case !rr.ok:
			case !found || rr.term < term:
				term, total, found = rr.term, rr.size, true
			case rr.term == term:
				total += rr.size
			}
		}
		if !found {
			return terms, nil
		}
		if err := b.writeMerged(runs, term, total, &buf); err != nil {
			return terms, fmt.Errorf("postings of %q in shard %d: %w", term, b.shard, err)
		}
		terms++
	}
}

// writeMerged stores the postings of term, total bytes, from the runs
// positioned on it, and moves those runs to their next term.
func (b *postingBuilder) writeMerged(runs []*runReader, term string, total int64, buf *[]byte) error {
	key := postingKey(b.shard, term)
	var w io.Writer
	var vw valueWriter
	if total <= mergeInRAM {
		*buf = (*buf)[:0]
	} else {
		var err error
		if vw, err = createValue(b.s, key); err != nil {
			return err
		}
		w = vw
	}
	for _, rr := range runs {
		if !rr.ok || rr.term != term {
			continue
		}
		var err error
		if vw == nil {
			n := len(*buf)
			*buf = slices.Grow(*buf, int(rr.size))[:n+int(rr.size)]
			_, err = io.ReadFull(rr.r, (*buf)[n:])
		} else {
			_, err = io.CopyN(w, rr.r, rr.size)
		}
		if err == nil {
			err = rr.next()
		}
		if err != nil {
			if vw != nil {
				vw.Abort()
			}
			return err
		}
	}
	if vw == nil {
		return b.s.Put(key, *buf)
	}
	return vw.Close()
}

type posting struct{ chunk, tf, length int }

// postingReader reads the postings of one term in one shard, in chunk
// order.
type postingReader struct {
	r   *bufio.Reader
	cur posting
	ok  bool
}

func (pr *postingReader) next() error {
	var v [3]uint64
	for i := range v {
		x, err := binary.ReadUvarint(pr.r)
		if i == 0 && errors.Is(err, io.EOF) {
			pr.ok = false
			return nil
		}
		if err != nil {
			return errors.New("corrupt postings")
		}
		v[i] = x
	}
	pr.cur, pr.ok = posting{int(v[0]), int(v[1]), int(v[2])}, true
	return nil
}

// openPostings returns a reader of the postings of term in shard k, or
// nil when the shard has none.
func openPostings(s dag.State, k int, term string) (*postingReader, error) {
	r, err := dag.NewValueReader(s, postingKey(k, term))
	if errors.Is(err, dag.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pr := &postingReader{r: bufio.NewReaderSize(r, 16<<10)}
	if err := pr.next(); err != nil {
		return nil, fmt.Errorf("postings of %q in shard %d: %w", term, k, err)
	}
	return pr, nil
}

// countPostings is how many postings term has in shard k: every posting is
// three uvarints, and every uvarint ends with one byte below 0x80.
func countPostings(s dag.State, k int, term string) (int, error) {
	r, err := dag.NewValueReader(s, postingKey(k, term))
	if errors.Is(err, dag.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 32<<10)
	ends := 0
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if c < 0x80 {
				ends++
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if ends%3 != 0 {
		return 0, fmt.Errorf("postings of %q in shard %d: corrupt postings", term, k)
	}
	return ends / 3, nil
}
