package paging

import (
	"fmt"
	"io"
	"slices"

	"github.com/cemaf-go/cemaf/dag"
)

// ValueWriter streams a value into a Pager page by page, so that a value
// larger than RAM (or than the budget) can be stored without ever being
// held whole: each full page is handed to the pager, which pages it out
// like any other when the budget is full. The value becomes visible under
// its key, replacing the previous one, only when Close returns nil; until
// then readers see the previous value. Abort discards it.
//
// At most one page of data (the page being filled) is held outside the
// budget. A ValueWriter is not safe for concurrent use; distinct writers
// may be used concurrently. Pager.Close aborts writers still open.
type ValueWriter struct {
	p   *Pager
	e   *entry
	buf []byte // the page being filled; cap is the page size
	// done is set by Close and Abort (and by Pager.Close via abortClosed);
	// it is guarded by p.mu.
	done bool
	err  error
	// finished is set by Close and Abort; unlike done it is only used by
	// the writer's own goroutine.
	finished bool
}

// Create returns a ValueWriter for key. It does no I/O; writing blocks like
// Put when pages must be written back to make room.
func (p *Pager) Create(key string) (*ValueWriter, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("paging: create: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	e, err := p.beginLocked(key, 0)
	if err != nil {
		return nil, err
	}
	w := &ValueWriter{p: p, e: e}
	p.writers[w] = struct{}{}
	return w, nil
}

// Write appends b to the value. It returns len(b) or an error, after which
// the writer is aborted (the previous value is kept).
func (w *ValueWriter) Write(b []byte) (int, error) {
	if w.finished {
		return 0, w.finishedErr()
	}
	n := 0
	for len(b) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, w.e.psize)
		}
		c := min(len(b), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, b[:c]...)
		b = b[c:]
		n += c
		if len(w.buf) == cap(w.buf) {
			if err := w.emit(w.buf); err != nil {
				return n, err
			}
			w.buf = nil
		}
	}
	return n, nil
}

// ReadFrom copies r into the value until io.EOF, reading straight into page
// buffers. It returns the bytes read; on error the writer is aborted.
func (w *ValueWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.finished {
		return 0, w.finishedErr()
	}
	var total int64
	for {
		if w.buf == nil {
			w.buf = make([]byte, 0, w.e.psize)
		}
		n, err := io.ReadFull(r, w.buf[len(w.buf):cap(w.buf)])
		w.buf = w.buf[:len(w.buf)+n]
		total += int64(n)
		if len(w.buf) == cap(w.buf) {
			if eerr := w.emit(w.buf); eerr != nil {
				return total, eerr
			}
			w.buf = nil
		}
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return total, nil
		default:
			w.Abort()
			return total, fmt.Errorf("paging: value writer %q: %w", shortKey(w.e.key), err)
		}
	}
}

// emit hands one full (or, from Close, final) page to the pager.
func (w *ValueWriter) emit(data []byte) error {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.done {
		return w.doneErr()
	}
	if p.closed {
		w.finishLocked()
		p.abortLocked(w.e)
		w.err = ErrClosed
		return ErrClosed
	}
	p.ops.Add(1)
	defer p.ops.Done()
	e := w.e
	n := int64(len(data))
	if e.pinned {
		if err := p.growPinLocked(e, n); err != nil {
			w.finishLocked()
			p.abortLocked(e)
			w.err = err
			return err
		}
	}
	i := e.npages()
	if i > 0 {
		// Page 0 is e.p0; later pages are allocated as they come.
		e.rest = append(e.rest, &page{e: e, idx: i})
	}
	e.size += n
	if err := p.addPageLocked(e, i, data); err != nil {
		w.finishLocked()
		w.err = err
		return err
	}
	return nil
}

// finishLocked marks the writer done; p.mu must be held.
func (w *ValueWriter) finishLocked() {
	w.done = true
	delete(w.p.writers, w)
}

// finishedErr is the error of a call after Close or Abort.
func (w *ValueWriter) finishedErr() error {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.doneErr()
}

// doneErr is the error of a writer that is done; p.mu must be held.
func (w *ValueWriter) doneErr() error {
	if w.err != nil {
		return w.err
	}
	return ErrWriterDone
}

// Close writes the last partial page and publishes the value under its key,
// replacing the previous value atomically. Calling Close again, or after
// Abort, returns ErrWriterDone (or the error that ended the writer).
func (w *ValueWriter) Close() error {
	if w.finished {
		return w.finishedErr()
	}
	w.finished = true
	if len(w.buf) > 0 {
		last := slices.Clone(w.buf)
		w.buf = nil
		if err := w.emit(last); err != nil {
			return err
		}
	}
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.done {
		return w.doneErr()
	}
	w.finishLocked()
	if p.closed {
		p.abortLocked(w.e)
		w.err = ErrClosed
		return ErrClosed
	}
	p.c.accesses++
	p.publishLocked(w.e)
	return nil
}

// Commit is Close, under the name dag.ValueWriter gives it.
func (w *ValueWriter) Commit() error { return w.Close() }

// CreateValue is Create for dag.ValueCreator: dag.NewValueWriter on a
// Pager, and so a remote coordinator writing a large result into one,
// store the value page by page instead of gathering it first.
func (p *Pager) CreateValue(key string) (dag.ValueWriter, error) {
	w, err := p.Create(key)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// Abort discards what was written; the key keeps its previous value. It is
// a no-op after Close or Abort.
func (w *ValueWriter) Abort() {
	w.finished = true
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	w.buf = nil
	if w.done {
		return
	}
	w.finishLocked()
	w.err = ErrWriterDone
	p.abortLocked(w.e)
}

// abortClosed is Pager.Close's abort of a writer left open.
func (w *ValueWriter) abortClosed() {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if w.done {
		return
	}
	w.finishLocked()
	w.err = ErrClosed
	p.abortLocked(w.e)
}
