package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/executor"
)

// writeFile is waitingRuns' write for tests: a plain write.
func writeFile(name string, data []byte) error { return os.WriteFile(name, data, 0o600) }

// A run waiting for input is answered by a serve started after the one
// that made it stopped: its file in the storage directory brings it back.
func TestServeWaitingRunSurvivesRestart(t *testing.T) {
	storage := t.TempDir()
	ts := startServer(t, func(o *serveOptions) { o.storage = storage })
	code, _, body := post(t, ts.url, `{"question":"zyzzyva quokka?","clarify":true}`)
	require.Equal(t, http.StatusAccepted, code, string(body))
	var rr runResponse
	require.NoError(t, json.Unmarshal(body, &rr))
	file := filepath.Join(storage, "serve", "waiting", rr.RunID+".json")
	require.FileExists(t, file)
	require.NoError(t, ts.stop())

	ts = startServer(t, func(o *serveOptions) { o.storage = storage })
	assert.Equal(t, 1, ts.s.waiting.len())
	resp, err := http.Post(ts.url+"/v1/runs/"+rr.RunID+"/input", "application/json", strings.NewReader(`{"input":"under-voltage"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var res runResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&res))
	assert.Equal(t, rr.RunID, res.RunID)
	assert.Equal(t, "under-voltage", res.Question)
	require.NotNil(t, res.Answer)
	assert.NoFileExists(t, file, "answered: no longer waiting")
	require.NoError(t, ts.stop())
}

func waitingFile(t *testing.T, dir, id string, rec any) {
	t.Helper()
	b, err := json.Marshal(rec)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, id+".json"), b, 0o600))
}

// load brings back what it can use, forgets what waited too long, and sets
// aside, with a warning naming the file, what it cannot use.
func TestWaitingRunsLoad(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	qs := []executor.Question{{Node: "answer", Text: "which?"}}
	good := waitingRecord{RunID: "good", Question: "q?", Questions: qs, Since: now.Add(-time.Minute)}
	waitingFile(t, dir, "good", good)
	waitingFile(t, dir, "old", waitingRecord{RunID: "old", Question: "q?", Questions: qs, Since: now.Add(-2 * time.Hour)})
	waitingFile(t, dir, "renamed", waitingRecord{RunID: "other", Question: "q?", Questions: qs, Since: now})
	waitingFile(t, dir, "noquestions", waitingRecord{RunID: "noquestions", Question: "q?", Since: now})
	waitingFile(t, dir, "nosince", waitingRecord{RunID: "nosince", Question: "q?", Questions: qs})
	waitingFile(t, dir, "long", waitingRecord{RunID: "long", Question: strings.Repeat("x", maxQuestionBytes+1), Questions: qs, Since: now})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "torn.json"), []byte(`{"run_id":"torn","quest`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "huge.json"), make([]byte, maxWaitingRecord+1), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".good.json.tmp-123"), []byte("{"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("kept"), 0o600))

	var logs strings.Builder
	w := newWaitingRuns(dir, writeFile, slog.New(slog.NewTextHandler(&logs, nil)))
	n, err := w.load(now, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	r, ok := w.take("good", now, time.Hour)
	require.True(t, ok)
	assert.Equal(t, "q?", r.question)
	assert.Equal(t, qs, r.questions)
	assert.True(t, good.Since.Equal(r.since))

	var names []string
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"renamed.json.bad", "noquestions.json.bad", "nosince.json.bad", "long.json.bad",
		"torn.json.bad", "huge.json.bad", "notes.txt"}, names, "good taken, old forgotten, the temporary file removed")
	for _, want := range []string{"renamed.json", `run_id \"other\" does not match`, "no questions", "no since",
		"question of 4097 bytes (accepted: 1 to 4096)", "not a waiting run's record", "huge.json"} {
		assert.Contains(t, logs.String(), want)
	}

	// A directory that does not exist yet holds no run.
	n, err = newWaitingRuns(filepath.Join(dir, "none"), writeFile, slog.New(slog.DiscardHandler)).load(now, time.Hour)
	require.NoError(t, err)
	assert.Zero(t, n)
}

// Past the bound, load keeps the newest and removes the others' files;
// add forgets the oldest, file included.
func TestWaitingRunsFilesBounded(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	qs := []executor.Question{{Node: "answer", Text: "which?"}}
	for i := range maxWaitingRuns + 3 {
		id := fmt.Sprintf("run-%03d", i)
		waitingFile(t, dir, id, waitingRecord{RunID: id, Question: "q?", Questions: qs, Since: t0.Add(time.Duration(i) * time.Second)})
	}
	w := newWaitingRuns(dir, writeFile, slog.New(slog.DiscardHandler))
	n, err := w.load(t0.Add(time.Hour), 2*time.Hour)
	require.NoError(t, err)
	assert.Equal(t, maxWaitingRuns, n)
	for _, id := range []string{"run-000", "run-001", "run-002"} {
		assert.NoFileExists(t, filepath.Join(dir, id+".json"))
	}
	w.add("run-new", waitingRun{question: "q?", questions: qs, since: t0.Add(time.Hour)}, 2*time.Hour)
	assert.Equal(t, maxWaitingRuns, w.len())
	assert.NoFileExists(t, filepath.Join(dir, "run-003.json"), "the oldest forgotten")
	assert.FileExists(t, filepath.Join(dir, "run-new.json"))
	// Adding a run again (refused at admission) forgets no other.
	w.add("run-new", waitingRun{question: "q?", questions: qs, since: t0.Add(time.Hour)}, 2*time.Hour)
	assert.FileExists(t, filepath.Join(dir, "run-004.json"))
}

// A run whose file cannot be written still waits, in memory, with a
// warning; one whose ID cannot name a file too.
func TestWaitingRunsWriteFails(t *testing.T) {
	var logs strings.Builder
	w := newWaitingRuns(t.TempDir(), func(string, []byte) error { return errors.New("disk full") }, slog.New(slog.NewTextHandler(&logs, nil)))
	now := time.Now()
	w.add("r1", waitingRun{question: "q?", since: now}, time.Hour)
	w.add("../escape", waitingRun{question: "q?", since: now}, time.Hour)
	assert.Equal(t, 2, w.len())
	assert.Contains(t, logs.String(), "disk full")
	assert.Contains(t, logs.String(), `run ID \"../escape\" cannot name a file`)
	_, ok := w.take("../escape", now, time.Hour)
	assert.True(t, ok)
}
