package main

import (
	"context"
	"strconv"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/llm"
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
func statsKey(shard int) string { return "index/" + strconv.Itoa(shard) + "/stats" }
func postingKey(shard int, term string) string {
	return "postings/" + strconv.Itoa(shard) + "/" + term
}

// agentSpec configures the question-answering graph.
type agentSpec struct {
	Question  string
	Corpus    corpus
	Shards    int // parallel index nodes
	ChunkSize int // bytes
	TopK      int // passages retrieved
	// MaxDocBytes bounds a document (0: maxDocBytes).
	MaxDocBytes int64
	Answerer    answerer
	// Clarify makes the answer node ask for another wording of the
	// question, and wait for it, when no passage matches (see clarify).
	Clarify bool
	// Report writes the finished report somewhere durable (a file); nil
	// keeps it in the State only.
	Report func(ctx context.Context, runID string, report []byte) (string, error)
}

// docMeta is one file of the corpus: used, or skipped and why.
type docMeta struct {
	ID      int       `json:"id"`
	Name    string    `json:"name"`
	Bytes   int64     `json:"bytes"`
	Skipped string    `json:"skipped,omitempty"`
	Notes   textNotes `json:"notes,omitzero"` // what was repaired
}

// chunkStats is what the chunk node wrote.
type chunkStats struct {
	Chunks int `json:"chunks"`
	// Cut counts sentences longer than a chunk, cut into pieces.
	Cut int `json:"cut,omitempty"`
	// Size is the chunk size; Shards and PerBlock are how the chunks are
	// stored (chunkstore.go).
	Size     int `json:"size"`
	Shards   int `json:"shards"`
	PerBlock int `json:"per_block"`
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
	// Cut counts the tokens cut to maxTermBytes.
	Cut int `json:"cut,omitempty"`
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
	// LLM is the record of the LLM call that answered: the model, the
	// device mode that chose it, attempts, latency, tokens.
	LLM *llm.Record `json:"llm,omitempty"`
}

// buildGraph returns the agent's DAG:
//
//	question, load → chunk → index-0 … index-N (parallel) → retrieve → answer → report
//
// When the LLM cannot be reached the answer node fails after its retries,
// and with it the run, which can be resumed; pi-agent run then writes a
// report with the retrieved passages and the error itself.
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
	return []dag.Node{
		{ID: "question", Run: func(_ context.Context, s dag.State) error {
			return dag.PutJSON(s, keyQuestion, spec.Question)
		}},
		{ID: "retrieve", DependsOn: append([]string{"question"}, after...), Run: spec.retrieve, Timeout: time.Minute},
		{ID: "answer", DependsOn: []string{"retrieve"}, Run: spec.answer, Class: spec.Answerer.Class(),
			Timeout: spec.Answerer.Timeout(), Retry: spec.Answerer.Retry()},
	}
}

func (spec agentSpec) answer(ctx context.Context, s dag.State) error {
	r, err := dag.GetJSON[retrieval](s, keyRetrieval)
	if err != nil {
		return err
	}
	if spec.Clarify {
		if r, err = spec.clarify(ctx, s, r); err != nil {
			return err
		}
	}
	a, err := spec.Answerer.Answer(ctx, r)
	if err != nil {
		return err
	}
	return dag.PutJSON(s, keyAnswer, a)
}
