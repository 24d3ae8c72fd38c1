package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/cemaf-go/cemaf/internal/boltcheck"
)

// Errors of the checkpoint store.
var (
	// ErrCheckpointCorrupt is returned by OpenCheckpoints when the file is
	// damaged or is not a checkpoint file, and by resumes that find a
	// damaged run record. Set CheckpointOptions.StartFresh to move the file
	// aside and start a new one instead.
	ErrCheckpointCorrupt = errors.New("checkpoint file is corrupt")
	// ErrGraphChanged is matched by the *GraphChangedError of a resume
	// whose graph differs from the one the run started with.
	ErrGraphChanged = errors.New("graph changed since the run started")
	// ErrRunFinished is returned when asked to resume a run that already
	// finished successfully.
	ErrRunFinished = errors.New("run already finished")
	// ErrStoreClosed is returned by a closed CheckpointStore.
	ErrStoreClosed = errors.New("checkpoint store closed")
	// ErrCheckpointLocked is returned by OpenCheckpoints when another
	// process (or another store in this one) holds the file. The error
	// names the file and wraps the cause.
	ErrCheckpointLocked = errors.New("checkpoint file is locked by another process")
	// ErrRunNotFound is returned when the store has no run with the ID
	// asked for: by Run and CompletedNodes, and by RunWith with
	// RunOptions.Resume. The error names the ID and the file. It also
	// matches fs.ErrNotExist (and so os.ErrNotExist).
	ErrRunNotFound error = notFoundError("run not found")
)

// notFoundError is the type of ErrRunNotFound.
type notFoundError string

func (e notFoundError) Error() string { return string(e) }

// Is matches fs.ErrNotExist.
func (notFoundError) Is(target error) bool { return target == fs.ErrNotExist }

// runNotFound is the error for a run id the store does not hold.
func (s *CheckpointStore) runNotFound(id string) error {
	return fmt.Errorf("executor: checkpoint file %s: %w: %q", s.path, ErrRunNotFound, id)
}

const checkpointFormat = "cemaf-checkpoints/1"

var (
	bucketMeta    = []byte("cemaf")
	bucketRuns    = []byte("runs")
	keyFormat     = []byte("format")
	keyInfo       = []byte("info")
	keyGraph      = []byte("graph")
	keyInputs     = []byte("inputs")
	keyAnswers    = []byte("answers")
	bucketDone    = []byte("done")
	bucketState   = []byte("state")
	bucketDeleted = []byte("deleted")
)

// CommitPolicy groups node completions into checkpoint commits (one bbolt
// transaction and fsync each). Whatever the policy, a node's dependents start
// only after its completion is durable; grouping trades a little latency for
// far fewer bytes written, which matters on SD cards (see BENCHMARKS.md: about
// 60 KB per node when committing every node, 6 KB in groups of 16).
//
// A commit starts as soon as any of these holds: MaxNodes completions are
// pending; the oldest pending one is MaxDelay old; a class (CPU or IO) has
// a free slot, nothing ready to fill it and nodes waiting for their
// dependencies, or nothing runs at all (so grouping never stalls a chain of
// nodes); the run is ending. Completions that arrive while a commit is in progress go
// together in the next one.
type CommitPolicy struct {
	// MaxNodes is the group size that triggers a commit. 0 means
	// DefaultCommitNodes; 1 commits every node on its own.
	MaxNodes int
	// MaxDelay bounds how long a completion waits for its group. 0 means
	// DefaultCommitDelay.
	MaxDelay time.Duration
}

// Defaults of CommitPolicy.
const (
	DefaultCommitNodes = 16
	DefaultCommitDelay = 250 * time.Millisecond
)

// CheckpointOptions configures OpenCheckpoints. The zero value is valid.
type CheckpointOptions struct {
	// Commit groups commits; see CommitPolicy.
	Commit CommitPolicy
	// KeepFinished is how many successfully finished runs are kept for
	// inspection (default 20); older ones are removed.
	KeepFinished int
	// MaxAge removes runs, finished or not, last updated longer ago than
	// this (default 7 days).
	MaxAge time.Duration
	// StartFresh makes OpenCheckpoints move a corrupt or foreign file aside
	// (renamed with a ".corrupt-<time>" suffix) and start a new one, instead
	// of failing with ErrCheckpointCorrupt.
	StartFresh bool
	// Logger receives the store's diagnostics. nil discards them.
	Logger *slog.Logger
}

