package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cemaf-go/cemaf/dag"
)

// load reads the corpus into the State: one value per usable document
// (decoded to UTF-8 with LF line ends), and the list of every candidate
// file, used or skipped and why. Files that cannot be read as text (FIFOs,
// devices, sockets, files over the size bound, binary files, broken
// symlinks, unreadable directories) are skipped, never fatal; the run
// fails only when no usable document is left.
func (spec agentSpec) load(ctx context.Context, s dag.State) error {
	maxBytes := cmp.Or(spec.MaxDocBytes, maxDocBytes)
	var docs []docMeta
	skip := func(name, reason string) {
		docs = append(docs, docMeta{ID: len(docs), Name: name, Skipped: reason})
	}
	err := spec.Corpus.walk(ctx, func(name string) error {
		raw, err := spec.Corpus.readDoc(name, maxBytes)
		if err != nil {
			skip(name, skipReason(spec.Corpus, name, err))
			return nil
		}
		meta := docMeta{ID: len(docs), Name: name, Bytes: int64(len(raw))}
		text, notes, why := decodeText(raw)
		meta.Notes = notes
		if why != "" {
			meta.Skipped = why
			docs = append(docs, meta)
			return nil
		}
		if err := s.Put(docKey(meta.ID), text); err != nil {
			return err
		}
		docs = append(docs, meta)
		return nil
	}, skip)
	if err != nil {
		return fmt.Errorf("load %s: %w", spec.Corpus.Label, err)
	}
	usable := 0
	for _, d := range docs {
		if d.Skipped == "" && d.Bytes > 0 {
			usable++
		}
	}
	if usable == 0 {
		msg := fmt.Sprintf("load: %s holds no usable text or markdown files (%s)", spec.Corpus.Label, textExtensions)
		if n := len(docs); n > 0 {
			msg += fmt.Sprintf("; %s skipped: %s", plural(n, "file"), skippedList(docs, 5))
		}
		return dag.Permanent(errors.New(msg))
	}
	return dag.PutJSON(s, keyDocs, docs)
}

// chunk splits the documents into chunks of about ChunkSize bytes.
func (spec agentSpec) chunk(ctx context.Context, s dag.State) error {
	docs, err := dag.GetJSON[[]docMeta](s, keyDocs)
	if err != nil {
		return err
	}
	var st chunkStats
	for _, d := range docs {
		if d.Skipped != "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Read through the State's reader: a document may be larger than
		// the pager's budget, which Get refuses.
		r, err := dag.NewValueReader(s, docKey(d.ID))
		if err != nil {
			return err
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("chunk %s: %w", d.Name, err)
		}
		texts, cut := chunkText(string(data), spec.ChunkSize)
		st.Cut += cut
		for _, text := range texts {
			if err := dag.PutJSON(s, chunkKey(st.Chunks), chunk{N: st.Chunks, Doc: d.ID, Name: d.Name, Text: text}); err != nil {
				return err
			}
			st.Chunks++
		}
	}
	return dag.PutJSON(s, keyChunks, st)
}
