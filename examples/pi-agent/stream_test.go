package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf16"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/paging"
)

// randomText is text made of pieces that are hard on a streaming decoder
// and chunker: CR, CRLF, NULs, cut and invalid UTF-8, surrogates' bytes,
// paragraph breaks, headings, sentence ends, long words.
func randomText(r *rand.Rand, n int) []byte {
	pieces := []string{"word ", "Big. ", "x", " ", "\n", "\n\n", "\n\n\n", "# Head\n", "é", "\t", ". A",
		"\r", "\r\n", "\x00", "\xff", "\xe2\x82", "\xe2\x82\xac", "\xf0\x9d\x84\x9e", "\xd8", "\xdc",
		"longwordlongwordlongwordlongword"}
	var b []byte
	for range n {
		b = append(b, pieces[r.IntN(len(pieces))]...)
	}
	return b
}

// Decoding gives the same text and notes whatever the reads' sizes: a
// rune, a CRLF or a surrogate pair cut between two reads is decoded as a
// whole.
func TestDecodeTextToStreams(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		b := randomText(r, r.IntN(60))
		if i%100 == 0 {
			b = randomText(r, 40000) // past the sniffed start and one block
		}
		switch i % 4 {
		case 1:
			b = append([]byte{0xef, 0xbb, 0xbf}, b...)
		case 2:
			b = append([]byte{0xff, 0xfe}, b...)
		case 3:
			b = append([]byte{0xfe, 0xff}, b...)
		}
		var whole, pieces bytes.Buffer
		wn, ws, err := decodeTextTo(&whole, bytes.NewReader(b))
		require.NoError(t, err)
		pn, ps, err := decodeTextTo(&pieces, iotest.HalfReader(iotest.OneByteReader(bytes.NewReader(b))))
		require.NoError(t, err)
		require.Equal(t, ws, ps, "%q", b)
		require.Equal(t, wn, pn, "%q", b)
		require.Equal(t, whole.String(), pieces.String(), "%q", b)
	}
}

// UTF-16 with a surrogate pair cut between two blocks, an unpaired
// surrogate and an odd last byte converts as the whole file would.
func TestUTF16AcrossBlocks(t *testing.T) {
	text := strings.Repeat("a", decodeBlock/2-1) + "𝄞 b"
	units := utf16.Encode([]rune(text))
	b := []byte{0xff, 0xfe}
	for _, u := range units {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	b = binary.LittleEndian.AppendUint16(b, 0xd800) // unpaired
	b = append(b, 'x')                              // odd byte
	var out bytes.Buffer
	notes, skip, err := decodeTextTo(&out, bytes.NewReader(b))
	require.NoError(t, err)
	assert.Empty(t, skip)
	assert.True(t, notes.UTF16)
	assert.Equal(t, text+"\uFFFD\uFFFD", out.String())
}

// Chunking gives the same chunks whatever the reads' sizes, and the same
// as chunking the whole text.
func TestChunkStreamIsChunkText(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		text := strings.ToValidUTF8(strings.ReplaceAll(string(randomText(r, r.IntN(300))), "\r", ""), "?")
		size := 20 + r.IntN(300)
		want, wantCut := chunkText(text, size)
		var got []string
		cut, err := chunkStream(iotest.HalfReader(iotest.OneByteReader(strings.NewReader(text))), size, func(c string) error {
			got = append(got, c)
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, wantCut, cut)
		require.Equal(t, want, got, "size %d: %q", size, text)
	}
}

// A paragraph, or a line, far longer than chunkStream holds is chunked
// as it streams, into chunks of at most the chunk size, nothing lost.
func TestChunkStreamLongParagraph(t *testing.T) {
	const size = 900
	words := strings.Repeat("alpha beta gamma delta ", 3*maxParagraph(size)/23)
	for name, text := range map[string]string{
		"lines":   strings.Repeat("a line of a long paragraph\n", 3*maxParagraph(size)/27),
		"line":    words,
		"no-ws":   strings.Repeat("x", 3*maxParagraph(size)),
		"heading": "# Title\n\n" + words + "\n\nThe end.",
	} {
		t.Run(name, func(t *testing.T) {
			n := 0
			var letters int
			_, err := chunkStream(strings.NewReader(text), size, func(c string) error {
				n++
				assert.LessOrEqual(t, len(c), 2*size+len("# Title\n\n"), "chunk %d", n)
				letters += len(strings.Join(strings.Fields(c), ""))
				return nil
			})
			require.NoError(t, err)
			assert.Equal(t, len(strings.Join(strings.Fields(text), "")), letters, "every non-space byte is in a chunk")
		})
	}
}

// Spilled and merged postings are the postings gathered in RAM.
func TestPostingsSpillAndMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	terms := []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta"}
	type add struct {
		term     string
		n, tf, l int
	}
	var adds []add
	for n := range 5000 {
		for _, t := range terms {
			if r.IntN(3) == 0 {
				adds = append(adds, add{t, n, 1 + r.IntN(5), 10 + r.IntN(100)})
			}
		}
	}
	build := func(limit int) (dag.State, int, int) {
		s := dag.NewMemoryState()
		b := newPostingBuilder(s, 2, limit)
		for _, a := range adds {
			b.add(a.term, a.n, a.tf, a.l)
			if a.term == "zeta" {
				require.NoError(t, b.spillIfFull())
			}
		}
		n, err := b.finish(context.Background())
		require.NoError(t, err)
		return s, n, b.runs
	}
	inRAM, n1, runs1 := build(1 << 30)
	spilled, n2, runs2 := build(2 << 10)
	require.Zero(t, runs1)
	require.Greater(t, runs2, 3, "the small buffer spilled")
	assert.Equal(t, n1, n2)
	assert.Equal(t, inRAM.Keys(), spilled.Keys(), "the runs are deleted after the merge")
	for _, k := range inRAM.Keys() {
		a, _ := inRAM.Get(k)
		b, _ := spilled.Get(k)
		assert.Equal(t, a, b, k)
	}
}