// CheckpointStore records the progress of runs in a bbolt file so that a run
// interrupted by a crash or power loss can resume. Give it to an Executor in
// Options.Checkpoints; resume a run by running the same graph with the same
// RunOptions.ID.
//
// For every run the store keeps the graph's identity, the completed nodes,
// and the latest value of every State key a completed node changed (values
// are copied into the file). Resuming skips the completed nodes and restores
// those keys into the State given to the run.
//
// A CheckpointStore is safe for concurrent use by several runs (with
// different IDs). Only one process may open a file at a time.
type CheckpointStore struct {
	path   string
	opts   CheckpointOptions
	logger *slog.Logger

	// mu guards db against use after Close.
	mu sync.RWMutex
	db *bolt.DB
	// wedge guards db's transactions (tx); once a write has panicked,
	// writes fail at once and the file is left open until the process
	// ends (boltcheck.Wedge).
	wedge boltcheck.Wedge
}

// OpenCheckpoints opens (or creates) the checkpoint file at path, verifies
// it, and removes expired runs. A damaged or foreign file is an error
// wrapping ErrCheckpointCorrupt (unless StartFresh is set); nothing in it is
// overwritten.
func OpenCheckpoints(path string, opts CheckpointOptions) (*CheckpointStore, error) {
	if opts.KeepFinished < 0 {
		return nil, fmt.Errorf("executor: CheckpointOptions.KeepFinished = %d: must be ≥ 0 (0 = 20)", opts.KeepFinished)
	}
	if opts.MaxAge < 0 {
		return nil, fmt.Errorf("executor: CheckpointOptions.MaxAge = %v: must be ≥ 0 (0 = 7 days)", opts.MaxAge)
	}
	if opts.Commit.MaxNodes < 0 || opts.Commit.MaxDelay < 0 {
		return nil, fmt.Errorf("executor: CheckpointOptions.Commit = %+v: MaxNodes and MaxDelay must be ≥ 0", opts.Commit)
	}
	if opts.KeepFinished == 0 {
		opts.KeepFinished = 20
	}
	if opts.Commit.MaxNodes == 0 {
		opts.Commit.MaxNodes = DefaultCommitNodes
	}
	if opts.Commit.MaxDelay == 0 {
		opts.Commit.MaxDelay = DefaultCommitDelay
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = 7 * 24 * time.Hour
	}
	s := &CheckpointStore{path: path, opts: opts, logger: opts.Logger}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	db, err := openCheckpointDB(path)
	if errors.Is(err, ErrCheckpointCorrupt) && opts.StartFresh {
		aside := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("executor: checkpoint file %s: %w; moving it aside failed: %v", path, err, rerr)
		}
		s.logger.Warn("checkpoint file was corrupt; moved aside and starting fresh", "path", path, "moved_to", aside, "error", err)
		db, err = openCheckpointDB(path)
	}
	if err != nil {
		return nil, err
	}
	s.db = db
	if _, err := s.GC(time.Now()); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func openCheckpointDB(path string) (*bolt.DB, error) {
	// bbolt trusts the file it maps: a damaged one can make a read-write
	// open panic or fault where no recover reaches. boltcheck.Open verifies
	// an existing file by reading it first, and repairs a damaged meta page
	// from the good one.
	db, err := boltcheck.Open(path, boltcheck.Options{
		Bolt:    &bolt.Options{Timeout: 2 * time.Second},
		Mode:    0o600,
		Inspect: inspectCheckpointFile,
	})
	switch {
	case errors.Is(err, boltcheck.ErrLocked):
		return nil, fmt.Errorf("executor: checkpoint file %s: %w: %w", path, ErrCheckpointLocked, err)
	case errors.Is(err, boltcheck.ErrNotBolt), errors.Is(err, boltcheck.ErrDamaged), errors.Is(err, errNotCheckpoint):
		return nil, fmt.Errorf("executor: checkpoint file %s: %w: %w", path, ErrCheckpointCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("executor: open checkpoint file %s: %w", path, err)
	}
	initialise := func(tx *bolt.Tx) error {
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if m.Get(keyFormat) == nil {
			if err := m.Put(keyFormat, []byte(checkpointFormat)); err != nil {
				return err
			}
		}
		_, err = tx.CreateBucketIfNotExists(bucketRuns)
		return err
	}
	// A panic here means the file changed under us since it was verified.
	var wedge boltcheck.Wedge
	err = wedge.Guard(true, func() error { return db.Update(initialise) }, func(what string) error {
		return fmt.Errorf("%w: %s", ErrCheckpointCorrupt, what)
	})
	if err != nil {
		if !wedge.Set() { // else Close would wait for bbolt's writer lock
			db.Close()
		}
		return nil, fmt.Errorf("executor: initialise checkpoint file %s: %w", path, err)
	}
	return db, nil
}

// errNotCheckpoint is the error of a bbolt file that is not a checkpoint
// file.
var errNotCheckpoint = errors.New("not a cemaf checkpoint file")

// inspectCheckpointFile accepts an empty bbolt file or one with the
// checkpoint format mark.
func inspectCheckpointFile(tx *bolt.Tx) error {
	empty := true
	if err := tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil }); err != nil {
		return err
	}
	if empty {
		return nil
	}
	if m := tx.Bucket(bucketMeta); m == nil || string(m.Get(keyFormat)) != checkpointFormat {
		return errNotCheckpoint
	}
	return nil
}

