package paging

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cemaf-go/cemaf/disk"
	"github.com/cemaf-go/cemaf/internal/boltcheck"
	"github.com/cemaf-go/cemaf/limit"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Layout of the page file (a bbolt database):
//
//	meta/format  = formatID
//	meta/state   = "open" while a Pager has it open, "clean" after Close
//	values/'k'+key = header (blob id, size, page size, CRC-32C)
//	pages/blob(8 BE)+index(4 BE) = record (LZ4 frame or raw page)
//
// A value's header is committed in the same transaction as its last page
// (or later), and the pages of the blob it replaces are deleted in that same
// transaction, so every committed header points at a complete set of pages.
const (
	fileName = "pages.db"
	formatID = "cemaf-paging/1"

	stateOpen  = "open"
	stateClean = "clean"
)

var (
	bucketMeta   = []byte("meta")
	bucketValues = []byte("values")
	bucketPages  = []byte("pages")
	keyFormat    = []byte("format")
	keyState     = []byte("state")
)

// lockTimeout is how long Wrap waits for another process's lock on the
// page file before failing with ErrLocked.
const lockTimeout = 100 * time.Millisecond

// store owns the bbolt file.
type store struct {
	path    string
	mode    Mode
	maxFile int64
	logger  *slog.Logger
	faults  *faults

	// mu guards db: readers hold it shared for the length of a read
	// transaction; compaction and close take it exclusively to swap or
	// release the handle.
	mu sync.RWMutex
	db *bolt.DB

	// dropEvery and sinceDrop pace the drops of the mapped file pages
	// (mapdrop.go); dropEvery 0 never drops. The pager sets dropEvery
	// with its budget.
	dropEvery atomic.Int64
	sinceDrop atomic.Int64

	// wedge guards db's transactions (guard); once a write has panicked,
	// writes fail at once and the file is left open until the process
	// ends (boltcheck.Wedge).
	wedge boltcheck.Wedge
}

func (s *store) boltOptions() *bolt.Options {
	// The freelist is synced: with NoFreelistSync, bbolt would rebuild it
	// at every open by walking the file and would turn any damage it met
	// into a panic on a goroutine of its own, beyond every recover.
	return &bolt.Options{
		Timeout:      lockTimeout,
		FreelistType: bolt.FreelistMapType,
		MaxSize:      int(s.maxFile),
		NoSync:       s.mode == ModeCache,
		NoGrowSync:   s.mode == ModeCache,
	}
}

// openStore opens (or creates) the page file in dir and leaves it marked
// open. A file that is not a page file is reported with ErrForeignFile and
// left untouched.
func openStore(c *config) (*store, recovery, error) {
	s := &store{path: filepath.Join(c.dir, fileName), mode: c.mode, maxFile: c.maxFile, logger: c.logger, faults: &c.faults}
	var rec recovery
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, rec, fmt.Errorf("paging: storage path: %w", err)
	}
	// Leftovers of an interrupted create or compaction are ours by name.
	for _, suffix := range []string{".new", ".compact"} {
		if err := os.Remove(s.path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, rec, fmt.Errorf("paging: remove leftover: %w", err)
		}
	}
	st, err := os.Stat(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := s.create(); err != nil {
			return nil, rec, err
		}
	case err != nil:
		return nil, rec, fmt.Errorf("paging: page file: %w", err)
	case !st.Mode().IsRegular():
		return nil, rec, fmt.Errorf("paging: %s: %w (not a regular file)", s.path, ErrForeignFile)
	case st.Size() == 0:
		// bbolt would initialise an empty file in place: it is not ours.
		return nil, rec, fmt.Errorf("paging: %s: %w (an empty file)", s.path, ErrForeignFile)
	}
	state, err := s.open()
	if errors.Is(err, boltcheck.ErrDamaged) {
		err = s.damaged(err)
		if err == nil {
			// A cache file of ours, left open by a crash, that does not
			// verify: discard it, as recover does with one that fails
			// bbolt's check.
			rec.unclean, rec.discarded = true, true
			state = stateClean // the new file needs no verification
		}
	}
	if err != nil {
		return nil, rec, err
	}
	if state != stateClean {
		rec.unclean = true
		if err := s.recover(&rec); err != nil {
			s.closeDB()
			return nil, rec, err
		}
	}
	if err := s.setState(stateOpen); err != nil {
		s.closeDB()
		return nil, rec, err
	}
	return s, rec, nil
}

