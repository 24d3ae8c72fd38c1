package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/internal/boundedread"
)

// maxWaitingRuns bounds the runs serve keeps waiting for input; past it the
// oldest is forgotten.
const maxWaitingRuns = 256

// maxWaitingFiles bounds the files load looks at in the waiting directory:
// a directory filled by something else costs no more than this.
const maxWaitingFiles = 4 * maxWaitingRuns

// maxWaitingRecord bounds a waiting run's file: a question of at most
// maxQuestionBytes and the questions the run asks.
const maxWaitingRecord = 64 << 10

// waitingRun is a serve run waiting for input: what a POST to its input
// needs to run it again.
type waitingRun struct {
	question  string
	questions []executor.Question
	since     time.Time
}

// waitingRecord is a waiting run's file.
type waitingRecord struct {
	RunID     string              `json:"run_id"`
	Question  string              `json:"question"`
	Questions []executor.Question `json:"questions"`
	Since     time.Time           `json:"since"`
}

// waitingRuns are the runs waiting for input, each for at most the idle
// timeout. They hold no resource: answering one runs its query graph again
// with the answer (the index is shared).
//
// With a directory (newWaitingRuns), each waiting run is also a file
// there, <run ID>.json, replaced atomically, so that a serve restarted
// after a crash, a power cut or an upgrade still answers it (load). The
// zero value keeps them in memory only. Files are written and removed
// outside mu: a slow SD card delays the request that waits, not /metrics.
type waitingRuns struct {
	dir    string
	write  func(name string, data []byte) error // atomic replace
	logger *slog.Logger

	// mu guards m.
	mu sync.Mutex
	m  map[string]waitingRun
}

// newWaitingRuns keeps the waiting runs in dir too, writing their files
// with write (which must replace a file atomically).
func newWaitingRuns(dir string, write func(name string, data []byte) error, logger *slog.Logger) *waitingRuns {
	return &waitingRuns{dir: dir, write: write, logger: logger}
}

// runIDPattern is what a run ID must look like to name a file.
var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// add records run id as waiting, forgetting those older than ttl and, past
// maxWaitingRuns, the oldest. A run whose file cannot be written still
// waits, in memory only (logged).
func (w *waitingRuns) add(id string, run waitingRun, ttl time.Duration) {
	if w.dir != "" {
		if err := w.save(id, run); err != nil {
			w.logger.Warn("pi-agent serve: a run waiting for input is kept in memory only: a restart forgets it", "run", id, "error", err)
		}
	}
	w.mu.Lock()
	if w.m == nil {
		w.m = map[string]waitingRun{}
	}
	var forgotten []string
	oldest := ""
	for k, r := range w.m {
		if run.since.Sub(r.since) > ttl {
			delete(w.m, k)
			forgotten = append(forgotten, k)
		} else if k != id && (oldest == "" || r.since.Before(w.m[oldest].since)) {
			oldest = k
		}
	}
	if _, again := w.m[id]; !again && len(w.m) >= maxWaitingRuns {
		delete(w.m, oldest)
		forgotten = append(forgotten, oldest)
	}
	w.m[id] = run
	w.mu.Unlock()
	w.remove(forgotten...)
}

// take removes and returns run id, if it waits and is not older than ttl.
func (w *waitingRuns) take(id string, now time.Time, ttl time.Duration) (waitingRun, bool) {
	w.mu.Lock()
	r, ok := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ok {
		w.remove(id)
	}
	if ok && now.Sub(r.since) > ttl {
		return waitingRun{}, false
	}
	return r, ok
}

// len counts the waiting runs.
func (w *waitingRuns) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}

// save writes run id's file.
func (w *waitingRuns) save(id string, run waitingRun) error {
	if !runIDPattern.MatchString(id) {
		return fmt.Errorf("run ID %q cannot name a file (accepted: %s)", id, runIDPattern)
	}
	b, err := json.Marshal(waitingRecord{RunID: id, Question: run.question, Questions: run.questions, Since: run.since})
	if err != nil {
		return err
	}
	if len(b) > maxWaitingRecord {
		return fmt.Errorf("its record is %d bytes, over the %d a waiting run's file may hold", len(b), maxWaitingRecord)
	}
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return err
	}
	return w.write(filepath.Join(w.dir, id+".json"), b)
}