// Path returns the file the store writes.
func (s *CheckpointStore) Path() string { return s.path }

// Close closes the file. Runs using the store must have returned.
func (s *CheckpointStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	if s.wedge.Set() {
		s.db = nil // bbolt's Close would wait for the writer lock
		return s.corrupt(boltcheck.Wedged)
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// corrupt is the error, wrapping ErrCheckpointCorrupt and naming the file,
// of a panic in a transaction or of a wedged file (tx).
func (s *CheckpointStore) corrupt(what string) error {
	return fmt.Errorf("checkpoint file %s: %w: %s", s.path, ErrCheckpointCorrupt, what)
}

// RunRecord describes a run in the store.
type RunRecord struct {
	ID    string `json:"id"`
	Graph string `json:"graph"` // the graph's fingerprint
	Nodes int    `json:"nodes"`
	// Completed counts the nodes whose completion is durable.
	Completed int       `json:"completed"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	// Status is "running" (in progress, or interrupted by a crash),
	// "succeeded", "failed", "cancelled" or "waiting" (nodes wait for
	// input: Questions). Only succeeded runs are finished; the others can
	// be resumed.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Questions are the questions of the nodes waiting for input when the
	// run last ended (see Interrupt); resume with RunOptions.Answers.
	Questions []Question `json:"questions,omitempty"`
	// DurableState is set when the run's State keeps its own values
	// durably (a paging.Pager in ModeDurable): the store then records only
	// which nodes completed, and a resume must use that same State.
	DurableState bool `json:"durable_state,omitempty"`
	// Inputs are the run's inputs (RunOptions.Inputs) as recorded when it
	// started, or as replaced by a resume with IgnoreInputs. Nil for a run
	// recorded without inputs.
	Inputs map[string]string `json:"inputs,omitempty"`
	// AcceptedChanges lists the input changes that resumes with
	// RunOptions.IgnoreInputs accepted, oldest first.
	AcceptedChanges []InputChange `json:"accepted_changes,omitempty"`
}

// Finished reports whether the run succeeded (and cannot be resumed).
func (r RunRecord) Finished() bool { return r.Status == "succeeded" }

// view runs fn in a read transaction and update in a write transaction;
// both turn a panic inside bbolt (a damaged page) or a memory fault on its
// mapping (a file truncated or unreadable while open) into
// ErrCheckpointCorrupt. A write that panicked wedges the store (wedged).
func (s *CheckpointStore) view(fn func(tx *bolt.Tx) error) error {
	return s.tx(false, fn)
}

func (s *CheckpointStore) update(fn func(tx *bolt.Tx) error) error {
	return s.tx(true, fn)
}

func (s *CheckpointStore) tx(writable bool, fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrStoreClosed
	}
	// boltcheck.Wedge: a memory fault on bbolt's mapping (a file truncated
	// while open, a read error of the card under a mapped page) is a
	// panic too.
	return s.wedge.Guard(writable, func() error {
		if writable {
			return s.db.Update(fn)
		}
		return s.db.View(fn)
	}, s.corrupt)
}

// Runs lists the runs in the store, newest first.
func (s *CheckpointStore) Runs() ([]RunRecord, error) {
	var out []RunRecord
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEachBucket(func(k []byte) error {
			rec, err := readRecord(tx.Bucket(bucketRuns).Bucket(k))
			if err != nil {
				return fmt.Errorf("run %q: %w", k, err)
			}
			out = append(out, rec)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("executor: list runs: %w", err)
	}
	slices.SortFunc(out, func(a, b RunRecord) int { return b.Created.Compare(a.Created) })
	return out, nil
}

// Run returns the record of one run, with the inputs it recorded (for a CLI
// to show them, or to resume with them); the error matches ErrRunNotFound
// (and os.ErrNotExist) when there is none.
func (s *CheckpointStore) Run(id string) (RunRecord, error) {
	var rec RunRecord
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns).Bucket([]byte(id))
		if b == nil {
			return ErrRunNotFound
		}
		var err error
		rec, err = readRecord(b)
		return err
	})
	if errors.Is(err, ErrRunNotFound) {
		return rec, s.runNotFound(id)
	}
	if err != nil {
		return rec, fmt.Errorf("executor: run %q: %w", id, err)
	}
	return rec, nil
}

// CompletedNodes returns the IDs of the nodes of a run whose completion is
// durable in the store, sorted. The error matches ErrRunNotFound (and
// os.ErrNotExist) when the store has no such run.
func (s *CheckpointStore) CompletedNodes(id string) ([]string, error) {
	var out []string
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns).Bucket([]byte(id))
		if b == nil {
			return ErrRunNotFound
		}
		done := b.Bucket(bucketDone)
		if done == nil {
			return fmt.Errorf("%w: run %q lacks its completions", ErrCheckpointCorrupt, id)
		}
		return done.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if errors.Is(err, ErrRunNotFound) {
		return nil, s.runNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("executor: run %q: %w", id, err)
	}
	return out, nil
}

// DeleteRun removes a run and everything recorded for it.
func (s *CheckpointStore) DeleteRun(id string) error {
	err := s.update(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketRuns).DeleteBucket([]byte(id))
		if errors.Is(err, berrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("executor: delete run %q: %w", id, err)
	}
	return nil
}

// GC removes runs last updated before now − MaxAge, and finished runs beyond
// the KeepFinished most recent. It returns how many runs it removed. It runs
// at open and after every run.
func (s *CheckpointStore) GC(now time.Time) (int, error) {
	runs, err := s.Runs()
	if err != nil {
		return 0, err
	}
	var drop []string
	finished := 0
	for _, r := range runs { // newest first
		switch {
		case now.Sub(r.Updated) > s.opts.MaxAge:
			drop = append(drop, r.ID)
		case r.Finished():
			if finished++; finished > s.opts.KeepFinished {
				drop = append(drop, r.ID)
			}
		}
	}
	if len(drop) == 0 {
		return 0, nil
	}
	err = s.update(func(tx *bolt.Tx) error {
		for _, id := range drop {
			if err := tx.Bucket(bucketRuns).DeleteBucket([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("executor: checkpoint GC: %w", err)
	}
	return len(drop), nil
}

func readInfo(b *bolt.Bucket) (RunRecord, error) {
	var rec RunRecord
	raw := b.Get(keyInfo)
	if raw == nil {
		return rec, fmt.Errorf("%w: run record without info", ErrCheckpointCorrupt)
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return rec, fmt.Errorf("%w: run info: %v", ErrCheckpointCorrupt, err)
	}
	return rec, nil
}

// readRecord is readInfo with the run's inputs, for Run and Runs.
func readRecord(b *bolt.Bucket) (RunRecord, error) {
	rec, err := readInfo(b)
	if err != nil {
		return rec, err
	}
	ir, err := readInputs(b)
	if err != nil {
		return rec, err
	}
	rec.Inputs, rec.AcceptedChanges = ir.Inputs, ir.Accepted
	return rec, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}
