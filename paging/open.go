package paging

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/internal/memfs"
	"github.com/cemaf-go/cemaf/limit"
)

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
		if inRAM, err := memfs.InRAM(dir); err == nil && inRAM {
			cfg.logger.Warn("paging: no StoragePath, and the temporary directory is in RAM (tmpfs): paged-out values still take memory; set StoragePath to a directory on the storage device", "dir", dir)
		}
	}
	st, rec, err := openStore(&cfg)
	if err != nil {
		if cfg.ephemeral {
			os.RemoveAll(cfg.dir)
		}
		return nil, err
	}
	p := newPager(cfg, st)
	p.adviseGoLimit()
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
	p.hot = newHotTable(cfg.limit)
	p.lru, _ = simplelru.NewLRU[*page, struct{}](math.MaxInt32, nil) // no count limit: evicted by bytes
	p.setLimitLocked(cfg.limit)
	return p
}

// adviseGoLimit gives the process's Go memory limit coordinator this
// pager's advice for its current budget (none once closed). Called
// without p.mu held.
func (p *Pager) adviseGoLimit() {
	if !p.cfg.goLimit {
		return
	}
	p.mu.Lock()
	advice := goLimitAdvice(p.limit)
	if p.closed {
		advice = 0
	}
	p.mu.Unlock()
	goLimits.update(p, advice)
}

// setLimitLocked sets the budget and the values derived from it.
func (p *Pager) setLimitLocked(limit int64) {
	p.limit = limit
	p.fill = limit - garbageAllowance(limit, p.cfg.pageSize)
	p.low = int64(float64(p.fill) * p.cfg.lowPercent / 100)
	p.low = min(p.low, p.fill-p.cfg.pageSize)
	p.mid = p.low + (p.fill-p.low)/2
	p.batchBytes = max(p.cfg.pageSize, min(4<<20, limit/16))
	p.st.dropEvery.Store(dropAfter(limit))
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
	p.adviseGoLimit()
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
		e.hslot = p.hot.slotOf(v.key)
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
			var spare []byte
			if !p.reserveCleanLocked(n, &spare) {
				return
			}
			p.c.prefetchIssued++
			if _, err := p.loadLocked(pg, n, true, spare); err != nil {
				p.cfg.logger.Warn("paging: prefetch failed", "key", shortKey(k), "err", err)
				break
			}
		}
	}
}
