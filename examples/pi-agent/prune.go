package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cemaf-go/cemaf/executor"
)

// pruneStorage removes what the checkpoint store no longer needs, given the
// runs it keeps (its GC keeps the unfinished runs of the last 7 days and
// the 20 most recent finished ones): the page directories of every run but
// the unfinished ones it keeps (a finished run cannot be resumed, so its
// pages serve nothing), and the reports of the runs it forgot. Call it
// after the runtime is closed, under the checkpoint file's lock holder's
// exclusion: only one pi-agent at a time uses a storage directory.
func pruneStorage(storage string, runs []executor.RunRecord, logger *slog.Logger) {
	known := map[string]bool{}
	unfinished := map[string]bool{}
	for _, r := range runs {
		known[r.ID] = true
		unfinished[r.ID] = !r.Finished()
	}
	pages, _ := os.ReadDir(filepath.Join(storage, "pages"))
	for _, e := range pages {
		if e.IsDir() && !unfinished[e.Name()] {
			if err := os.RemoveAll(filepath.Join(storage, "pages", e.Name())); err != nil {
				logger.Warn("pruning the pages of an old run", "run", e.Name(), "error", err)
			}
		}
	}
	reports, _ := os.ReadDir(filepath.Join(storage, "reports"))
	for _, e := range reports {
		id, ok := strings.CutSuffix(e.Name(), ".md")
		if ok && e.Type().IsRegular() && !known[id] {
			if err := os.Remove(filepath.Join(storage, "reports", e.Name())); err != nil {
				logger.Warn("pruning the report of an old run", "run", id, "error", err)
			}
		}
	}
}
