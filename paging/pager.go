package paging

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
)

// Pager is a dag.State that keeps at most a memory budget of value bytes in
// RAM and pages the rest out to a bbolt file as LZ4 frames. It also
// implements dag.RangeReader, so dag.NewValueReader streams a large value
// page by page with read-ahead.
//
// All methods are safe for concurrent use. Methods that may page in or
// write back block on disk I/O; the hit path of Get does not. After Close
// every method returns ErrClosed (Stats and the accessors keep working).
type Pager struct {
	// Set by Wrap, then read-only (or synchronised by their own types).
	cfg         config
	st          *store
	recoveredAt recovery
	raCh        chan raRequest // read-ahead requests
	wake        chan struct{}  // nudges the background reclaimer
	stop        chan struct{}  // closed by Close
	wg          sync.WaitGroup // background goroutines
	ops         sync.WaitGroup // mutating and paging calls in progress

	// wmu serialises write-back batches and compaction. It is always taken
	// before mu, never while holding mu. encs (one per compression
	// goroutine) are guarded by wmu.
	wmu  sync.Mutex
	encs []encoder

	// mu guards every field below and every entry and page.
	mu   sync.Mutex
	cond *sync.Cond // broadcast when a write-back, page-in or read-ahead ends

	index map[string]*entry
	// lru orders the resident pages that may be evicted (not pinned, not
	// loading, not claimed for eviction) by recency. It has no entry limit
	// of its own: eviction is by bytes, driven by the budget. A hit does
	// not reorder it; it sets the page's fReferenced bit, and lruOldest
	// gives referenced pages a second chance by moving them to the front
	// (the CLOCK approximation of LRU), which keeps the hit path to one
	// map lookup and a flag.
	lru    *simplelru.LRU[*page, struct{}]
	lruLen int64
	// The dirty list holds dirty pages in the order they became dirty.
	dirtyHead, dirtyTail *page
	// readyHeaders are visible entries with every page clean whose header
	// still has to be written.
	readyHeaders []*entry
	// deletes are blobs (and headers) to remove from the file.
	deletes []delRec

	limit, low, mid int64 // bytes: budget, low watermark, reclaim trigger
	batchBytes      int64 // target size of one write-back batch
	resident        int64 // bytes of resident pages plus page-in reservations
	evicting        int64 // resident bytes claimed for eviction, not yet dropped
	loading         int64 // bytes reserved by page-ins in progress
	dirtyBytes      int64
	dirtyPages      int64
	residentPages   int64
	pinned          int64 // bytes of visible pinned values
	pinPending      int64 // bytes of pinned values being written
	size            int64 // sum of visible value sizes
	seq             uint64
	nextBlob        uint64
	closed          bool

	lastAccess time.Time
	stampedSeq uint64 // c.accesses when lastAccess was taken
	c          counters
	disk       blobRef // what the file holds: pages, logical and stored bytes
	lastErr    error
	writers    map[*ValueWriter]struct{}
	workersUp  bool
	raPending  int    // read-ahead requests queued or in progress
	ckRunning  bool   // a checkpoint is being written
	ckStarted  uint64 // checkpoints started
	ckDone     uint64 // checkpoints finished
	ckErr      error  // result of the last finished checkpoint
}

// counters are the cumulative event counts reported by Stats.
type counters struct {
	accesses       uint64
	hits           uint64
	misses         uint64
	evictions      uint64
	pageIns        uint64
	pageOuts       uint64
	bytesOut       int64
	storedOut      int64
	prefetchIssued uint64
	prefetchUsed   uint64
	prefetchWasted uint64
	writeErrors    uint64
	compactions    uint64
	checkpoints    uint64
}

// delRec removes blobs from the file, and key's header if it points at one
// of them.
type delRec struct {
	key   string
	blobs []blobRef
	seq   uint64
}

var (
	_ dag.State       = (*Pager)(nil)
	_ dag.RangeReader = (*Pager)(nil)
)

// errGone is returned internally when the entry being read was replaced or
// deleted meanwhile; callers look the key up again.
var errGone = errors.New("paging: entry replaced")

