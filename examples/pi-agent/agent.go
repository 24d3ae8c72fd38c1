package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// State keys of the question-answering agent.
const (
	keyQuestion  = "input/question"
	keyDocs      = "docs"
	keyChunks    = "chunks"
	keyRetrieval = "retrieval"
	keyAnswer    = "answer"
	keyReport    = "report"
)

func docKey(id int) string      { return "doc/" + strconv.Itoa(id) }
func chunkKey(n int) string     { return "chunk/" + strconv.Itoa(n) }
func statsKey(shard int) string { return "index/" + strconv.Itoa(shard) + "/stats" }
func postingKey(shard int, term string) string {
	return "postings/" + strconv.Itoa(shard) + "/" + term
}

// maxDocBytes is the largest file the loader reads; larger files are
// skipped with a note in the report.
const maxDocBytes = 64 << 20

// agentSpec configures the question-answering graph.
type agentSpec struct {
	Question  string
	Docs      fs.FS  // the corpus
	DocsLabel string // how to name the corpus in messages
	Shards    int    // parallel index nodes
	ChunkSize int    // bytes
	TopK      int    // passages retrieved
	Answerer  answerer
	// Report writes the finished report somewhere durable (a file); nil
	// keeps it in the State only.
	Report func(ctx context.Context, runID string, report []byte) (string, error)
}

type docMeta struct {
	ID      int    `json:"id"`
	Name    string `json:"name"`
	Bytes   int64  `json:"bytes"`
	Skipped string `json:"skipped,omitempty"`
}

type chunk struct {
	N    int    `json:"n"`
	Doc  int    `json:"doc"`
	Name string `json:"name"`
	Text string `json:"text"`
}

type shardStats struct {
	Chunks   int   `json:"chunks"`
	TotalLen int64 `json:"total_len"`
	Terms    int   `json:"terms"`
}

type hit struct {
	Chunk int     `json:"chunk"`
	Name  string  `json:"name"`
	Score float64 `json:"score"`
	Text  string  `json:"text"`
}

type retrieval struct {
	Question string             `json:"question"`
	Hits     []hit              `json:"hits"`
	IDF      map[string]float64 `json:"idf"`
	Chunks   int                `json:"chunks"`
}

type answer struct {
	Text    string   `json:"text"`
	Sources []string `json:"sources"`
	By      string   `json:"by"`
}

// buildGraph returns the agent's DAG:
//
//	question, load → chunk → index-0 … index-N (parallel) → retrieve → answer → report
//
// The answer node is optional: when the LLM cannot be reached the report is
// still written with the retrieved passages and the error.
func buildGraph(spec agentSpec) (*dag.Graph, error) {
	nodes, shards := indexNodes(spec)
	nodes = append(nodes, queryNodes(spec, shards)...)
	nodes = append(nodes, dag.Node{ID: "report", DependsOn: []string{"answer"}, Run: spec.report, Timeout: time.Minute})
	return dag.New(nodes...)
}

// indexNodes are the nodes that build the index: load → chunk → index-k.
// It returns them and the IDs of the index nodes.
func indexNodes(spec agentSpec) ([]dag.Node, []string) {
	nodes := []dag.Node{
		{ID: "load", Run: spec.load, Timeout: 10 * time.Minute},
		{ID: "chunk", DependsOn: []string{"load"}, Run: spec.chunk, Timeout: 10 * time.Minute},
	}
	var shards []string
	for k := range spec.Shards {
		id := "index-" + strconv.Itoa(k)
		shards = append(shards, id)
		nodes = append(nodes, dag.Node{ID: id, DependsOn: []string{"chunk"}, Timeout: 10 * time.Minute,
			Run: func(ctx context.Context, s dag.State) error { return spec.index(ctx, s, k) }})
	}
	return nodes, shards
}

// queryNodes answer the question over a built index: question, retrieve
// (after the given index nodes, if any) → answer.
func queryNodes(spec agentSpec, after []string) []dag.Node {
	answerClass := dag.CPU // extractive answers compute here
	if _, ok := spec.Answerer.(*llmClient); ok {
		answerClass = dag.IO // an LLM call waits on the server
	}
	return []dag.Node{
		{ID: "question", Run: func(_ context.Context, s dag.State) error {
			return dag.PutJSON(s, keyQuestion, spec.Question)
		}},
		{ID: "retrieve", DependsOn: append([]string{"question"}, after...), Run: spec.retrieve, Timeout: time.Minute},
		{ID: "answer", DependsOn: []string{"retrieve"}, Run: spec.answer, Optional: true, Class: answerClass,
			Timeout: spec.Answerer.Timeout(), Retry: spec.Answerer.Retry()},
	}
}

