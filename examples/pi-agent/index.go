package main

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cemaf-go/cemaf/dag"
)

// index builds the postings of shard k: the chunks n with n % Shards == k.
// Each term's postings are stored under their own key, so that retrieval
// pages in only the terms of the question.
func (spec agentSpec) index(ctx context.Context, s dag.State, k int) error {
	cs, err := dag.GetJSON[chunkStats](s, keyChunks)
	if err != nil {
		return err
	}
	total := cs.Chunks
	postings := map[string][]byte{}
	var st shardStats
	tf := map[string]int{}
	var toks []string
	for n := k; n < total; n += spec.Shards {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := dag.GetJSON[chunk](s, chunkKey(n))
		if err != nil {
			return err
		}
		clear(tf)
		var cut int
		toks, cut = appendTokens(toks[:0], c.Text)
		st.Cut += cut
		for _, t := range toks {
			tf[t]++
		}
		for t, f := range tf {
			postings[t] = binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(postings[t], uint64(n)), uint64(f)), uint64(len(toks)))
		}
		st.Chunks++
		st.TotalLen += int64(len(toks))
	}
	for t, p := range postings {
		if err := s.Put(postingKey(k, t), p); err != nil {
			return err
		}
	}
	st.Terms = len(postings)
	return dag.PutJSON(s, statsKey(k), st)
}

type posting struct{ chunk, tf, length int }

func decodePostings(b []byte) ([]posting, error) {
	var out []posting
	for len(b) > 0 {
		var v [3]uint64
		for i := range v {
			x, n := binary.Uvarint(b)
			if n <= 0 {
				return nil, errors.New("corrupt postings")
			}
			v[i], b = x, b[n:]
		}
		out = append(out, posting{int(v[0]), int(v[1]), int(v[2])})
	}
	return out, nil
}

// retrieve ranks chunks against the question with BM25.
func (spec agentSpec) retrieve(ctx context.Context, s dag.State) error {
	q, err := dag.GetJSON[string](s, keyQuestion)
	if err != nil {
		return err
	}
	var n int
	var totalLen int64
	for k := range spec.Shards {
		st, err := dag.GetJSON[shardStats](s, statsKey(k))
		if err != nil {
			return err
		}
		n += st.Chunks
		totalLen += st.TotalLen
	}
	r := retrieval{Question: q, IDF: map[string]float64{}, Chunks: n}
	if n == 0 {
		return dag.PutJSON(s, keyRetrieval, r)
	}
	avg := float64(totalLen) / float64(n)
	const k1, b = 1.2, 0.75
	scores := map[int]float64{}
	terms := slices.Compact(slices.Sorted(slices.Values(tokens(q))))
	for _, t := range terms {
		var all []posting
		for k := range spec.Shards {
			raw, err := s.Get(postingKey(k, t))
			if errors.Is(err, dag.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			ps, err := decodePostings(raw)
			if err != nil {
				return fmt.Errorf("postings of %q in shard %d: %w", t, k, err)
			}
			all = append(all, ps...)
		}
		if len(all) == 0 {
			continue
		}
		df := float64(len(all))
		idf := math.Log(1 + (float64(n)-df+0.5)/(df+0.5))
		r.IDF[t] = idf
		for _, p := range all {
			tf := float64(p.tf)
			scores[p.chunk] += idf * tf * (k1 + 1) / (tf + k1*(1-b+b*float64(p.length)/avg))
		}
	}
	ids := make([]int, 0, len(scores))
	for id := range scores {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b int) int {
		if c := cmp.Compare(scores[b], scores[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for _, id := range ids[:min(len(ids), spec.TopK)] {
		c, err := dag.GetJSON[chunk](s, chunkKey(id))
		if err != nil {
			return err
		}
		r.Hits = append(r.Hits, hit{Chunk: id, Name: c.Name, Score: math.Round(scores[id]*1000) / 1000, Text: c.Text})
	}
	return dag.PutJSON(s, keyRetrieval, r)
}
