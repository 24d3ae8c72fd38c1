package boltcheck

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	bolt "go.etcd.io/bbolt"
)

// Options configures Open. The zero value opens with bbolt's default
// options, mode 0600, no inspection and no logging.
type Options struct {
	// Bolt are the options of bbolt's read-write open; nil means bbolt's
	// defaults. Bolt.Timeout also bounds the verification's wait for the
	// lock (0: wait as long as it takes, as in bbolt). Bolt.ReadOnly must
	// be false.
	Bolt *bolt.Options
	// Mode is the permission of a file that Open creates; 0 means 0600.
	Mode os.FileMode
	// Inspect, if not nil, is called for an existing file within a
	// read-only transaction of the verified file, before anything is
	// written to it: it checks the caller's own format marks (a file of
	// another program must be left untouched). Its error is returned as
	// is, and the file is then not opened read-write.
	Inspect func(tx *bolt.Tx) error
	// Logger receives a warning when Open rewrites a damaged meta page.
	// nil discards it.
	Logger *slog.Logger
}

// Open opens the bbolt file at path read-write, safely: an existing,
// non-empty file is verified first (Verify, with opts.Inspect) and opened
// only if it passes; a missing or empty file is created by bbolt as usual.
// If one of the two meta pages is damaged and the other is sound, bbolt
// uses the sound one (the file is as it was at that meta page's
// transaction), and Open rewrites the damaged one from it with an empty
// commit before returning, logging a warning.
//
// Errors wrap ErrLocked (another process holds the file: bbolt's timeout
// passed), ErrNotBolt (not a bbolt file) or ErrDamaged (a damaged bbolt
// file; a panic inside bbolt is reported so), with the cause wrapped as
// well; Inspect's error is returned as is; other errors (the file cannot be
// opened or written) are returned wrapped. None names the path: callers
// do, with what the user should do about it.
//
// Open blocks for the verification (about one read per page of keys) and
// for the lock, at most Bolt.Timeout twice.
func Open(path string, opts Options) (db *bolt.DB, err error) {
	bopts := opts.Bolt
	if bopts == nil {
		bopts = bolt.DefaultOptions
	}
	if bopts.ReadOnly {
		return nil, errors.New("boltcheck: Open is for read-write use: Options.Bolt.ReadOnly must be false")
	}
	mode := opts.Mode
	if mode == 0 {
		mode = 0o600
	}
	var mp metaPages
	if fi, serr := os.Stat(path); serr == nil && fi.Size() > 0 {
		if mp, err = verify(path, bopts.Timeout, opts.Inspect); err != nil {
			return nil, err
		}
	}
	db, err = openRW(path, mode, bopts)
	if err != nil {
		return nil, err
	}
	if mp.needsRepair() {
		if err := repairMeta(db, path, mp, opts.Logger); err != nil {
			db.Close()
			return nil, err
		}
	}
	return db, nil
}

// openRW is bolt.Open with its errors mapped and its panics recovered.
func openRW(path string, mode os.FileMode, bopts *bolt.Options) (db *bolt.DB, err error) {
	// Keep the file bbolt opens: if the open panics, closing it releases
	// the lock.
	var file *os.File
	o := *bopts
	open := o.OpenFile
	if open == nil {
		open = os.OpenFile
	}
	o.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := open(name, flag, perm)
		file = f
		return f, err
	}
	defer func() {
		if v := recover(); v != nil {
			if file != nil {
				file.Close()
			}
			db, err = nil, fmt.Errorf("%w: bbolt panicked opening it: %v", ErrDamaged, v)
		}
	}()
	db, err = bolt.Open(path, mode, &o)
	if err != nil {
		return nil, openError(err)
	}
	return db, nil
}

// repairMeta rewrites the damaged meta page of a file that bbolt opened
// with the other one (or a meta page whose page header is damaged): a
// commit writes the meta page of parity txid+1, which is normally the
// damaged one; a second commit covers the case it was not. The file is
// synced.
func repairMeta(db *bolt.DB, path string, mp metaPages, logger *slog.Logger) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w: bbolt panicked rewriting a meta page: %v", ErrDamaged, v)
		}
	}()
	bad := 1 - mp.bestIdx
	if !mp.invalid[bad] && !mp.badHeader[bad] {
		bad = mp.bestIdx
	}
	why := mp.why[bad]
	if why == "" {
		why = "page header does not name it as a meta page"
	}
	for range 2 {
		if err := db.Update(func(*bolt.Tx) error { return nil }); err != nil {
			return fmt.Errorf("rewrite meta page %d: %w", bad, err)
		}
		if ok, err := metasValid(path); err != nil || ok {
			if err != nil {
				return fmt.Errorf("rewrite meta page %d: %w", bad, err)
			}
			break
		}
	}
	if err := db.Sync(); err != nil {
		return fmt.Errorf("rewrite meta page %d: %w", bad, err)
	}
	if logger != nil {
		logger.Warn("boltcheck: a meta page of the bbolt file was damaged; rewrote it from the other one",
			"path", path, "damaged_meta_page", bad, "damage", why, "used_meta_page", mp.bestIdx, "txid", mp.best.txid)
	}
	return nil
}

// metasValid reports whether both meta pages of path are valid now.
func metasValid(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	mp, err := readMeta(f, st.Size())
	if err != nil {
		return false, err
	}
	return !mp.needsRepair() && !mp.invalid[0], nil
}