func (spec agentSpec) load(ctx context.Context, s dag.State) error {
	var docs []docMeta
	err := fs.WalkDir(spec.Docs, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := d.Name()
		if strings.HasPrefix(name, ".") && p != "." {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isTextName(name) {
			return nil
		}
		meta := docMeta{ID: len(docs), Name: p}
		info, err := d.Info()
		if err != nil {
			return err
		}
		meta.Bytes = info.Size()
		if meta.Bytes > maxDocBytes {
			meta.Skipped = fmt.Sprintf("larger than %d MB", maxDocBytes>>20)
			docs = append(docs, meta)
			return nil
		}
		data, err := fs.ReadFile(spec.Docs, p)
		if err != nil {
			return err
		}
		if !looksLikeText(data) {
			meta.Skipped = "not text"
			docs = append(docs, meta)
			return nil
		}
		if err := s.Put(docKey(meta.ID), data); err != nil {
			return err
		}
		docs = append(docs, meta)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load %s: %w", spec.DocsLabel, err)
	}
	usable := 0
	for _, d := range docs {
		if d.Skipped == "" && d.Bytes > 0 {
			usable++
		}
	}
	if usable == 0 {
		return dag.Permanent(fmt.Errorf("load: %s holds no text or markdown files (.md, .markdown, .txt, .text, .rst)", spec.DocsLabel))
	}
	return dag.PutJSON(s, keyDocs, docs)
}

func isTextName(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".md", ".markdown", ".txt", ".text", ".rst":
		return true
	}
	return false
}

func looksLikeText(b []byte) bool {
	head := b[:min(len(b), 8192)]
	return !bytes.ContainsRune(head, 0) && utf8.Valid(head[:len(head)-utf8Tail(head)])
}

// utf8Tail is how many bytes at the end of b may be a rune cut in half.
func utf8Tail(b []byte) int {
	for i := 1; i <= min(3, len(b)); i++ {
		if utf8.RuneStart(b[len(b)-i]) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return i
			}
			return 0
		}
	}
	return 0
}

func (spec agentSpec) chunk(ctx context.Context, s dag.State) error {
	docs, err := dag.GetJSON[[]docMeta](s, keyDocs)
	if err != nil {
		return err
	}
	n := 0
	for _, d := range docs {
		if d.Skipped != "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := s.Get(docKey(d.ID))
		if err != nil {
			return err
		}
		for _, text := range chunkText(string(data), spec.ChunkSize) {
			if err := dag.PutJSON(s, chunkKey(n), chunk{N: n, Doc: d.ID, Name: d.Name, Text: text}); err != nil {
				return err
			}
			n++
		}
	}
	return dag.PutJSON(s, keyChunks, n)
}

// index builds the postings of shard k: the chunks n with n % Shards == k.
// Each term's postings are stored under their own key, so that retrieval
// pages in only the terms of the question.
func (spec agentSpec) index(ctx context.Context, s dag.State, k int) error {
	total, err := dag.GetJSON[int](s, keyChunks)
	if err != nil {
		return err
	}
	postings := map[string][]byte{}
	var st shardStats
	var tf = map[string]int{}
	for n := k; n < total; n += spec.Shards {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := dag.GetJSON[chunk](s, chunkKey(n))
		if err != nil {
			return err
		}
		clear(tf)
		toks := tokens(c.Text)
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

func (spec agentSpec) answer(ctx context.Context, s dag.State) error {
	r, err := dag.GetJSON[retrieval](s, keyRetrieval)
	if err != nil {
		return err
	}
	a, err := spec.Answerer.Answer(ctx, r)
	if err != nil {
		return err
	}
	return dag.PutJSON(s, keyAnswer, a)
}

func (spec agentSpec) report(ctx context.Context, s dag.State) error {
	r, err := dag.GetJSON[retrieval](s, keyRetrieval)
	if err != nil {
		return err
	}
	docs, err := dag.GetJSON[[]docMeta](s, keyDocs)
	if err != nil {
		return err
	}
	a, aerr := dag.GetJSON[answer](s, keyAnswer)
	info, _ := executor.NodeInfoFrom(ctx)
	var b strings.Builder
	fmt.Fprintf(&b, "# pi-agent report\n\nRun: %s\n\nQuestion: %s\n\n## Answer\n\n", info.RunID, r.Question)
	if aerr != nil {
		fmt.Fprintf(&b, "No answer: the answer step failed (see the run's errors). The retrieved passages follow.\n\n")
	} else {
		fmt.Fprintf(&b, "%s\n\n(answered by %s)\n\n", a.Text, a.By)
	}
	fmt.Fprintf(&b, "## Passages\n\n")
	if len(r.Hits) == 0 {
		fmt.Fprintf(&b, "No passage of the corpus matches the question.\n\n")
	}
	for i, h := range r.Hits {
		fmt.Fprintf(&b, "[%d] %s (chunk %d, score %.3f)\n\n> %s\n\n", i+1, h.Name, h.Chunk, h.Score, strings.ReplaceAll(h.Text, "\n", "\n> "))
	}
	used, skipped := 0, 0
	for _, d := range docs {
		if d.Skipped == "" {
			used++
		} else {
			skipped++
		}
	}
	fmt.Fprintf(&b, "## Corpus\n\n%s: %d documents, %d chunks", spec.DocsLabel, used, r.Chunks)
	if skipped > 0 {
		fmt.Fprintf(&b, ", %d files skipped", skipped)
	}
	b.WriteString(".\n")
	report := []byte(b.String())
	if err := s.Put(keyReport, report); err != nil {
		return err
	}
	if spec.Report != nil {
		if _, err := spec.Report(ctx, info.RunID, report); err != nil {
			return err
		}
	}
	return nil
}