// Wrap returns a Pager that takes over state's entries and keeps them within
// opts' memory budget.
//
// Wrap first opens the page file in opts.StoragePath (creating it when
// missing; see Options and the package documentation for what happens to a
// file that was not closed cleanly) and indexes the values it holds, which
// stay on disk until read. It then moves every entry of state into the
// pager: each value is Put (and may be paged out at once if the budget is
// full) and deleted from state, so that state ends up empty and each value
// is held once. A key present in both wins with state's value. Pinned keys
// are paged in, then PrefetchKeys as far as the budget allows without
// writing anything back. state may be nil.
//
// Afterwards the Pager is the only access path: do not use state during or
// after Wrap. If Wrap fails, the entries it had moved are put back into
// state, the page file is closed, and the error says why.
//
// Wrap starts no goroutine: the read-ahead workers and the background
// reclaimer start on first use and Close stops them.
func Wrap(state dag.State, opts Options) (*Pager, error) {
	cfg, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if cfg.ephemeral {
		dir, err := os.MkdirTemp("", "cemaf-pages-*")
		if err != nil {
			return nil, fmt.Errorf("paging: temporary storage: %w", err)
		}
		cfg.dir = dir
	}
	st, rec, err := openStore(&cfg)
	if err != nil {
		if cfg.ephemeral {
			os.RemoveAll(cfg.dir)
		}
		return nil, err
	}
	p := newPager(cfg, st)
	p.recoveredAt = rec
	p.logRecovery(rec)
	if err := p.loadIndex(); err != nil {
		p.abandon()
		return nil, err
	}
	if err := p.compactAtOpen(); err != nil {
		p.abandon()
		return nil, err
	}
	if err := p.pinAtOpen(); err != nil {
		p.abandon()
		return nil, err
	}
	if state != nil {
		if err := p.adopt(state); err != nil {
			return nil, err
		}
	}
	p.prefetchAtOpen()
	return p, nil
}

func newPager(cfg config, st *store) *Pager {
	p := &Pager{
		cfg:        cfg,
		st:         st,
		index:      make(map[string]*entry),
		lastAccess: time.Now(),
		writers:    make(map[*ValueWriter]struct{}),
		raCh:       make(chan raRequest, 64),
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	p.encs = make([]encoder, cfg.workers)
	p.cond = sync.NewCond(&p.mu)
	p.lru, _ = simplelru.NewLRU[*page, struct{}](math.MaxInt32, nil) // no count limit: evicted by bytes
	p.setLimitLocked(cfg.limit)
	return p
}

// setLimitLocked sets the budget and the values derived from it.
func (p *Pager) setLimitLocked(limit int64) {
	p.limit = limit
	p.low = int64(float64(limit) * p.cfg.lowPercent / 100)
	p.low = min(p.low, limit-p.cfg.pageSize)
	p.mid = p.low + (limit-p.low)/2
	p.batchBytes = max(p.cfg.pageSize, min(4<<20, limit/8))
}

// logRecovery reports what Wrap found in a file not closed cleanly.
func (p *Pager) logRecovery(rec recovery) {
	lg := p.cfg.logger
	switch {
	case rec.discarded:
		lg.Warn("paging: page file discarded after an unclean shutdown", "path", p.st.path)
	case rec.unclean:
		lg.Info("paging: page file verified after an unclean shutdown", "path", p.st.path,
			"orphan_pages", rec.orphans, "dropped_values", len(rec.dropped))
	}
	for _, k := range rec.dropped {
		lg.Warn("paging: value dropped: it did not verify", "key", shortKey(k))
	}
	for _, k := range rec.broken {
		lg.Error("paging: value has missing pages; reads will fail with ErrCorrupt", "key", shortKey(k))
	}
}

// abandon releases the store of a Pager that Wrap failed to finish.
func (p *Pager) abandon() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.st.close(!p.recoveredAt.unclean || p.recoveredAt.discarded)
	if p.cfg.ephemeral {
		os.RemoveAll(p.cfg.dir)
	}
}

