package paging

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
)

// Get returns the value stored under key, or an error wrapping
// dag.ErrNotFound. The bytes are shared and must not be modified.
//
// A value of one page (at most the page size) is returned without copying;
// when it is resident this is the hit path: no lock (hot.go; a key whose
// slot another hot key holds takes one short critical section), no
// allocation. A value of several pages is assembled into a new slice of its
// length (prefer dag.NewValueReader for large values); a value larger than
// the memory limit is refused with a *limit.Error of Kind limit.Memory.
// A page that fails its checksum yields an error wrapping ErrCorrupt that
// names the key. Get blocks while pages are read from disk or, when the
// budget is full, while dirty pages are written back to make room. A
// returned buffer is never reused by the pager, so each miss allocates
// the page: to read without allocating, use AppendValue or ReadAt.
func (p *Pager) Get(key string) ([]byte, error) {
	if buf, ok := p.getHot(key); ok {
		return buf, nil
	}
	// The locked hit path needs no closed check: Close releases every page
	// before it returns.
	p.mu.Lock()
	e := p.index[key]
	if e != nil && e.size <= e.psize && e.p0.buf != nil {
		pg := &e.p0
		const hot = fInLRU | fReferenced | fExposed
		switch f := pg.flags; {
		case f&(hot|fPrefetched) == hot:
			// Already marked: leave the entry's cache line clean.
		case f&(fInLRU|fPrefetched) == fInLRU:
			pg.flags |= fReferenced | fExposed
		default:
			p.touchLocked(pg)
			pg.flags |= fExposed
		}
		p.getHits++
		p.hotSyncLocked(e)
		buf := pg.buf
		p.mu.Unlock()
		return buf, nil
	}
	return p.getSlow(key)
}

// getSlow is Get's miss path; it is called with p.mu held and releases it.
func (p *Pager) getSlow(key string) ([]byte, error) {
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.c.accesses++
	p.ops.Add(1)
	defer p.ops.Done()
	for {
		e := p.index[key]
		switch {
		case e == nil:
			p.mu.Unlock()
			return nil, notFound(key)
		case e.size == 0:
			p.mu.Unlock()
			return []byte{}, nil
		case e.size > p.limit:
			lim := p.limit
			p.mu.Unlock()
			return nil, &limit.Error{Kind: limit.Memory, Subject: shortKey(key), Current: float64(e.size), Limit: float64(lim),
				Unit: "bytes", Detail: "value larger than the pager's memory limit: read it with dag.NewValueReader"}
		case e.size <= e.psize:
			_, buf, err := p.pageBufLocked(e, 0)
			if err == errGone {
				continue
			}
			if err == nil {
				// The caller keeps the buffer: it may never be recycled.
				e.p0.flags |= fExposed
			}
			p.mu.Unlock()
			return buf, err
		}
		out := make([]byte, e.size)
		err := p.readEntryLocked(e, out, 0)
		if err == errGone {
			continue
		}
		p.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return out, nil
	}
}

func notFound(key string) error {
	return fmt.Errorf("paging: key %q: %w", shortKey(key), dag.ErrNotFound)
}

// readEntryLocked fills dst from e starting at byte off, paging in and
// reading ahead. Called and returns with p.mu held; errGone when e died.
func (p *Pager) readEntryLocked(e *entry, dst []byte, off int64) error {
	for len(dst) > 0 {
		i := off / e.psize
		pg, buf, err := p.pageBufLocked(e, i)
		if err != nil {
			return err
		}
		p.readAheadLocked(e, i)
		pg.readers++
		p.mu.Unlock()
		n := copy(dst, buf[off-i*e.psize:])
		p.mu.Lock()
		pg.readers--
		dst = dst[n:]
		off += int64(n)
	}
	return nil
}

// ReadAt reads len(b) bytes of the value under key starting at byte off,
// with the semantics of io.ReaderAt: n < len(b) only with an error, io.EOF
// at the end of the value. Only the pages covering the range are paged in;
// reading consecutive pages starts asynchronous read-ahead of the next ones
// (within the budget, never forcing a write-back). A concurrent Put to key
// may be observed part-way through. Safe for concurrent use; blocks on
// page-ins.
func (p *Pager) ReadAt(key string, b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("paging: ReadAt %q: negative offset %d", shortKey(key), off)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, ErrClosed
	}
	p.c.accesses++
	p.ops.Add(1)
	defer p.ops.Done()
	n := 0
	for n < len(b) {
		e := p.index[key]
		if e == nil {
			p.mu.Unlock()
			return n, notFound(key)
		}
		if off >= e.size {
			p.mu.Unlock()
			return n, io.EOF
		}
		i := off / e.psize
		pg, buf, err := p.pageBufLocked(e, i)
		if err == errGone {
			continue
		}
		if err != nil {
			p.mu.Unlock()
			return n, err
		}
		p.readAheadLocked(e, i)
		pg.readers++
		p.mu.Unlock()
		c := copy(b[n:], buf[off-i*e.psize:])
		p.mu.Lock()
		pg.readers--
		n += c
		off += int64(c)
	}
	p.mu.Unlock()
	return n, nil
}

