package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// runInputs are what a run's results depend on besides its graph: the
// question, the corpus (its path, and the digest of its content), the knobs
// that change results, the LLM endpoint and model. They are recorded when a
// run starts (executor.RunOptions.Inputs) and checked when it resumes: a
// resume whose inputs differ is refused, naming each change, unless
// --if-changed=new-run starts a new run instead. An input left out of the
// resume's command line (or environment, for the LLM) is taken from the
// record.
type runInputs struct {
	Question    string
	Docs        string // the corpus's label: its absolute directory, or builtinLabel
	Corpus      string // corpusDigest.Sum
	Shards      int
	TopK        int
	ChunkSize   int
	MaxDocBytes int64
	LLMURL      string // the endpoint URL, "" for extractive answers
	LLMModel    string // "" without an endpoint
	// LLMModels are the models of the modes that have their own
	// (CEMAF_LLM_MODEL_<MODE>), by mode; recorded only when set.
	LLMModels map[string]string
	Clarify   bool // --clarify
}

// The names of the inputs in the checkpoint record.
const (
	inQuestion    = "question"
	inDocs        = "docs"
	inCorpus      = "corpus"
	inShards      = "shards"
	inTopK        = "top_k"
	inChunkSize   = "chunk_size"
	inMaxDocBytes = "max_doc_bytes"
	inLLMURL      = "llm_url"
	inLLMModel    = "llm_model"
	inClarify     = "clarify" // recorded only when set
)

// keyCorpusFiles holds, in a run's State, the files of its corpus as their
// digest saw them when the run started: a resume over a changed corpus
// names the files that changed.
const keyCorpusFiles = "input/corpus-files"

// inputSource names the flag or variable that sets each input of a
// resumed run, for the message that refuses a change.
var inputSource = map[string]string{
	inQuestion: "--question", inDocs: "--docs", inShards: "--shards", inTopK: "--top-k", inChunkSize: "--chunk-size",
	inLLMURL: "CEMAF_LLM_URL", inLLMModel: "CEMAF_LLM_MODEL", inClarify: "--clarify",
}

func (in runInputs) record() map[string]string {
	m := map[string]string{
		inQuestion: in.Question, inDocs: in.Docs, inCorpus: in.Corpus,
		inShards: strconv.Itoa(in.Shards), inTopK: strconv.Itoa(in.TopK), inChunkSize: strconv.Itoa(in.ChunkSize),
		inMaxDocBytes: strconv.FormatInt(in.MaxDocBytes, 10), inLLMURL: in.LLMURL, inLLMModel: in.LLMModel,
	}
	if in.Clarify {
		m[inClarify] = "true"
	}
	for mode, model := range in.LLMModels {
		m[inLLMModelOf(mode)] = model
	}
	return m
}

// givenInputs are the inputs of a run as its command line and environment
// set them, and which of them were set explicitly.
func (f *runFlags) givenInputs(env []string, maxDoc int64, models map[string]string) (runInputs, map[string]bool) {
	in := runInputs{Question: f.question, Docs: builtinLabel, Shards: f.shards, TopK: f.topK, ChunkSize: f.chunkSize, MaxDocBytes: maxDoc}
	given := map[string]bool{inQuestion: f.given("question"), inDocs: f.given("docs"), inShards: f.given("shards"),
		inTopK: f.given("top-k"), inChunkSize: f.given("chunk-size"), inClarify: f.given("clarify")}
	in.Clarify = f.clarify
	if f.docs != "" {
		if abs, err := filepath.Abs(f.docs); err == nil {
			in.Docs = abs
		}
	}
	if url, ok := lookupEnv(env, "CEMAF_LLM_URL"); ok {
		given[inLLMURL] = true
		if url != "" {
			in.LLMURL = endpointURL(url)
			in.LLMModel = cmp.Or(getenv(env, envLLMModel), defaultLLMModel)
			in.LLMModels = models
			given[inLLMModel] = true
		}
	}
	return in, given
}

// withRecorded fills the inputs not given with the recorded ones; the
// document bound is always the recorded one (it belongs to the run, not to
// this host's pager budget).
func (in runInputs) withRecorded(rec map[string]string, given map[string]bool) runInputs {
	str := func(name string, dst *string) {
		if v, ok := rec[name]; ok && !given[name] {
			*dst = v
		}
	}
	num := func(name string, dst *int) {
		if v, ok := rec[name]; ok && !given[name] {
			if n, err := strconv.Atoi(v); err == nil {
				*dst = n
			}
		}
	}
	str(inQuestion, &in.Question)
	str(inDocs, &in.Docs)
	num(inShards, &in.Shards)
	num(inTopK, &in.TopK)
	num(inChunkSize, &in.ChunkSize)
	if v, ok := rec[inClarify]; ok && !given[inClarify] {
		in.Clarify = v == "true"
	}
	if !given[inLLMURL] {
		in.LLMURL, in.LLMModel, in.LLMModels = rec[inLLMURL], rec[inLLMModel], nil
		for _, mode := range llmModes {
			if v, ok := rec[inLLMModelOf(mode)]; ok {
				if in.LLMModels == nil {
					in.LLMModels = map[string]string{}
				}
				in.LLMModels[mode] = v
			}
		}
	}
	if v, err := strconv.ParseInt(rec[inMaxDocBytes], 10, 64); err == nil && v > 0 {
		in.MaxDocBytes = v
	}
	return in
}

