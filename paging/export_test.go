package paging

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// WithFaults returns opts with failure injection: beforeCommit runs before
// each write transaction commits (a non-nil error fails it); noBackground
// keeps the background reclaimer from starting.
func WithFaults(opts Options, beforeCommit func() error, noBackground bool) Options {
	opts.faults = &faults{beforeCommit: beforeCommit, noBackground: noBackground}
	return opts
}

// DecodePage exposes the record decoder to the fuzz test.
func DecodePage(rec, dst []byte) error { return decodePage(rec, dst) }

// EncodePage exposes the record encoder.
func EncodePage(page []byte, compress bool) ([]byte, bool, error) {
	var enc encoder
	return enc.encodePage(nil, page, compress)
}

// StoredPage returns a copy of the record of page idx of key's value as it
// is in the file (after a Checkpoint it is there).
func (p *Pager) StoredPage(key string, idx int64) ([]byte, error) {
	p.mu.Lock()
	e := p.index[key]
	p.mu.Unlock()
	if e == nil {
		return nil, errors.New("no such key")
	}
	var out []byte
	err := p.st.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPages).Get(pageKey(e.blob, idx))
		if v == nil {
			return errors.New("no record")
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

// CorruptStoredPage flips one byte at offset off of page idx of key's
// stored record (the value must have been checkpointed).
func (p *Pager) CorruptStoredPage(key string, idx int64, off int) error {
	p.mu.Lock()
	e := p.index[key]
	p.mu.Unlock()
	if e == nil {
		return errors.New("no such key")
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.st.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPages)
		k := pageKey(e.blob, idx)
		v := b.Get(k)
		if v == nil {
			return errors.New("no record")
		}
		c := append([]byte(nil), v...)
		c[off%len(c)] ^= 0x5a
		return b.Put(k, c)
	})
}

// DropResident evicts every evictable page (writing dirty ones back).
func (p *Pager) DropResident() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reclaimLocked(0)
}

// PageSize returns the configured page size in bytes.
func (p *Pager) PageSize() int64 { return p.cfg.pageSize }

// Path returns the page file's path.
func (p *Pager) Path() string { return p.st.path }

// Recovery reports what Wrap found in the file.
func (p *Pager) Recovery() (unclean, discarded bool, orphans, dropped int) {
	r := p.recoveredAt
	return r.unclean, r.discarded, r.orphans, len(r.dropped)
}