// pageBufLocked returns page i of e and its bytes, paging it in if needed.
// Called and returns with p.mu held (released during I/O). It returns
// errGone if e is replaced or deleted meanwhile.
func (p *Pager) pageBufLocked(e *entry, i int64) (*page, []byte, error) {
	pg := e.page(i)
	for {
		if e.state == stateDead {
			return nil, nil, errGone
		}
		if pg.buf != nil {
			p.touchLocked(pg)
			p.c.hits++
			return pg, pg.buf, nil
		}
		if w := pg.load; w != nil {
			p.mu.Unlock()
			<-w.done
			p.mu.Lock()
			if w.err != nil {
				return nil, nil, w.err
			}
			continue
		}
		n := e.pageLen(i)
		var spare []byte
		if err := p.reserveLocked(n, &spare); err != nil {
			if errors.Is(err, ErrClosed) {
				return nil, nil, err
			}
			// No room because dirty pages cannot be written back (disk
			// or page file full): serve the read without caching it, so
			// that reads keep working while writes fail.
			buf, rerr := p.readUncachedLocked(e, i, n)
			return pg, buf, rerr
		}
		if e.state == stateDead || pg.buf != nil || pg.load != nil {
			p.unreserveLocked(n)
			continue
		}
		buf, err := p.loadLocked(pg, n, false, spare)
		if err != nil {
			return nil, nil, err
		}
		return pg, buf, nil
	}
}

// readUncachedLocked reads page i of e (n bytes) into a new buffer that
// is returned but not kept: the bytes are outside the budget while the
// caller holds them. Called and returns with p.mu held.
func (p *Pager) readUncachedLocked(e *entry, i, n int64) ([]byte, error) {
	p.mu.Unlock()
	buf := make([]byte, n)
	err := p.st.readPage(e.blob, i, buf)
	p.mu.Lock()
	if err != nil {
		if e.state == stateDead {
			return nil, errGone
		}
		return nil, fmt.Errorf("paging: key %q page %d: %w", shortKey(e.key), i, err)
	}
	p.c.misses++
	p.c.pageIns++
	return buf, nil
}

// loadLocked reads page pg (n bytes, already reserved) from the file into
// spare (a recycled buffer of n bytes) or a new buffer. Called and returns
// with p.mu held. On success the page is resident (unless its entry died
// meanwhile: the bytes are still returned).
func (p *Pager) loadLocked(pg *page, n int64, prefetch bool, spare []byte) ([]byte, error) {
	e := pg.e
	w := &loadWait{done: make(chan struct{})}
	pg.load = w
	p.loading += n
	p.mu.Unlock()
	buf := spare
	if buf == nil {
		buf = make([]byte, n)
	}
	err := p.st.readPage(e.blob, pg.idx, buf)
	p.mu.Lock()
	p.loading -= n
	pg.load = nil
	defer func() {
		close(w.done)
		p.cond.Broadcast()
	}()
	if err != nil {
		p.resident -= n
		switch {
		case e.state == stateDead:
			err = errGone
		case prefetch:
			// Readers waiting on a failed read-ahead retry the page-in
			// themselves and see the error first hand.
			err = errors.Join(errGone, err)
		case errors.Is(err, ErrClosed):
			w.err = ErrClosed
		default:
			err = fmt.Errorf("paging: key %q page %d: %w", shortKey(e.key), pg.idx, err)
			w.err = err
		}
		return nil, err
	}
	p.c.pageIns++
	if !prefetch {
		p.c.misses++
	}
	if e.state == stateDead {
		p.resident -= n
		return buf, nil
	}
	pg.buf = buf
	p.residentPages++
	if prefetch {
		pg.flags |= fPrefetched
	}
	if !e.pinned {
		p.lruAddLocked(pg)
	}
	p.hotSyncPageLocked(pg)
	return buf, nil
}

// touchLocked records an access to resident page pg.
func (p *Pager) touchLocked(pg *page) {
	switch {
	case pg.flags&fInLRU != 0:
		pg.flags |= fReferenced
	case pg.flags&fEvictOnClean != 0:
		// Claimed for eviction while its write-back runs: keep it.
		pg.flags &^= fEvictOnClean
		p.evicting -= int64(len(pg.buf))
		p.lruAddLocked(pg)
	}
	if pg.flags&fPrefetched != 0 {
		pg.flags &^= fPrefetched
		p.c.prefetchUsed++
	}
	p.hotSyncPageLocked(pg)
}

// AppendValue appends the value stored under key to dst and returns the
// extended slice, or an error wrapping dag.ErrNotFound. Unlike Get it
// copies, into memory the caller owns and may reuse: reading a value into
// a buffer with room for it allocates nothing, and the pager can then
// recycle the buffers of the pages it evicts for its page-ins. It reads
// values of any size (larger than the budget too), page by page with
// read-ahead. A page that fails its checksum yields an error wrapping
// ErrCorrupt that names the key; dst then holds an unspecified prefix.
// Safe for concurrent use; blocks on page-ins.
func (p *Pager) AppendValue(dst []byte, key string) ([]byte, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return dst, ErrClosed
	}
	p.c.accesses++
	p.ops.Add(1)
	defer p.ops.Done()
	for {
		e := p.index[key]
		if e == nil {
			p.mu.Unlock()
			return dst, notFound(key)
		}
		if e.size > int64(math.MaxInt-len(dst)) {
			p.mu.Unlock()
			return dst, fmt.Errorf("paging: key %q: value of %d bytes does not fit in memory here", shortKey(key), e.size)
		}
		start := len(dst)
		out := slices.Grow(dst, int(e.size))[:start+int(e.size)]
		err := p.readEntryLocked(e, out[start:], 0)
		if err == errGone {
			dst = out[:start]
			continue
		}
		p.mu.Unlock()
		if err != nil {
			return out[:start], err
		}
		return out, nil
	}
}