// remove deletes the files of runs ids (a missing one is not an error).
func (w *waitingRuns) remove(ids ...string) {
	if w.dir == "" {
		return
	}
	for _, id := range ids {
		if !runIDPattern.MatchString(id) {
			continue // never written
		}
		if err := os.Remove(filepath.Join(w.dir, id+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.logger.Warn("pi-agent serve: removing the file of a run no longer waiting", "run", id, "error", err)
		}
	}
}

// load brings back the runs waiting in the directory at now: those waiting
// no longer than ttl, the newest maxWaitingRuns of them. It removes the
// files of runs that waited too long and leftover temporary files, and
// sets a file it cannot use aside as <name>.bad, with a warning naming it
// and why. It returns how many runs it brought back; an error only when
// the directory cannot be read at all.
func (w *waitingRuns) load(now time.Time, ttl time.Duration) (int, error) {
	d, err := os.Open(w.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("runs waiting for input: %w", err)
	}
	entries, err := d.ReadDir(maxWaitingFiles)
	d.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("runs waiting for input: reading %s: %w", w.dir, err)
	}
	if len(entries) == maxWaitingFiles {
		w.logger.Warn("pi-agent serve: the directory of runs waiting for input holds too many files; only some were read", "dir", w.dir, "read", maxWaitingFiles)
	}
	var recs []waitingRecord
	var expired []string
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(w.dir, name)
		switch {
		case strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-"):
			_ = os.Remove(path) // a write cut short
			continue
		case !strings.HasSuffix(name, ".json"):
			continue
		}
		rec, err := readWaitingRecord(path, strings.TrimSuffix(name, ".json"))
		if err != nil {
			w.setAside(path, err)
			continue
		}
		if now.Sub(rec.Since) > ttl {
			expired = append(expired, rec.RunID)
			continue
		}
		recs = append(recs, rec)
	}
	// The newest first; past the bound, the oldest are forgotten.
	slices.SortFunc(recs, func(a, b waitingRecord) int {
		return cmp.Or(b.Since.Compare(a.Since), strings.Compare(a.RunID, b.RunID))
	})
	if len(recs) > maxWaitingRuns {
		for _, r := range recs[maxWaitingRuns:] {
			expired = append(expired, r.RunID)
		}
		recs = recs[:maxWaitingRuns]
	}
	w.remove(expired...)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]waitingRun{}
	}
	for _, r := range recs {
		w.m[r.RunID] = waitingRun{question: r.Question, questions: r.Questions, since: r.Since}
	}
	return len(recs), nil
}

// setAside renames a waiting run's file that cannot be used to
// <name>.bad, so that it is kept for a look but not read again.
func (w *waitingRuns) setAside(path string, why error) {
	aside := path + ".bad"
	if err := os.Rename(path, aside); err != nil {
		w.logger.Warn("pi-agent serve: a file of a run waiting for input cannot be used, nor set aside", "file", path, "error", why, "rename_error", err)
		return
	}
	w.logger.Warn("pi-agent serve: a file of a run waiting for input cannot be used; set aside", "file", path, "error", why, "moved_to", aside)
}

// readWaitingRecord reads and checks the waiting run's file path, which
// must be id's.
func readWaitingRecord(path, id string) (waitingRecord, error) {
	b, err := boundedread.ReadFile(path, maxWaitingRecord)
	if err != nil {
		return waitingRecord{}, err
	}
	var rec waitingRecord
	if err := decodeStrict(b, &rec); err != nil {
		return waitingRecord{}, fmt.Errorf("not a waiting run's record: %w", err)
	}
	switch {
	case rec.RunID != id:
		return waitingRecord{}, fmt.Errorf("run_id %q does not match the file's name", rec.RunID)
	case strings.TrimSpace(rec.Question) == "" || len(rec.Question) > maxQuestionBytes:
		return waitingRecord{}, fmt.Errorf("question of %d bytes (accepted: 1 to %d)", len(rec.Question), maxQuestionBytes)
	case len(rec.Questions) == 0:
		return waitingRecord{}, errors.New("no questions: the run asks nothing")
	case rec.Since.IsZero():
		return waitingRecord{}, errors.New("no since: when the run began to wait is unknown")
	}
	for i, q := range rec.Questions {
		if q.Node == "" {
			return waitingRecord{}, fmt.Errorf("questions[%d]: no node", i)
		}
	}
	return rec, nil
}
