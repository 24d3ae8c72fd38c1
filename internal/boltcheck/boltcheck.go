package boltcheck

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Errors of Verify, Inspect and Open, wrapped with details and causes;
// match them with errors.Is.
var (
	// ErrNotBolt: the file is not a bbolt file (no valid meta page, and
	// nothing else that looks like bbolt's format).
	ErrNotBolt = errors.New("not a bbolt file")
	// ErrDamaged: the file is a bbolt file whose pages are damaged.
	ErrDamaged = errors.New("damaged bbolt file")
	// ErrLocked: another process (or another handle in this one) holds
	// the file open for writing.
	ErrLocked = errors.New("locked by another process")
)

// Verify checks the bbolt file at path, which must exist and be non-empty;
// timeout bounds the wait for a lock held by another process. inspect, if
// not nil, is called within the verified read-only transaction (to check
// the caller's own format marks); its error is returned as is.
func Verify(path string, timeout time.Duration, inspect func(tx *bolt.Tx) error) error {
	_, err := verify(path, timeout, inspect)
	return err
}

// verify is Verify, returning what it found in the meta pages.
func verify(path string, timeout time.Duration, inspect func(tx *bolt.Tx) error) (metaPages, error) {
	f, err := os.Open(path)
	if err != nil {
		return metaPages{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return metaPages{}, err
	}
	mp, err := readMeta(f, st.Size())
	if err != nil {
		return mp, err
	}
	free, err := checkFreelist(f, st.Size(), mp.best)
	if err != nil {
		return mp, err
	}
	if err := walkTree(f, mp.best, free); err != nil {
		return mp, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: true})
	if err != nil {
		return mp, damagedUnlessKnown(openError(err))
	}
	defer db.Close()
	return mp, inspectRO(db, inspect)
}

// openError maps an error of bolt.Open onto the package's sentinels,
// wrapping the cause.
func openError(err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("%w: %w", ErrLocked, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch):
		return fmt.Errorf("%w: %w", ErrNotBolt, err)
	case errors.Is(err, berrors.ErrChecksum):
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return err
}

// damagedUnlessKnown wraps an error of bbolt's read-only open that is
// neither one of the package's sentinels nor a file system error in
// ErrDamaged: bbolt read something it did not expect.
func damagedUnlessKnown(err error) error {
	var pe *fs.PathError
	if errors.Is(err, ErrLocked) || errors.Is(err, ErrNotBolt) || errors.Is(err, ErrDamaged) || errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrDamaged, err)
}

// Inspect opens path read-only and runs inspect in a read-only transaction
// on a goroutine where a memory fault becomes an error, without verifying
// the file first: for reading a few known records of a file that failed
// Verify (its owner's marks, say). A damaged page that inspect reaches
// gives ErrDamaged.
func Inspect(path string, timeout time.Duration, inspect func(tx *bolt.Tx) error) (err error) {
	// Keep the file bbolt opens: if the open itself panics on a damaged
	// meta page, closing it releases the lock.
	var file *os.File
	defer func() {
		if v := recover(); v != nil {
			if file != nil {
				file.Close()
			}
			err = fmt.Errorf("%w: %v", ErrDamaged, v)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: true,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		}})
	if err != nil {
		return damagedUnlessKnown(openError(err))
	}
	defer db.Close()
	return inspectRO(db, inspect)
}

// inspectRO runs inspect in a read-only transaction, on a goroutine where
// a memory fault becomes a panic, and turns panics into ErrDamaged.
func inspectRO(db *bolt.DB, inspect func(tx *bolt.Tx) error) error {
	if inspect == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		debug.SetPanicOnFault(true)
		defer func() {
			if v := recover(); v != nil {
				done <- fmt.Errorf("%w: %v", ErrDamaged, v)
			}
		}()
		done <- db.View(inspect)
	}()
	return <-done
}

// Guard runs op, a use of an open bbolt file, on the calling goroutine
// with debug.SetPanicOnFault set, so that a memory fault on bbolt's
// mapping (a file truncated, or unreadable, while open) is a panic as a
// damaged page is. A panic in op is returned as onPanic makes it of a
// description of the panic (panicText); bbolt rolls its transaction back
// as the panic unwinds.
func Guard(op func() error, onPanic func(what string) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			err = onPanic(panicText(v))
		}
	}()
	return op()
}

// Wedge guards the transactions of one open bbolt file (Guard) and
// remembers when a write among them panicked. bbolt's rollback of that
// write reads the file too; when it faults as well, bbolt's writer lock
// stays held, and every later write, and closing the file, would wait for
// it forever. So once set, Guard refuses writes, and the owner must not
// close the file (Set): it stays open until the process ends. The zero
// Wedge is ready; it is safe for concurrent use.
type Wedge struct{ set atomic.Bool }

// Wedged is the text, for its owner's error, of a write refused, or a
// close skipped, because the file is wedged.
const Wedged = "a write to it failed midway; it stays open, unwritten, until the process ends"

// Guard runs op under Guard. With write, a panic in op sets the wedge, and
// once it is set op is not run: onPanic(Wedged) is returned instead.
func (w *Wedge) Guard(write bool, op func() error, onPanic func(what string) error) error {
	if !write {
		return Guard(op, onPanic)
	}
	if w.set.Load() {
		return onPanic(Wedged)
	}
	return Guard(op, func(what string) error {
		w.set.Store(true)
		return onPanic(what)
	})
}

// Set reports whether a write has panicked: the file must then be left
// open.
func (w *Wedge) Set() bool { return w.set.Load() }

// panicText describes v, a value recovered from a panic in a bbolt
// transaction. A memory fault is named as one, with its address when the
// runtime has it: the runtime's own text for it speaks of a nil pointer.
func panicText(v any) string {
	const what = " reading the mapped file (truncated, or unreadable, while open?)"
	if f, ok := v.(interface{ Addr() uintptr }); ok {
		return fmt.Sprintf("memory fault at %#x%s", f.Addr(), what)
	}
	if re, ok := v.(runtime.Error); ok && strings.Contains(re.Error(), "invalid memory address") {
		return "memory fault" + what
	}
	return fmt.Sprint("bbolt: ", v)
}
