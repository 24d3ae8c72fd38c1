package paging

import (
	"fmt"
)

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
	for i := range e.npages() {
		// Reserve the page (taking a spare buffer when there is one), then
		// copy outside the lock: the reservation is counted as filling.
		n := e.pageLen(i)
		var buf []byte
		if err := p.reserveLocked(n, &buf); err != nil {
			p.abortLocked(e)
			p.mu.Unlock()
			return err
		}
		p.filling += n
		p.mu.Unlock()
		if buf == nil {
			buf = make([]byte, n)
		}
		copy(buf, value[i*e.psize:])
		p.mu.Lock()
		p.filling -= n
		p.installPageLocked(e, i, buf)
	}
	p.publishLocked(e)
	p.mu.Unlock()
	return nil
}

// beginLocked creates the pending entry of a write to key.
func (p *Pager) beginLocked(key string, size int64) (*entry, error) {
	e := newEntry(key, size, p.cfg.pageSize)
	e.hslot = p.hot.slotOf(key)
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
	if err := p.reserveLocked(int64(len(buf)), nil); err != nil {
		p.abortLocked(e)
		return err
	}
	p.installPageLocked(e, i, buf)
	return nil
}

// installPageLocked installs buf, whose bytes are reserved, as dirty page
// i of the pending entry e.
func (p *Pager) installPageLocked(e *entry, i int64, buf []byte) {
	n := int64(len(buf))
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
	if p.filling > 0 {
		// Writers waiting for room may now evict this page.
		p.cond.Broadcast()
	}
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
	p.hotSyncLocked(e)
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
	fl := p.hotDropLocked(pg)
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
	p.recycleLocked(pg.buf, fl|pg.flags, pg.readers)
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
