package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// report writes the run's report: the answer (or why there is none), the
// passages, and what loading did with the corpus.
func (spec agentSpec) report(ctx context.Context, s dag.State) error {
	info, _ := executor.NodeInfoFrom(ctx)
	report, err := spec.render(info.RunID, s, "")
	if err != nil {
		return err
	}
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

// render is the report of run runID from its State; noAnswer says why
// there is no answer when the State holds none ("" for the default).
func (spec agentSpec) render(runID string, s dag.State, noAnswer string) ([]byte, error) {
	r, err := dag.GetJSON[retrieval](s, keyRetrieval)
	if err != nil {
		return nil, err
	}
	cr, err := readCorpusReport(s, spec.Corpus.Label, spec.Shards)
	if err != nil {
		return nil, err
	}
	a, aerr := dag.GetJSON[answer](s, keyAnswer)
	var b strings.Builder
	fmt.Fprintf(&b, "# pi-agent report\n\nRun: %s\n\nQuestion: %s\n\n## Answer\n\n", runID, r.Question)
	if aerr != nil {
		if noAnswer == "" {
			noAnswer = "No answer: the answer step failed (see the run's errors)."
		}
		fmt.Fprintf(&b, "%s The retrieved passages follow.\n\n", noAnswer)
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
	fmt.Fprintf(&b, "## Corpus\n\n%s\n", cr.summary())
	if len(cr.Skipped) > 0 {
		b.WriteString("\nSkipped:\n\n")
		for _, d := range cr.Skipped {
			fmt.Fprintf(&b, "- %s: %s\n", d.Name, d.Reason)
		}
	}
	if rep := cr.repairs(); rep != "" {
		fmt.Fprintf(&b, "\nRepaired: %s.\n", rep)
	}
	return []byte(b.String()), nil
}

// corpusReport is what loading, chunking and indexing did with the corpus.
type corpusReport struct {
	Label     string       `json:"label"`
	Documents int          `json:"documents"`
	Chunks    int          `json:"chunks"`
	Skipped   []skippedDoc `json:"skipped,omitempty"`
	// Repairs, in files (or sentences and terms).
	BOMs        int `json:"boms_removed,omitempty"`
	UTF16       int `json:"utf16_converted,omitempty"`
	InvalidUTF8 int `json:"invalid_utf8_files,omitempty"`
	NULs        int `json:"nul_files,omitempty"`
	CR          int `json:"cr_files,omitempty"`
	LinesCut    int `json:"long_sentences_cut,omitempty"`
	TermsCut    int `json:"long_terms_cut,omitempty"`
}

type skippedDoc struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// readCorpusReport gathers the corpus report from the State of a run whose
// index nodes finished.
func readCorpusReport(s dag.State, label string, shards int) (corpusReport, error) {
	cr := corpusReport{Label: label}
	docs, err := dag.GetJSON[[]docMeta](s, keyDocs)
	if err != nil {
		return cr, err
	}
	for _, d := range docs {
		if d.Skipped != "" {
			cr.Skipped = append(cr.Skipped, skippedDoc{Name: d.Name, Reason: d.Skipped})
			continue
		}
		cr.Documents++
		n := d.Notes
		switch {
		case n.UTF16:
			cr.UTF16++
		case n.BOM:
			cr.BOMs++
		}
		if n.InvalidUTF8 > 0 {
			cr.InvalidUTF8++
		}
		if n.NULs > 0 {
			cr.NULs++
		}
		if n.CR {
			cr.CR++
		}
	}
	cs, err := dag.GetJSON[chunkStats](s, keyChunks)
	if err != nil {
		return cr, err
	}
	cr.Chunks, cr.LinesCut = cs.Chunks, cs.Cut
	for k := range shards {
		st, err := dag.GetJSON[shardStats](s, statsKey(k))
		if err != nil {
			return cr, err
		}
		cr.TermsCut += st.Cut
	}
	return cr, nil
}

// summary is one sentence: "/data/docs: 12 documents, 340 chunks, 2 files
// skipped."
func (cr corpusReport) summary() string {
	s := fmt.Sprintf("%s: %s, %s", cr.Label, plural(cr.Documents, "document"), plural(cr.Chunks, "chunk"))
	if n := len(cr.Skipped); n > 0 {
		s += fmt.Sprintf(", %s skipped", plural(n, "file"))
	}
	return s + "."
}

// repairs lists what was repaired, or "".
func (cr corpusReport) repairs() string {
	var parts []string
	add := func(n int, what func(int) string) {
		if n > 0 {
			parts = append(parts, what(n))
		}
	}
	add(cr.UTF16, func(n int) string { return plural(n, "file") + " converted from UTF-16" })
	add(cr.BOMs, func(n int) string { return plural(n, "byte-order mark") + " removed" })
	add(cr.InvalidUTF8, func(n int) string { return plural(n, "file") + " with invalid UTF-8 (replaced with U+FFFD)" })
	add(cr.NULs, func(n int) string { return plural(n, "file") + " with NUL bytes (replaced with spaces)" })
	add(cr.CR, func(n int) string { return plural(n, "file") + " with CR line ends" })
	add(cr.LinesCut, func(n int) string { return plural(n, "sentence") + " longer than a chunk cut" })
	add(cr.TermsCut, func(n int) string { return plural(n, "term") + fmt.Sprintf(" longer than %d bytes cut", maxTermBytes) })
	return strings.Join(parts, ", ")
}

// skippedList names the first n skipped files and why.
func skippedList(docs []docMeta, n int) string {
	var parts []string
	total := 0
	for _, d := range docs {
		if d.Skipped == "" {
			continue
		}
		if total++; total <= n {
			parts = append(parts, d.Name+" ("+d.Skipped+")")
		}
	}
	s := strings.Join(parts, ", ")
	if total > n {
		s += fmt.Sprintf(" and %d more", total-n)
	}
	return s
}