// topChunks keeps what sorting every score and taking the first k would.
func TestTopChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 200 {
		k := 1 + r.IntN(10)
		top := topChunks{k: k}
		var all []scoredChunk
		for c := range r.IntN(200) {
			s := float64(r.IntN(20)) // many ties
			all = append(all, scoredChunk{c, s})
			top.add(c, s)
		}
		slices.SortFunc(all, func(a, b scoredChunk) int {
			return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.chunk, b.chunk))
		})
		assert.Equal(t, all[:min(k, len(all))], slices.Clip(top.best))
	}
}

// The retrieval does not depend on how the index is split or stored: one
// shard or seven, in RAM or in a pager of 1 MiB whose index nodes spill
// their postings.
func TestRetrievalIndependentOfShardsAndSpills(t *testing.T) {
	docs := t.TempDir()
	writeCorpus(t, docs, 3<<20)
	require.NoError(t, os.WriteFile(filepath.Join(docs, "notes.md"), []byte("# Valve\n\nThe valve log rotates at noon.\n"), 0o600))
	c, err := openCorpus(context.Background(), docs)
	require.NoError(t, err)
	retrieve := func(s dag.State, shards int) retrieval {
		spec := agentSpec{Question: "valve battery firmware rotates", Corpus: c, Shards: shards, ChunkSize: 900, TopK: 6}
		ctx := context.Background()
		require.NoError(t, spec.load(ctx, s))
		require.NoError(t, spec.chunk(ctx, s))
		for k := range shards {
			require.NoError(t, spec.index(ctx, s, k))
		}
		require.NoError(t, dag.PutJSON(s, keyQuestion, spec.Question))
		require.NoError(t, spec.retrieve(ctx, s))
		r, err := dag.GetJSON[retrieval](s, keyRetrieval)
		require.NoError(t, err)
		return r
	}
	want := retrieve(dag.NewMemoryState(), 1)
	require.Len(t, want.Hits, 6)
	for _, shards := range []int{3, 7} {
		t.Run(fmt.Sprint(shards, " shards"), func(t *testing.T) {
			assert.Equal(t, want, retrieve(dag.NewMemoryState(), shards))
			p, err := paging.Wrap(dag.NewMemoryState(), paging.Options{StoragePath: t.TempDir(), MemoryLimitMB: 1, LeaveGoMemoryLimit: true})
			require.NoError(t, err)
			defer p.Close()
			assert.Equal(t, want, retrieve(p, shards))
			assert.Positive(t, p.Stats().PageOuts)
		})
	}
}

// The chunk node deletes the documents once their chunks are stored; run
// again (it finished, but the run stopped before that was recorded), it
// finds its work done.
func TestChunkAgainAfterTheDocumentsWereDeleted(t *testing.T) {
	c, err := openCorpus(context.Background(), "")
	require.NoError(t, err)
	spec := agentSpec{Corpus: c, Shards: 3, ChunkSize: 300, TopK: 4}
	ctx := context.Background()
	s := dag.NewMemoryState()
	require.NoError(t, spec.load(ctx, s))
	assert.NotEmpty(t, slices.DeleteFunc(s.Keys(), func(k string) bool { return !strings.HasPrefix(k, "doc/") }))
	require.NoError(t, spec.chunk(ctx, s))
	assert.Empty(t, slices.DeleteFunc(s.Keys(), func(k string) bool { return !strings.HasPrefix(k, "doc/") }), "documents deleted")
	before, err := dag.GetJSON[chunkStats](s, keyChunks)
	require.NoError(t, err)
	require.NoError(t, spec.chunk(ctx, s))
	after, err := dag.GetJSON[chunkStats](s, keyChunks)
	require.NoError(t, err)
	assert.Equal(t, before, after)

	// Another chunk size needs the documents, which are gone: the node
	// fails rather than store nothing.
	spec.ChunkSize = 900
	assert.ErrorIs(t, spec.chunk(ctx, s), dag.ErrNotFound)
}
