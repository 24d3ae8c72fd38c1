package main

import (
	"context"
	"math"
	"slices"

	"github.com/cemaf-go/cemaf/dag"
)

// retrieve ranks chunks against the question with BM25. It streams the
// postings of the question's terms only, shard by shard, merging them in
// chunk order (a chunk's score is complete once its postings are read),
// and keeps the TopK best chunks: its memory does not grow with the
// corpus.
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
	cs, err := dag.GetJSON[chunkStats](s, keyChunks)
	if err != nil {
		return err
	}
	if err := cs.checkLayout(spec.Shards); err != nil {
		return err
	}
	avg := float64(totalLen) / float64(n)
	const k1, b = 1.2, 0.75
	terms := slices.Compact(slices.Sorted(slices.Values(tokens(q))))
	idf := make([]float64, len(terms))
	for i, t := range terms {
		df := 0
		for k := range spec.Shards {
			c, err := countPostings(s, k, t)
			if err != nil {
				return err
			}
			df += c
		}
		if df == 0 {
			continue
		}
		idf[i] = math.Log(1 + (float64(n)-float64(df)+0.5)/(float64(df)+0.5))
		r.IDF[t] = idf[i]
	}
	top := topChunks{k: spec.TopK}
	cur := make([]*postingReader, len(terms))
	for k := range spec.Shards {
		for i, t := range terms {
			cur[i] = nil
			if _, ok := r.IDF[t]; !ok {
				continue
			}
			if cur[i], err = openPostings(s, k, t); err != nil {
				return err
			}
		}
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			c := -1
			for _, pr := range cur {
				if pr != nil && pr.ok && (c < 0 || pr.cur.chunk < c) {
					c = pr.cur.chunk
				}
			}
			if c < 0 {
				break
			}
			// The terms in order, as a chunk's score always adds them.
			score := 0.0
			for i, pr := range cur {
				if pr == nil || !pr.ok || pr.cur.chunk != c {
					continue
				}
				p := pr.cur
				tf := float64(p.tf)
				score += idf[i] * tf * (k1 + 1) / (tf + k1*(1-b+b*float64(p.length)/avg))
				if err := pr.next(); err != nil {
					return err
				}
			}
			top.add(c, score)
		}
	}
	for _, sc := range top.best {
		c, err := getChunk(s, cs, sc.chunk)
		if err != nil {
			return err
		}
		r.Hits = append(r.Hits, hit{Chunk: sc.chunk, Name: c.Name, Score: math.Round(sc.score*1000) / 1000, Text: c.Text})
	}
	return dag.PutJSON(s, keyRetrieval, r)
}

type scoredChunk struct {
	chunk int
	score float64
}

// topChunks keeps the k best chunks, best first: higher scores first,
// and of equal scores the lower chunk number.
type topChunks struct {
	k    int
	best []scoredChunk
}

func (t *topChunks) add(chunk int, score float64) {
	better := func(i int) bool {
		o := t.best[i]
		return score > o.score || score == o.score && chunk < o.chunk
	}
	if len(t.best) == t.k && !better(t.k-1) {
		return
	}
	i := len(t.best)
	for i > 0 && better(i-1) {
		i--
	}
	if len(t.best) == t.k {
		t.best = t.best[:t.k-1]
	}
	t.best = slices.Insert(t.best, i, scoredChunk{chunk, score})
}
