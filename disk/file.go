package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// WriteFile writes data to the file name at no more than the write rate,
// atomically: see WriteAtomic. ctx bounds the waits; a write that cannot
// finish before ctx's deadline at the current rate fails before writing.
func (t *Throttler) WriteFile(ctx context.Context, name string, data []byte, perm os.FileMode) error {
	return t.WriteAtomic(ctx, name, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteAtomic replaces the file name with what fn writes, at no more than
// the write rate, so that after a crash or power loss name holds either its
// old content or the complete new one. It creates a temporary file in the
// same directory, passes fn a throttled writer to it, and if fn returns nil
// syncs the file, sets perm (with chmod, so the umask does not apply),
// renames it over name and syncs the directory. If fn returns an error or
// panics, or ctx ends, the temporary file is removed, name is untouched and
// the error (a panic as an error) is returned.
//
// The writer given to fn must not be used after fn returns. WriteAtomic is
// safe for concurrent use on different names; concurrent calls on one name
// each replace it whole, the last rename winning.
func (t *Throttler) WriteAtomic(ctx context.Context, name string, perm os.FileMode, fn func(w io.Writer) error) (err error) {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("disk: creating a temporary file for %s: %w", name, err)
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()

	if err := callWriter(fn, t.Writer(ctx, f)); err != nil {
		return fmt.Errorf("disk: writing %s: %w", name, err)
	}
	if err := f.Chmod(perm); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("disk: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	committed = true
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("disk: %s was replaced but syncing its directory failed: %w", name, err)
	}
	return nil
}

// callWriter runs fn, turning a panic into an error.
func callWriter(fn func(io.Writer) error, w io.Writer) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write callback panicked: %v", p)
		}
	}()
	return fn(w)
}