// loadIndex builds entries for the values in the file; none is resident.
func (p *Pager) loadIndex() error {
	vals, maxBlob, err := p.st.load()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextBlob = maxBlob + 1
	for _, v := range vals {
		e := newEntry(v.key, v.h.size, v.h.psize)
		e.blob = v.h.blob
		e.state = stateVisible
		e.headerOnDisk = true
		e.touchedDisk = true
		for i := range e.npages() {
			pg := e.page(i)
			pg.flags = fOnDisk
			pg.stored = v.stored[i]
			p.disk.pages++
			p.disk.logical += e.pageLen(i)
			p.disk.stored += int64(pg.stored)
		}
		p.index[v.key] = e
		p.size += e.size
	}
	return nil
}

// compactAtOpen compacts a file of 8 MiB or more that is over half dead.
func (p *Pager) compactAtOpen() error {
	file, err := p.st.fileSize()
	if err != nil {
		return fmt.Errorf("paging: %w", err)
	}
	free := p.st.freeBytes()
	if file < 8<<20 || free*2 < file {
		return nil
	}
	p.cfg.logger.Info("paging: compacting page file", "path", p.st.path, "file_bytes", file, "dead_bytes", free)
	return p.Compact()
}

// pinAtOpen pages in the pinned values found in the file.
func (p *Pager) pinAtOpen() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pinned int64
	var es []*entry
	for k := range p.cfg.pins {
		if e := p.index[k]; e != nil {
			pinned += e.size
			es = append(es, e)
		}
	}
	if pinned > p.limit/2 {
		return p.pinError("pinned keys in the page file", pinned)
	}
	for _, e := range es {
		e.pinned = true
		p.pinned += e.size
		for i := range e.npages() {
			if _, _, err := p.pageBufLocked(e, i); err != nil {
				return err
			}
		}
	}
	return nil
}

// pinError is the limit error for pins past half the budget.
func (p *Pager) pinError(subject string, pinned int64) error {
	return &limit.Error{Kind: limit.Memory, Subject: subject, Current: float64(pinned), Limit: float64(p.limit / 2),
		Unit: "bytes", Detail: "pinned values may use at most half of the pager's memory limit"}
}

// adopt moves state's entries into the pager. On failure it puts them back
// and releases the pager.
func (p *Pager) adopt(state dag.State) error {
	var moved []string
	fail := func(err error) error {
		for _, k := range moved {
			if v, gerr := p.getCopy(k); gerr == nil {
				if perr := state.Put(k, v); perr == nil {
					_ = p.Delete(k)
				}
			}
		}
		_ = p.Close()
		return fmt.Errorf("paging: wrap: %w", err)
	}
	for _, k := range state.Keys() {
		v, err := state.Get(k)
		if errors.Is(err, dag.ErrNotFound) {
			continue
		}
		if err != nil {
			return fail(err)
		}
		if err := p.Put(k, v); err != nil {
			return fail(err)
		}
		moved = append(moved, k)
		if err := state.Delete(k); err != nil {
			return fail(err)
		}
	}
	return nil
}

// getCopy returns a private copy of key's value (used to undo adopt); it
// reads page by page, so it works for values larger than the budget.
func (p *Pager) getCopy(key string) ([]byte, error) {
	n, ok := p.SizeOf(key)
	if !ok {
		return nil, notFound(key)
	}
	if n > math.MaxInt {
		return nil, fmt.Errorf("paging: key %q: value of %d bytes does not fit in memory here", shortKey(key), n)
	}
	v := make([]byte, n)
	if _, err := p.ReadAt(key, v, 0); err != nil && !(err == io.EOF && n == 0) {
		return nil, err
	}
	return v, nil
}

// prefetchAtOpen pages in PrefetchKeys while the budget has room that
// needs no write-back.
func (p *Pager) prefetchAtOpen() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.cfg.prefetch {
		e := p.index[k]
		if e == nil || e.pinned {
			continue
		}
		for i := range e.npages() {
			pg := e.page(i)
			if pg.buf != nil || pg.load != nil {
				continue
			}
			n := e.pageLen(i)
			if !p.reserveCleanLocked(n, nil) {
				return
			}
			p.c.prefetchIssued++
			if _, err := p.loadLocked(pg, n, true, nil); err != nil {
				p.cfg.logger.Warn("paging: prefetch failed", "key", shortKey(k), "err", err)
				break
			}
		}
	}
}