// create writes a new, empty page file atomically (temp file + rename).
func (s *store) create() error {
	tmp := s.path + ".new"
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("paging: create page file: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if err := meta.Put(keyFormat, []byte(formatID)); err != nil {
			return err
		}
		if err := meta.Put(keyState, []byte(stateClean)); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketValues); err != nil {
			return err
		}
		_, err = tx.CreateBucket(bucketPages)
		return err
	})
	if err == nil {
		err = db.Sync()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err == nil {
		err = disk.SyncDir(filepath.Dir(s.path))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("paging: create page file %s: %w", s.path, err)
	}
	return nil
}

// inspect returns the check of the pager's marks that boltcheck runs in a
// read-only transaction before the file is opened read-write: a bbolt file
// without the format mark is foreign. It stores the file's state in
// *state.
func (s *store) inspect(state *string) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || !bytes.Equal(meta.Get(keyFormat), []byte(formatID)) {
			return fmt.Errorf("paging: %s: %w (bbolt database without the pager's format mark)", s.path, ErrForeignFile)
		}
		if tx.Bucket(bucketValues) == nil || tx.Bucket(bucketPages) == nil {
			return fmt.Errorf("paging: %s: %w: buckets missing", s.path, ErrCorrupt)
		}
		*state = string(meta.Get(keyState))
		return nil
	}
}

// open verifies the page file without letting a damaged one crash the
// process (internal/boltcheck), checks that it is a page file, opens it
// read-write and returns its state. Errors other than boltcheck.ErrDamaged
// are final and name the file.
func (s *store) open() (state string, err error) {
	db, err := boltcheck.Open(s.path, boltcheck.Options{Bolt: s.boltOptions(), Inspect: s.inspect(&state), Logger: s.logger})
	switch {
	case err == nil:
		s.db = db
		return state, nil
	case errors.Is(err, ErrForeignFile), errors.Is(err, ErrCorrupt):
		return "", err // from inspect
	case errors.Is(err, boltcheck.ErrLocked):
		return "", fmt.Errorf("paging: page file %s is in use by another Pager or process: %w: %w", s.path, ErrLocked, err)
	case errors.Is(err, boltcheck.ErrNotBolt):
		return "", fmt.Errorf("paging: %s: %w: %w", s.path, ErrForeignFile, err)
	case errors.Is(err, boltcheck.ErrDamaged):
		return "", err
	}
	return "", fmt.Errorf("paging: open page file %s: %w", s.path, err)
}

// damaged handles a page file that failed verification (err wraps
// boltcheck.ErrDamaged). A cache-mode file of ours left open by a crash
// is replaced by an empty one (nil is returned, s.db is the new file's).
// Any other damaged file is left as it is and reported with ErrCorrupt, in
// words that say what to do.
func (s *store) damaged(err error) error {
	var state string
	ours := boltcheck.Inspect(s.path, lockTimeout, s.inspect(&state)) == nil
	if ours && state != stateClean && s.mode == ModeCache {
		s.logger.Warn("paging: page file damaged after an unclean shutdown; discarding it", "path", s.path, "err", err)
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("paging: discard %s: %w", s.path, err)
		}
		if err := s.create(); err != nil {
			return err
		}
		_, err := s.open()
		return err
	}
	what := "the values it holds cannot be read safely"
	if !ours {
		what = "it cannot be read, not even to tell whether it is a page file"
	}
	return fmt.Errorf("paging: page file %s is damaged (%w: %w): %s. It was left as it is: "+
		"move it aside (to keep it for diagnosis) or delete it, and the next Wrap starts an empty page file", s.path, ErrCorrupt, err, what)
}

func (s *store) closeDB() error {
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

// corrupt is the error, wrapping ErrCorrupt and naming the file, of a
// panic in a transaction or of a wedged file (guard).
func (s *store) corrupt(what string) error {
	return fmt.Errorf("paging: page file %s: %w: %s", s.path, ErrCorrupt, what)
}

func (s *store) setState(state string) error {
	err := s.guard(true, func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyState, []byte(state))
		})
	})
	if err == nil && s.mode == ModeCache {
		err = s.db.Sync()
	}
	if err != nil {
		return fmt.Errorf("paging: mark page file %s: %w", state, err)
	}
	return nil
}

