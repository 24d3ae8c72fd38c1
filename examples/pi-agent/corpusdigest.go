package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"strings"
)

// fileDigest is one candidate file of a corpus as its digest sees it.
type fileDigest struct {
	Name    string `json:"name"`
	Bytes   int64  `json:"bytes"`
	SHA256  string `json:"sha256,omitempty"`
	Skipped string `json:"skipped,omitempty"`
}

// corpusDigest identifies the content of a corpus: Sum is a SHA-256 over
// the name, size and SHA-256 of every candidate file (and the name and
// reason of every file the loader would skip), in walk order.
type corpusDigest struct {
	Sum   string       `json:"sum"`
	Files []fileDigest `json:"files"`
}

// digest reads every candidate document of the corpus once, streaming
// (memory does not grow with the corpus), through openDoc: the same files
// the loader reads, with the same bound and the same refusals. It stops
// when ctx ends. Its cost is one read of the corpus; the load that follows
// reads it again, mostly from the page cache.
func (c corpus) digest(ctx context.Context, maxBytes int64) (corpusDigest, error) {
	var d corpusDigest
	all := sha256.New()
	h := sha256.New()
	buf := make([]byte, 64<<10)
	skip := func(name, reason string) {
		d.Files = append(d.Files, fileDigest{Name: name, Skipped: reason})
		fmt.Fprintf(all, "%s\x00skipped\x00%s\n", name, reason)
	}
	err := c.walk(ctx, func(name string) error {
		f, _, err := c.openDoc(name, maxBytes)
		if err != nil {
			skip(name, skipReason(c, name, err))
			return nil
		}
		h.Reset()
		n, err := copyCtx(ctx, h, io.LimitReader(f, maxBytes+1), buf)
		f.Close()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			skip(name, skipReason(c, name, err))
			return nil
		case n > maxBytes:
			skip(name, fmt.Sprintf("grew past the %s limit of a document", mib(maxBytes)))
			return nil
		}
		fd := fileDigest{Name: name, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}
		d.Files = append(d.Files, fd)
		fmt.Fprintf(all, "%s\x00%d\x00%s\n", name, n, fd.SHA256)
		return nil
	}, skip)
	if err != nil {
		return d, fmt.Errorf("corpus %s: %w", c.Label, err)
	}
	d.Sum = "sha256:" + hex.EncodeToString(all.Sum(nil))
	return d, nil
}

// copyCtx copies src to h in buf-sized steps, stopping when ctx ends.
func copyCtx(ctx context.Context, h hash.Hash, src io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := src.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// describeChange says how the files of corpus was changed to now: "2
// files changed (a.md, b.md), 1 added (c.md)".
func describeChange(was, now []fileDigest) string {
	old := map[string]fileDigest{}
	for _, f := range was {
		old[f.Name] = f
	}
	var changed, added, removed []string
	seen := map[string]bool{}
	for _, f := range now {
		seen[f.Name] = true
		o, ok := old[f.Name]
		switch {
		case !ok:
			added = append(added, f.Name)
		case o != f:
			changed = append(changed, f.Name)
		}
	}
	for _, f := range was {
		if !seen[f.Name] {
			removed = append(removed, f.Name)
		}
	}
	var parts []string
	list := func(names []string, what string) {
		if len(names) == 0 {
			return
		}
		slices.Sort(names)
		shown := names[:min(len(names), 5)]
		s := strings.Join(shown, ", ")
		if len(names) > len(shown) {
			s += " and " + strconv.Itoa(len(names)-len(shown)) + " more"
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", plural(len(names), "file"), what, s))
	}
	list(changed, "changed")
	list(added, "added")
	list(removed, "removed")
	if len(parts) == 0 {
		return "the files were listed in another order"
	}
	return strings.Join(parts, ", ")
}