// CheckInvariants verifies the pager's bookkeeping. It holds the write-back
// lock, so no batch is in flight, but may run concurrently with other calls.
func (p *Pager) CheckInvariants() error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	var resident, residentPages, dirty, dirtyPages, evicting, inLRU, size, pinned int64
	seen := map[*entry]bool{}
	check := func(e *entry) error {
		if seen[e] {
			return nil
		}
		seen[e] = true
		var nd int64
		for i := range e.npages() {
			pg := e.page(i)
			if pg.e != e || pg.idx != i {
				return fmt.Errorf("key %q page %d: wrong back link", e.key, i)
			}
			if pg.flags&fInflight != 0 && pg.flags&fDirty == 0 {
				return fmt.Errorf("key %q page %d: clean page in flight", e.key, i)
			}
			if pg.buf == nil {
				if pg.flags&(fDirty|fInLRU|fEvictOnClean) != 0 {
					return fmt.Errorf("key %q page %d: not resident with flags %b", e.key, i, pg.flags)
				}
				if e.state == stateVisible && pg.flags&fOnDisk == 0 {
					return fmt.Errorf("key %q page %d: neither resident nor on disk", e.key, i)
				}
				continue
			}
			if int64(len(pg.buf)) != e.pageLen(i) {
				return fmt.Errorf("key %q page %d: %d bytes, want %d", e.key, i, len(pg.buf), e.pageLen(i))
			}
			resident += int64(len(pg.buf))
			residentPages++
			if pg.flags&fDirty != 0 {
				nd++
				dirty += int64(len(pg.buf))
				dirtyPages++
			}
			if pg.flags&fEvictOnClean != 0 {
				evicting += int64(len(pg.buf))
			}
			if pg.flags&fInLRU != 0 {
				inLRU++
				if !p.lru.Contains(pg) {
					return fmt.Errorf("key %q page %d: flagged in LRU but not in it", e.key, i)
				}
			} else if !e.pinned && pg.flags&fEvictOnClean == 0 {
				return fmt.Errorf("key %q page %d: resident, unpinned, not in LRU", e.key, i)
			}
		}
		if hb := e.hotBuf.Load(); hb != nil {
			pg := &e.p0
			if e.state != stateVisible || pg.buf == nil || &(*hb)[0] != &pg.buf[0] || pg.flags&(fPrefetched|fEvictOnClean) != 0 ||
				(pg.flags&fInLRU == 0 && !e.pinned) {
				return fmt.Errorf("key %q: hot buffer published for a page that is not hot (flags %b)", e.key, pg.flags)
			}
		}
		if nd != e.ndirty {
			return fmt.Errorf("key %q: ndirty %d, counted %d", e.key, e.ndirty, nd)
		}
		return nil
	}
	for k, e := range p.index {
		if e.key != k || e.state != stateVisible {
			return fmt.Errorf("key %q: index entry for %q in state %d", k, e.key, e.state)
		}
		size += e.size
		if e.pinned {
			pinned += e.size
		}
		if err := check(e); err != nil {
			return err
		}
	}
	for w := range p.writers {
		if err := check(w.e); err != nil {
			return err
		}
	}
	n := int64(0)
	for pg := p.dirtyHead; pg != nil; pg = pg.dnext {
		n++
	}
	var spareBytes, spareCount int64
	for n, l := range p.spares {
		if len(l) == 0 {
			return fmt.Errorf("empty spare list of %d bytes", n)
		}
		for _, b := range l {
			if int64(len(b)) != n || int64(cap(b)) != n {
				return fmt.Errorf("spare of %d/%d bytes in the list of %d", len(b), cap(b), n)
			}
			spareBytes += n
			spareCount++
		}
	}
	lruCount := int64(0)
	for _, pg := range p.lru.Keys() {
		if pg.flags&fInLRU == 0 || pg.buf == nil {
			return fmt.Errorf("key %q page %d: in the LRU list but not flagged resident", pg.e.key, pg.idx)
		}
		lruCount++
	}
	switch {
	case resident+p.loading+p.filling != p.resident:
		return fmt.Errorf("resident = %d, pages hold %d, loading %d, filling %d", p.resident, resident, p.loading, p.filling)
	case spareBytes != p.spareBytes || spareCount != p.spareCount:
		return fmt.Errorf("spares = %d B in %d buffers, counted %d B in %d", p.spareBytes, p.spareCount, spareBytes, spareCount)
	case p.resident+p.spareBytes > p.limit:
		return fmt.Errorf("resident %d + spares %d > limit %d", p.resident, p.spareBytes, p.limit)
	case residentPages != p.residentPages:
		return fmt.Errorf("residentPages = %d, counted %d", p.residentPages, residentPages)
	case dirty != p.dirtyBytes || dirtyPages != p.dirtyPages || n != dirtyPages:
		return fmt.Errorf("dirty = %d B/%d pages (list %d), counted %d B/%d pages", p.dirtyBytes, p.dirtyPages, n, dirty, dirtyPages)
	case evicting != p.evicting:
		return fmt.Errorf("evicting = %d, counted %d", p.evicting, evicting)
	case inLRU != p.lruLen || inLRU != lruCount:
		return fmt.Errorf("lru holds %d pages (counter %d), %d flagged", lruCount, p.lruLen, inLRU)
	case size != p.size:
		return fmt.Errorf("size = %d, values hold %d", p.size, size)
	case pinned != p.pinned:
		return fmt.Errorf("pinned = %d, counted %d", p.pinned, pinned)
	case p.resident > p.limit:
		return fmt.Errorf("resident %d > limit %d", p.resident, p.limit)
	}
	return nil
}

// Crash abandons the pager as a crash would: background goroutines stop
// and the file is released without being flushed or marked clean.
func (p *Pager) Crash() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	p.ops.Wait()
	_ = p.st.closeDB()
	p.adviseGoLimit() // a crashed process takes its memory limit with it
}

// WaitReadAhead blocks until no read-ahead request is queued or running.
func (p *Pager) WaitReadAhead() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.raPending > 0 {
		p.cond.Wait()
	}
}

// DropEvery is how many bytes the store moves between two drops of its
// mapped pages.
func (p *Pager) DropEvery() int64 { return p.st.dropEvery.Load() }