// Get returns the value stored under key, or an error wrapping
// dag.ErrNotFound. The bytes are shared and must not be modified.
//
// A value of one page (at most the page size) is returned without copying;
// when it is resident this is the hit path: one short critical section, no
// allocation. A value of several pages is assembled into a new slice of its
// length (prefer dag.NewValueReader for large values); a value larger than
// the memory limit is refused with a *limit.Error of Kind limit.Memory.
// A page that fails its checksum yields an error wrapping ErrCorrupt that
// names the key. Get blocks while pages are read from disk or, when the
// budget is full, while dirty pages are written back to make room.
func (p *Pager) Get(key string) ([]byte, error) {
	p.mu.Lock()
	e := p.index[key]
	if e != nil && !p.closed && e.size <= e.psize && e.p0.buf != nil {
		pg := &e.p0
		if pg.flags&(fInLRU|fPrefetched) == fInLRU {
			pg.flags |= fReferenced
		} else {
			p.touchLocked(pg)
		}
		pg.flags |= fExposed
		p.c.hits++
		p.c.accesses++
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
}

// lruAddLocked puts a resident, unpinned page at the front of the LRU
// list. p.mu must be held (as for every ...Locked method and the list and
// dirty-list helpers below).
func (p *Pager) lruAddLocked(pg *page) {
	if pg.flags&fInLRU == 0 && !pg.e.pinned {
		p.lru.Add(pg, struct{}{})
		pg.flags |= fInLRU
		pg.flags &^= fReferenced
		p.lruLen++
	}
}

// lruRemoveLocked takes pg out of the LRU list.
func (p *Pager) lruRemoveLocked(pg *page) {
	if pg.flags&fInLRU != 0 {
		p.lru.Remove(pg)
		pg.flags &^= fInLRU | fReferenced
		p.lruLen--
	}
}

// lruOldest returns the least recently used evictable page, or nil.
// Pages referenced since they were last moved to the front get a second
// chance: they go to the front with their bit cleared, so the loop ends
// within one pass over the list.
func (p *Pager) lruOldest() *page {
	for {
		pg, _, ok := p.lru.GetOldest()
		if !ok {
			return nil
		}
		if pg.flags&fReferenced == 0 {
			return pg
		}
		pg.flags &^= fReferenced
		p.lru.Get(pg) // to the front
	}
}

// Put stores a copy of value under key, replacing any previous value. The
// new value becomes visible atomically when Put returns; if Put fails the
// previous value is unchanged.
//
// The value is split into pages; when the budget is full Put first makes
// room by dropping clean pages and writing dirty ones back (so it can block
// on disk I/O, and a value larger than the budget streams through it). When
// Put returns, the resident bytes are within the memory limit. Errors: a
// pinned key whose value would take pinned bytes past half the limit, or no
// room because the disk or page file is full, are *limit.Error values; the
// pager keeps its in-memory values in both cases.
func (p *Pager) Put(key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("paging: put: %w", err)
	}
	var small []byte
	if int64(len(value)) <= p.cfg.pageSize && len(value) > 0 {
		// Copy before taking the lock: one critical section for the rest.
		small = slices.Clone(value)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.c.accesses++
	p.ops.Add(1)
	defer p.ops.Done()
	e, err := p.beginLocked(key, int64(len(value)))
	if err != nil {
		p.mu.Unlock()
		return err
	}
	if small != nil {
		if err := p.addPageLocked(e, 0, small); err != nil {
			p.mu.Unlock()
			return err
		}
	} else {
		for i := range e.npages() {
			p.mu.Unlock()
			lo := i * e.psize
			buf := slices.Clone(value[lo : lo+e.pageLen(i)])
			p.mu.Lock()
			if err := p.addPageLocked(e, i, buf); err != nil {
				p.mu.Unlock()
				return err
			}
		}
	}
	p.publishLocked(e)
	p.mu.Unlock()
	return nil
}

// beginLocked creates the pending entry of a write to key.
func (p *Pager) beginLocked(key string, size int64) (*entry, error) {
	e := newEntry(key, size, p.cfg.pageSize)
	e.blob = p.nextBlob
	p.nextBlob++
	if p.cfg.pins[key] {
		e.pinned = true
		if err := p.growPinLocked(e, size); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// growPinLocked accounts n more bytes of pinned value e, refusing to go
// past half the limit.
func (p *Pager) growPinLocked(e *entry, n int64) error {
	var old int64
	if cur := p.index[e.key]; cur != nil && cur.pinned {
		old = cur.size
	}
	if total := p.pinned + p.pinPending + n - old; total > p.limit/2 {
		return p.pinError(shortKey(e.key), total)
	}
	p.pinPending += n
	return nil
}

// addPageLocked makes room for buf and installs it as dirty page i of the
// pending entry e. On failure e is aborted.
func (p *Pager) addPageLocked(e *entry, i int64, buf []byte) error {
	n := int64(len(buf))
	if err := p.reserveLocked(n, nil); err != nil {
		p.abortLocked(e)
		return err
	}
	pg := e.page(i)
	pg.buf = buf
	pg.flags = fDirty
	p.seq++
	pg.seq = p.seq
	e.ndirty++
	p.dirtyBytes += n
	p.dirtyPages++
	p.residentPages++
	p.dirtyPushLocked(pg)
	if !e.pinned {
		p.lruAddLocked(pg)
	}
	if p.resident > p.mid {
		p.wakeReclaimerLocked()
	}
	return nil
}

// publishLocked makes the pending entry e the visible value of its key.
func (p *Pager) publishLocked(e *entry) {
	old := p.index[e.key]
	p.seq++
	e.seq = p.seq
	e.state = stateVisible
	p.index[e.key] = e
	p.size += e.size
	if e.pinned {
		p.pinPending -= e.size
		p.pinned += e.size
	}
	if old != nil {
		p.size -= old.size
		if old.pinned {
			p.pinned -= old.size
		}
		e.obsolete = p.killLocked(old)
	}
	e.headerDirty = true
	if e.ndirty == 0 {
		p.readyLocked(e)
	}
}

// abortLocked discards the pending entry e.
func (p *Pager) abortLocked(e *entry) {
	if e.pinned {
		p.pinPending -= e.size
	}
	if refs := p.killLocked(e); len(refs) > 0 {
		p.seq++
		p.deletes = append(p.deletes, delRec{key: e.key, blobs: refs, seq: p.seq})
	}
	p.cond.Broadcast()
}

// killLocked marks e dead, releases its resident pages and returns the
// blobs whose records must eventually be deleted.
func (p *Pager) killLocked(e *entry) []blobRef {
	e.state = stateDead
	refs := e.obsolete
	e.obsolete = nil
	ref := blobRef{id: e.blob}
	for i := range e.npages() {
		pg := e.page(i)
		if pg.flags&fOnDisk != 0 {
			ref.pages++
			ref.logical += e.pageLen(i)
			ref.stored += int64(pg.stored)
		}
		p.releaseLocked(pg)
	}
	if e.touchedDisk || e.headerOnDisk {
		refs = append(refs, ref)
	}
	return refs
}

// releaseLocked drops pg's resident bytes whatever its state.
func (p *Pager) releaseLocked(pg *page) {
	if pg.buf == nil {
		return
	}
	n := int64(len(pg.buf))
	p.resident -= n
	p.residentPages--
	p.lruRemoveLocked(pg)
	if pg.flags&fDirty != 0 {
		p.dirtyRemoveLocked(pg)
		p.dirtyBytes -= n
		p.dirtyPages--
		pg.e.ndirty--
	}
	if pg.flags&fEvictOnClean != 0 {
		p.evicting -= n
	}
	if pg.flags&fPrefetched != 0 {
		p.c.prefetchWasted++
	}
	pg.flags &^= fDirty | fEvictOnClean | fPrefetched | fExposed
	pg.buf = nil
}

// readyLocked queues e's header for the next write-back batch.
func (p *Pager) readyLocked(e *entry) {
	if !e.ready {
		e.ready = true
		p.readyHeaders = append(p.readyHeaders, e)
		if len(p.readyHeaders) >= flushBacklog {
			p.wakeReclaimerLocked()
		}
	}
}

// dirtyPushLocked appends pg to the dirty list.
func (p *Pager) dirtyPushLocked(pg *page) {
	pg.dnext = nil
	pg.dprev = p.dirtyTail
	if p.dirtyTail != nil {
		p.dirtyTail.dnext = pg
	} else {
		p.dirtyHead = pg
	}
	p.dirtyTail = pg
}

// dirtyRemoveLocked takes pg out of the dirty list.
func (p *Pager) dirtyRemoveLocked(pg *page) {
	if pg.dprev != nil {
		pg.dprev.dnext = pg.dnext
	} else {
		p.dirtyHead = pg.dnext
	}
	if pg.dnext != nil {
		pg.dnext.dprev = pg.dprev
	} else {
		p.dirtyTail = pg.dprev
	}
	pg.dprev, pg.dnext = nil, nil
}

// Delete removes key; deleting a missing key is not an error. The value's
// memory is released at once; its records leave the file with the next
// write-back (at the latest at Checkpoint or Close). Does not block on I/O.
func (p *Pager) Delete(key string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.c.accesses++
	e := p.index[key]
	if e == nil {
		return nil
	}
	delete(p.index, key)
	p.size -= e.size
	if e.pinned {
		p.pinned -= e.size
	}
	if refs := p.killLocked(e); len(refs) > 0 {
		p.seq++
		p.deletes = append(p.deletes, delRec{key: key, blobs: refs, seq: p.seq})
		if len(p.deletes) >= flushBacklog {
			p.wakeReclaimerLocked()
		}
	}
	p.cond.Broadcast()
	return nil
}

// Keys returns the keys present, sorted. It costs O(n log n) in the number
// of keys and does no I/O. After Close it returns nil.
func (p *Pager) Keys() []string {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	keys := make([]string, 0, len(p.index))
	for k := range p.index {
		keys = append(keys, k)
	}
	p.mu.Unlock()
	slices.Sort(keys)
	return keys
}

// Size returns the total number of value bytes stored, resident or not.
func (p *Pager) Size() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size
}

// SizeOf returns the length of the value under key and whether it exists;
// it does no I/O.
func (p *Pager) SizeOf(key string) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, false
	}
	e := p.index[key]
	if e == nil {
		return 0, false
	}
	return e.size, true
}

