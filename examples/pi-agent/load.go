package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
)

// load reads the corpus into the State: one value per usable document
// (decoded to UTF-8 with LF line ends), and the list of every candidate
// file, used or skipped and why. Files that cannot be read as text (FIFOs,
// devices, sockets, files over the size bound, binary files, broken
// symlinks, unreadable directories) are skipped, never fatal; the run
// fails only when no usable document is left. A document streams from its
// file into the State: it is never held whole.
func (spec agentSpec) load(ctx context.Context, s dag.State) error {
	maxBytes := cmp.Or(spec.MaxDocBytes, maxDocBytes)
	var docs []docMeta
	skip := func(name, reason string) {
		docs = append(docs, docMeta{ID: len(docs), Name: name, Skipped: reason})
	}
	err := spec.Corpus.walk(ctx, func(name string) error {
		meta := docMeta{ID: len(docs), Name: name}
		why, err := spec.loadDoc(ctx, s, &meta, maxBytes)
		switch {
		case err != nil:
			return err
		case why != "":
			meta.Skipped = why
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

// loadDoc streams the document meta.Name into the State under its key,
// filling in its size and notes. It returns why the document was skipped
// ("" when it was not), or the error of the State or of ctx, which ends
// the load.
func (spec agentSpec) loadDoc(ctx context.Context, s dag.State, meta *docMeta, maxBytes int64) (string, error) {
	f, _, err := spec.Corpus.openDoc(meta.Name, maxBytes)
	if err != nil {
		return skipReason(spec.Corpus, meta.Name, err), nil
	}
	defer f.Close()
	vw, err := createValue(s, docKey(meta.ID))
	if err != nil {
		return "", err
	}
	// One byte more than the bound tells a file that grew past it.
	src := &countingReader{ctx: ctx, r: io.LimitReader(f, maxBytes+1)}
	dst := &writeErr{w: vw}
	notes, why, err := decodeTextTo(dst, src)
	switch {
	case dst.err != nil:
		vw.Abort()
		return "", dst.err
	case ctx.Err() != nil:
		vw.Abort()
		return "", ctx.Err()
	case err != nil:
		vw.Abort()
		return skipReason(spec.Corpus, meta.Name, err), nil
	case src.n > maxBytes:
		vw.Abort()
		le := &limit.Error{Kind: limit.FileSize, Subject: meta.Name, Current: float64(src.n), Limit: float64(maxBytes), Unit: "bytes",
			Detail: "the file grew while it was read"}
		return skipReason(spec.Corpus, meta.Name, le), nil
	}
	meta.Bytes, meta.Notes = src.n, notes
	if why != "" {
		vw.Abort()
		return why, nil
	}
	return "", vw.Close()
}

// countingReader counts the bytes read from r and stops when ctx ends.
type countingReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// chunk splits the documents into chunks of about ChunkSize bytes, each
// document streaming from the State, and stores them in blocks
// (chunkstore.go). The documents are then deleted from the State, which
// needs them no more: the chunks hold their text. A chunk node run again
// after it did that (it finished, but the run stopped before it was
// recorded) finds its chunks stored and does nothing.
func (spec agentSpec) chunk(ctx context.Context, s dag.State) error {
	docs, err := dag.GetJSON[[]docMeta](s, keyDocs)
	if err != nil {
		return err
	}
	if spec.chunked(s, docs) {
		return nil
	}
	st := chunkStats{Size: spec.ChunkSize, Shards: spec.Shards, PerBlock: chunksPerBlock(spec.ChunkSize)}
	w := newChunkWriter(s, st.Shards, st.PerBlock)
	for _, d := range docs {
		if d.Skipped != "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := dag.NewValueReader(s, docKey(d.ID))
		if err != nil {
			return err
		}
		cut, err := chunkStream(&countingReader{ctx: ctx, r: r}, spec.ChunkSize, func(text string) error {
			return w.add(d.ID, d.Name, text)
		})
		if err != nil {
			return fmt.Errorf("chunk %s: %w", d.Name, err)
		}
		st.Cut += cut
	}
	if err := w.close(); err != nil {
		return err
	}
	st.Chunks = w.n
	if err := dag.PutJSON(s, keyChunks, st); err != nil {
		return err
	}
	// The chunks must be on disk before the documents go (a durable
	// pager), or a crash between the two would lose both.
	if c, ok := s.(checkpointer); ok {
		if err := c.Checkpoint(); err != nil {
			return err
		}
	}
	for _, d := range docs {
		if d.Skipped == "" {
			if err := s.Delete(docKey(d.ID)); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkpointer is a State that can make what was written durable (the
// pager).
type checkpointer interface{ Checkpoint() error }

// chunked says whether the chunks of docs are stored and the documents
// deleted: the work of a chunk node that finished.
func (spec agentSpec) chunked(s dag.State, docs []docMeta) bool {
	cs, err := dag.GetJSON[chunkStats](s, keyChunks)
	if err != nil || cs.checkLayout(spec.Shards) != nil || cs.Size != spec.ChunkSize {
		return false
	}
	for _, d := range docs {
		if d.Skipped == "" {
			if _, ok := s.SizeOf(docKey(d.ID)); ok {
				return false
			}
		}
	}
	return true
}