// corpusOf opens the corpus the inputs name.
func corpusOf(ctx context.Context, in runInputs) (corpus, error) {
	if in.Docs == builtinLabel {
		return openCorpus(ctx, "")
	}
	c, err := openCorpus(ctx, in.Docs)
	if err != nil && errors.Is(err, fs.ErrNotExist) || err != nil && strings.Contains(err.Error(), "no such directory") {
		return c, fmt.Errorf("%w (the run's corpus; give --docs DIR where it is now)", err)
	}
	return c, err
}

// findRun returns the record of the run to resume, with the errors a user
// can act on: no such run, a run that finished, a damaged checkpoint file.
// It opens the checkpoint file on its own, before any runtime is built, so
// that a refused resume leaves nothing behind.
func findRun(storage storageDir, id string) (executor.RunRecord, error) {
	path := filepath.Join(storage.Path, "runs.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return executor.RunRecord{}, fmt.Errorf("--resume %s: no run with this ID in %s (it has no runs yet)", id, storage.Path)
	}
	notFound := fmt.Errorf("--resume %s: no run with this ID in %s (pi-agent runs%s lists the runs)", id, storage.Path, storageFlag(storage))
	cs, err := executor.OpenCheckpoints(path, executor.CheckpointOptions{})
	if err != nil {
		return executor.RunRecord{}, fmt.Errorf("--resume %s: %w", id, checkpointHint(err, storage))
	}
	defer cs.Close()
	rec, err := cs.Run(id)
	switch {
	case errors.Is(err, executor.ErrRunNotFound):
		return rec, notFound
	case err != nil:
		return rec, fmt.Errorf("--resume %s: %w", id, checkpointHint(err, storage))
	case rec.Finished():
		return rec, fmt.Errorf("--resume %s: the run already finished; its report is %s", id, filepath.Join(storage.Path, "reports", id+".md"))
	}
	return rec, nil
}

// inputsChanged words a refused resume: every change, the corpus's by its
// files, and what to do.
func inputsChanged(ice *executor.InputsChangedError, wasFiles []fileDigest, now corpusDigest, storage storageDir) error {
	var parts, sources, hints []string
	for _, c := range ice.Changed {
		if src, ok := inputSource[c.Name]; ok {
			sources = append(sources, src)
		} else if src := modelSource(c.Name); src != "" {
			sources = append(sources, src)
		}
		if c.Name == inCorpus {
			hints = append(hints, "put the files of the corpus back as they were")
			if wasFiles != nil {
				parts = append(parts, "the corpus: "+describeChange(wasFiles, now.Files))
				continue
			}
		}
		parts = append(parts, c.String())
	}
	if len(sources) > 0 {
		hints = append([]string{"leave out or set back " + strings.Join(sources, ", ")}, hints...)
	}
	return fmt.Errorf("--resume %s: the run's inputs changed since it started: %s.\n"+
		"Resume it with the inputs it recorded (%s), or start a new run over the new ones: %s --if-changed=new-run",
		ice.RunID, strings.Join(parts, "; "), strings.Join(hints, "; "), resumeCommand(ice.RunID, storage))
}

// recordedFiles returns the corpus files a run recorded, or nil.
func recordedFiles(s dag.State) []fileDigest {
	files, err := dag.GetJSON[[]fileDigest](s, keyCorpusFiles)
	if err != nil {
		return nil
	}
	return files
}

// changedInputs lists how the inputs given differ from those recorded, as
// the executor would refuse them: pi-agent checks first, so that a change
// that also changes the graph (--shards) is reported as the change of
// input it is.
func changedInputs(recorded, given map[string]string) []executor.InputChange {
	var out []executor.InputChange
	for _, name := range slices.Sorted(maps.Keys(recorded)) {
		g, ok := given[name]
		switch {
		case !ok:
			out = append(out, executor.InputChange{Name: name, Recorded: recorded[name], Removed: true})
		case g != recorded[name]:
			out = append(out, executor.InputChange{Name: name, Recorded: recorded[name], Given: g})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(given)) {
		if _, ok := recorded[name]; !ok {
			out = append(out, executor.InputChange{Name: name, Given: given[name], Added: true})
		}
	}
	slices.SortStableFunc(out, func(a, b executor.InputChange) int { return strings.Compare(a.Name, b.Name) })
	return out
}