// Close writes every dirty value back (in both modes; cache mode syncs the
// file once at the end), marks the file clean, stops the background
// goroutines and waits for them, and releases the file. With the default
// empty StoragePath the temporary directory is removed instead of written.
// Calls in progress finish first; later calls to Close and to the State
// methods return ErrClosed. If writing back fails (disk full) the error is
// returned and the file is left marked unclean, to be verified at the next
// Wrap; the values that were only in RAM are lost, so call Checkpoint
// first when that matters.
func (p *Pager) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.closed = true
	writers := make([]*ValueWriter, 0, len(p.writers))
	for w := range p.writers {
		writers = append(writers, w)
	}
	p.cond.Broadcast()
	p.mu.Unlock()

	close(p.stop)
	p.wg.Wait()
	p.ops.Wait()
	for _, w := range writers {
		w.abortClosed()
	}
	var err error
	if !p.cfg.ephemeral {
		err = p.flush(math.MaxUint64)
	}
	// Release the RAM; the index stays for Stats.
	p.mu.Lock()
	for _, e := range p.index {
		for i := range e.npages() {
			p.releaseLocked(e.page(i))
		}
	}
	p.mu.Unlock()
	if cerr := p.st.close(err == nil && !p.cfg.ephemeral); err == nil && cerr != nil {
		err = fmt.Errorf("paging: close: %w", cerr)
	}
	if p.cfg.ephemeral {
		if rerr := os.RemoveAll(p.cfg.dir); err == nil && rerr != nil {
			err = fmt.Errorf("paging: close: %w", rerr)
		}
	}
	return err
}
