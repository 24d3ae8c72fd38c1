package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A damaged checkpoint file never blocks fresh work: a new run moves it
// aside with a warning; runs and resumes say what to do.
func TestDamagedCheckpointFile(t *testing.T) {
	storage := t.TempDir()
	db := filepath.Join(storage, "runs.db")
	require.NoError(t, os.WriteFile(db, []byte(strings.Repeat("not a bbolt file ", 1000)), 0o600))

	code, _, errOut := runCLI(t, nil, "runs", "--storage", storage)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "checkpoint file is corrupt")
	assert.Contains(t, errOut, "a new run, pi-agent run, moves the damaged file aside and starts a fresh one")

	code, _, errOut = runCLI(t, nil, "run", "--storage", storage, "--resume", "20260101T000000Z-00000000")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "the runs recorded in it cannot be resumed")

	code, out, errOut := runCLI(t, nil, "run", "--storage", storage)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "(extractive)")
	assert.Contains(t, errOut, "pi-agent run: warning: moving the damaged checkpoint file aside and starting a new one")
	aside, _ := filepath.Glob(db + ".corrupt-*")
	require.Len(t, aside, 1, "the damaged file is kept aside")
	code, out, _ = runCLI(t, nil, "runs", "--storage", storage)
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "succeeded")
}

func TestResumeOfAnUnknownOrFinishedRun(t *testing.T) {
	storage := t.TempDir()
	code, _, errOut := runCLI(t, nil, "run", "--storage", storage, "--resume", "20260101T000000Z-00000000")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "--resume 20260101T000000Z-00000000: no run with this ID in "+storage+" (it has no runs yet)")

	code, out, errOut := runCLI(t, nil, "run", "--storage", storage, "--json")
	require.Equal(t, exitOK, code, errOut)
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	code, _, errOut = runCLI(t, nil, "run", "--storage", storage, "--resume", "20260101T000000Z-00000000")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "--resume 20260101T000000Z-00000000: no run with this ID in "+storage+" (pi-agent runs --storage "+storage+" lists the runs)")
	code, _, errOut = runCLI(t, nil, "run", "--storage", storage, "--resume", s.RunID)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "the run already finished; its report is "+filepath.Join(storage, "reports", s.RunID+".md"))
	entries, _ := os.ReadDir(filepath.Join(storage, "pages"))
	assert.Empty(t, entries, "no pages are left for runs that cannot resume")
}

// Reports and pages are pruned with the checkpoints: the pages of finished
// runs at once, reports when the checkpoint store forgets their run (it
// keeps 20 finished runs).
func TestStorageIsPruned(t *testing.T) {
	if testing.Short() {
		t.Skip("22 runs")
	}
	storage := t.TempDir()
	for range 22 {
		code, _, errOut := runCLI(t, nil, "run", "--storage", storage)
		require.Equal(t, exitOK, code, errOut)
	}
	reports, _ := filepath.Glob(filepath.Join(storage, "reports", "*.md"))
	assert.Len(t, reports, 20, "one report per run the store keeps")
	pages, _ := os.ReadDir(filepath.Join(storage, "pages"))
	assert.Empty(t, pages, "finished runs keep no pages")
	code, out, _ := runCLI(t, nil, "runs", "--storage", storage, "--json")
	require.Equal(t, exitOK, code)
	var runs []struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(out), &runs))
	require.Len(t, runs, 20)
	for _, r := range runs {
		assert.FileExists(t, filepath.Join(storage, "reports", r.ID+".md"))
	}
}