// deleteBlob deletes every page record of blob.
func deleteBlob(pages *bolt.Bucket, blob uint64) error {
	prefix := pageKey(blob, 0)[:8]
	c := pages.Cursor()
	var keys [][]byte
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := pages.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// loadedValue is one value found in the file at open.
type loadedValue struct {
	key    string
	h      header
	stored []int32 // stored record length of each page
}

// load reads every header and the stored size of every page.
func (s *store) load() (vals []loadedValue, maxBlob uint64, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		byBlob := map[uint64]int{}
		if err := tx.Bucket(bucketValues).ForEach(func(k, v []byte) error {
			h, err := decodeHeader(v)
			if err != nil {
				return fmt.Errorf("paging: value %q: %w", k[1:], err)
			}
			byBlob[h.blob] = len(vals)
			vals = append(vals, loadedValue{key: string(k[1:]), h: h, stored: make([]int32, h.npages())})
			maxBlob = max(maxBlob, h.blob)
			return nil
		}); err != nil {
			return err
		}
		c := tx.Bucket(bucketPages).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			blob, idx, ok := parsePageKey(k)
			if !ok {
				continue
			}
			maxBlob = max(maxBlob, blob)
			if i, ok := byBlob[blob]; ok && idx < int64(len(vals[i].stored)) {
				vals[i].stored[idx] = int32(len(v))
			}
		}
		return nil
	})
	return vals, maxBlob, err
}

// view runs fn in a read transaction; it fails with ErrClosed once the
// store is closed.
func (s *store) view(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.guard(false, func() error { return s.db.View(fn) })
}

// guard runs op, a use of the bbolt file that writes to it when write is
// set (boltcheck.Wedge). A panic in it, which is how bbolt meets a page
// that does not hold what it expects (a file damaged past what the check
// at open finds, or while open), and a memory fault on the mapping (a file
// truncated while open, a read error of the card under a mapped page) are
// returned as ErrCorrupt naming the file, and the process goes on. A
// write that panicked wedges the store; once wedged, a write is not run.
func (s *store) guard(write bool, op func() error) error {
	return s.wedge.Guard(write, op, s.corrupt)
}

// readPage decodes page idx of blob into dst (exactly the page's length).
func (s *store) readPage(blob uint64, idx int64, dst []byte) error {
	return s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPages).Get(pageKey(blob, idx))
		if v == nil {
			return corruptf("page record missing")
		}
		err := decodePage(v, dst)
		s.touched(tx, int64(len(v)))
		return err
	})
}

// update runs fn in a write transaction. The caller serialises writers.
// Failures are mapped to the module's limit error: a full page file is
// Kind limit.FileSize, a full disk Kind limit.Disk. It is guarded
// (guard).
func (s *store) update(fn func(tx *bolt.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	err := s.guard(true, func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			if s.faults.beforeCommit != nil {
				return s.faults.beforeCommit()
			}
			return nil
		})
	})
	return s.writeError(err)
}

// sync flushes the file to stable storage. In ModeDurable every commit is
// already synced and sync does nothing.
func (s *store) sync() error {
	if s.mode == ModeDurable {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	return s.writeError(s.db.Sync())
}

func (s *store) writeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, berrors.ErrMaxSizeReached):
		size, _ := s.fileSize()
		return fmt.Errorf("paging: write page file: %w: %w", &limit.Error{Kind: limit.FileSize, Subject: s.path,
			Current: float64(size), Limit: float64(s.maxFile), Unit: "bytes",
			Detail: "the page file is full (Options.MaxFileBytes)"}, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		size, _ := s.fileSize()
		return fmt.Errorf("paging: write page file: %w: %w", &limit.Error{Kind: limit.Disk, Subject: filepath.Dir(s.path),
			Current: float64(size), Limit: float64(size), Unit: "bytes", Detail: "no space left on the device"}, err)
	default:
		return fmt.Errorf("paging: write page file: %w", err)
	}
}

func (s *store) fileSize() (int64, error) {
	st, err := os.Stat(s.path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// freeBytes is the space inside the file that holds no live data.
func (s *store) freeBytes() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return 0
	}
	return int64(s.db.Stats().FreeAlloc)
}

// close marks the file clean (when clean is true) and releases it.
func (s *store) close(clean bool) error {
	s.mu.Lock()
	db := s.db
	s.mu.Unlock()
	if db == nil {
		return nil
	}
	var err error
	if clean {
		err = s.guard(true, func() error {
			return db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(keyState, []byte(stateClean))
			})
		})
		if err == nil {
			err = db.Sync()
		}
	}
	if cerr := s.closeDB(); err == nil {
		err = cerr
	}
	return err
}
