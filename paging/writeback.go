package paging

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// batch is one write transaction: page records, headers of values whose
// pages are all on disk, and deletions.
type batch struct {
	pages   []*page
	data    [][]byte // the pages' bytes (immutable)
	recs    [][]byte // encoded records, filled by encode
	headers []headerWrite
	deletes []delRec
}

type headerWrite struct {
	e        *entry
	key      []byte
	rec      []byte
	obsolete []blobRef
}

func (b *batch) empty() bool {
	return len(b.pages) == 0 && len(b.headers) == 0 && len(b.deletes) == 0
}

// writeBackLocked writes the claimed pages (fInflight set) in one batch,
// together with the headers and deletions that are due. Called and returns
// with p.mu held; p.mu is released during the I/O.
func (p *Pager) writeBackLocked(claimed []*page) error {
	p.mu.Unlock()
	p.wmu.Lock()
	p.mu.Lock()
	b := p.buildLocked(claimed)
	if b.empty() {
		p.wmu.Unlock()
		return nil
	}
	p.mu.Unlock()
	err := p.commit(b)
	p.mu.Lock()
	p.completeLocked(b, err)
	p.wmu.Unlock()
	return err
}

// buildLocked assembles a batch from claimed pages plus due headers and
// deletions. Called with p.wmu and p.mu held, so batches commit in the
// order they are built.
func (p *Pager) buildLocked(claimed []*page) *batch {
	b := &batch{}
	for _, pg := range claimed {
		if pg.e.state == stateDead || pg.buf == nil {
			// Released meanwhile (its entry was replaced or deleted).
			pg.flags &^= fInflight
			continue
		}
		b.pages = append(b.pages, pg)
		b.data = append(b.data, pg.buf)
		pg.e.batchCount++
	}
	for _, pg := range b.pages {
		e := pg.e
		if e.batchCount == 0 {
			continue
		}
		if e.state == stateVisible && e.headerDirty && e.batchCount == e.ndirty {
			b.headers = append(b.headers, p.headerWriteLocked(e))
		}
		e.batchCount = 0
	}
	for _, e := range p.readyHeaders {
		e.ready = false
		if e.state == stateVisible && e.headerDirty && e.ndirty == 0 {
			b.headers = append(b.headers, p.headerWriteLocked(e))
		}
	}
	p.readyHeaders = p.readyHeaders[:0]
	b.deletes = p.deletes
	p.deletes = nil
	// Every non-empty batch is committed, and completed, by the caller.
	p.encoding = !b.empty()
	return b
}

// headerWriteLocked takes e's header (and the blobs it obsoletes) into a
// batch.
func (p *Pager) headerWriteLocked(e *entry) headerWrite {
	h := headerWrite{
		e:        e,
		key:      valueKey(e.key),
		rec:      encodeHeader(header{blob: e.blob, size: e.size, psize: e.psize}),
		obsolete: e.obsolete,
	}
	e.obsolete = nil
	e.headerDirty = false
	return h
}

// commit encodes the batch's pages and writes everything in one bbolt
// transaction. Called with p.wmu held and p.mu not held. Pages are
// compressed in parallel by up to one goroutine per encoder, each into its
// encoder's arena (reused by the next batch, which wmu serialises); the
// goroutines end before commit returns.
func (p *Pager) commit(b *batch) error {
	b.recs = make([][]byte, len(b.data))
	workers := min(len(p.encs), len(b.data))
	encode := func(w int) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("paging: encode page: panic: %v", r)
			}
		}()
		enc := &p.encs[w]
		enc.resetArena()
		for i := w; i < len(b.data); i += workers {
			rec, err := enc.encodeRecord(b.data[i], p.cfg.compress)
			if err != nil {
				return err
			}
			b.recs[i] = rec
		}
		return nil
	}
	if workers <= 1 {
		if err := encode(0); err != nil {
			return err
		}
	} else {
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() { errs[w] = encode(w) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	deletes := b.deletes
	// Space freed by a transaction is reusable only by later ones: delete
	// first, so that a full file can take the new pages. Many deletes are
	// applied in several transactions (see deleteGroup).
	for len(deletes) > 0 {
		group := deletes[:p.st.deleteGroup(deletes)]
		if len(group) == len(deletes) && len(b.pages) == 0 {
			break // the last group goes with the headers, below
		}
		if err := p.st.update(func(tx *bolt.Tx) error { return p.st.applyDeletes(tx, group) }); err != nil {
			return err
		}
		p.st.dropNow()
		deletes = deletes[len(group):]
	}
	return p.st.update(func(tx *bolt.Tx) error {
		values, pages := tx.Bucket(bucketValues), tx.Bucket(bucketPages)
		var n int64
		for i, pg := range b.pages {
			if err := pages.Put(pageKey(pg.e.blob, pg.idx), b.recs[i]); err != nil {
				return err
			}
			n += int64(len(b.recs[i]))
		}
		// Inserting reads the neighbouring records through the mapping.
		p.st.touched(tx, n)
		for _, h := range b.headers {
			if err := values.Put(h.key, h.rec); err != nil {
				return err
			}
			for _, ref := range h.obsolete {
				if err := deleteBlob(pages, ref.id); err != nil {
					return err
				}
				p.st.touched(tx, ref.stored)
			}
		}
		return p.st.applyDeletes(tx, deletes)
	})
}

// applyDeletes removes the blobs of deletes, and each key's header when it
// still points at one of them. Deleting a record maps about all of its file
// pages (bbolt reads its key, the kernel maps the pages around it): they
// are counted as touched, so that deleting many values does not fill the
// resident set with the file.
func (s *store) applyDeletes(tx *bolt.Tx, deletes []delRec) error {
	values, pages := tx.Bucket(bucketValues), tx.Bucket(bucketPages)
	for _, d := range deletes {
		vk := valueKey(d.key)
		if cur := values.Get(vk); cur != nil {
			if h, err := decodeHeader(cur); err != nil || containsBlob(d.blobs, h.blob) {
				if err := values.Delete(vk); err != nil {
					return err
				}
			}
		}
		for _, ref := range d.blobs {
			if err := deleteBlob(pages, ref.id); err != nil {
				return err
			}
			// And the commit maps the file around each record's header.
			s.touched(tx, ref.stored+ref.pages*faultAround)
		}
	}
	return nil
}

func containsBlob(refs []blobRef, id uint64) bool {
	for _, r := range refs {
		if r.id == id {
			return true
		}
	}
	return false
}

// completeLocked applies the outcome of a committed (err == nil) or failed
// batch to the in-memory state.
func (p *Pager) completeLocked(b *batch, err error) {
	defer p.cond.Broadcast()
	defer p.settleScratchLocked()
	if err != nil {
		p.c.writeErrors++
		p.lastErr = err
		for _, pg := range b.pages {
			pg.flags &^= fInflight
			if pg.buf == nil {
				continue
			}
			if pg.flags&fEvictOnClean != 0 {
				pg.flags &^= fEvictOnClean
				p.evicting -= int64(len(pg.buf))
			}
			p.lruAddLocked(pg)
		}
		for _, h := range b.headers {
			e := h.e
			if e.state == stateDead {
				if len(h.obsolete) > 0 {
					p.deletes = append(p.deletes, delRec{key: e.key, blobs: h.obsolete, seq: e.seq})
				}
				continue
			}
			e.obsolete = append(h.obsolete, e.obsolete...)
			e.headerDirty = true
			if e.ndirty == 0 {
				p.readyLocked(e)
			}
		}
		p.deletes = append(b.deletes, p.deletes...)
		return
	}
	for i, pg := range b.pages {
		pg.flags &^= fInflight
		e := pg.e
		n := int64(len(b.data[i]))
		p.c.pageOuts++
		p.c.bytesOut += n
		p.c.storedOut += int64(len(b.recs[i]))
		if pg.buf == nil {
			// Released while in flight: its blob is queued for deletion,
			// and these records go with it.
			continue
		}
		pg.flags &^= fDirty
		pg.flags |= fOnDisk
		pg.stored = int32(len(b.recs[i]))
		p.dirtyRemoveLocked(pg)
		p.dirtyBytes -= n
		p.dirtyPages--
		e.ndirty--
		p.disk.pages++
		p.disk.logical += n
		p.disk.stored += int64(pg.stored)
		if pg.flags&fEvictOnClean != 0 {
			p.evictCleanLocked(pg)
		}
		if e.ndirty == 0 && e.state == stateVisible && e.headerDirty {
			p.readyLocked(e)
		}
	}
	for _, h := range b.headers {
		h.e.headerOnDisk = true
		for _, ref := range h.obsolete {
			p.forgetBlobLocked(ref)
		}
	}
	for _, d := range b.deletes {
		for _, ref := range d.blobs {
			p.forgetBlobLocked(ref)
		}
	}
}

// settleScratchLocked ends a batch's use of the encoders and accounts
// their record arenas in the budget. Called with p.wmu and p.mu held.
func (p *Pager) settleScratchLocked() {
	p.encoding = false
	var n int64
	for i := range p.encs {
		n += p.encs[i].arenaBytes()
	}
	p.scratchBytes = n
}

// dropScratchLocked releases the encoders' record arenas unless a batch is
// using them; the next batch allocates new ones. Called with p.mu held.
func (p *Pager) dropScratchLocked() {
	if p.encoding {
		return
	}
	for i := range p.encs {
		p.encs[i].releaseArena()
	}
	p.scratchBytes = 0
}

// scratchIdleLocked reports whether the encoders' arenas may go: they
// hold bytes, no batch uses them and no dirty page waits to be written.
// Called with p.mu held.
func (p *Pager) scratchIdleLocked() bool {
	return p.scratchBytes > 0 && !p.encoding && p.dirtyPages == 0
}

// forgetBlobLocked removes a deleted blob from the on-disk figures.
func (p *Pager) forgetBlobLocked(ref blobRef) {
	p.disk.pages -= ref.pages
	p.disk.logical -= ref.logical
	p.disk.stored -= ref.stored
}

// flush writes back every dirty page, header and deletion with a sequence
// number up to upTo, in batches (the caller syncs). Pages claimed by
// other write-backs are waited for. Called with no lock held.
func (p *Pager) flush(upTo uint64) error {
	for {
		p.wmu.Lock()
		p.mu.Lock()
		claimed, othersPending := p.claimDirtyLocked(upTo)
		due := othersPending || len(claimed) > 0 || p.dueLocked(upTo)
		if !due {
			p.mu.Unlock()
			p.wmu.Unlock()
			break
		}
		b := p.buildLocked(claimed)
		if b.empty() {
			p.wmu.Unlock()
			if othersPending {
				// Only pages claimed by other write-backs remain: wait
				// for them.
				p.cond.Wait()
			}
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		err := p.commit(b)
		p.mu.Lock()
		p.completeLocked(b, err)
		p.mu.Unlock()
		p.wmu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// claimDirtyLocked claims up to a batch of unclaimed dirty pages with
// sequence numbers up to upTo, oldest first, and reports whether older
// dirty pages are claimed by another write-back.
func (p *Pager) claimDirtyLocked(upTo uint64) (claimed []*page, othersPending bool) {
	var bytes int64
	for pg := p.dirtyHead; pg != nil && pg.seq <= upTo && bytes < p.batchBytes; pg = pg.dnext {
		if pg.flags&fInflight != 0 {
			othersPending = true
			continue
		}
		pg.flags |= fInflight
		pg.e.touchedDisk = true
		claimed = append(claimed, pg)
		bytes += int64(len(pg.buf))
	}
	return claimed, othersPending
}

// dueLocked reports whether headers or deletions up to upTo are pending.
func (p *Pager) dueLocked(upTo uint64) bool {
	for _, e := range p.readyHeaders {
		if e.seq <= upTo && e.state == stateVisible {
			return true
		}
	}
	for _, d := range p.deletes {
		if d.seq <= upTo {
			return true
		}
	}
	return false
}

// Checkpoint writes every value Put (and every Delete) that completed
// before the call to the page file and syncs it. In ModeDurable, once
// Checkpoint returns nil those keys survive a crash, kill -9 included.
// Concurrent callers share checkpoints (group commit): a caller waits for
// the checkpoint in progress, if any, and then for one that starts after
// its call. Values stay resident (and now clean). Blocks for the I/O.
func (p *Pager) Checkpoint() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.ops.Add(1)
	defer p.ops.Done()
	want := p.ckStarted + 1
	for p.ckDone < want {
		if p.ckRunning {
			p.cond.Wait()
			continue
		}
		p.ckRunning = true
		p.ckStarted++
		gen := p.ckStarted
		upTo := p.seq
		p.mu.Unlock()
		err := p.flush(upTo)
		if err == nil {
			err = p.st.sync()
		}
		p.mu.Lock()
		p.ckRunning = false
		p.ckDone = gen
		p.ckErr = err
		if err == nil {
			p.c.checkpoints++
		}
		p.cond.Broadcast()
	}
	err := p.ckErr
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("paging: checkpoint: %w", err)
	}
	return nil
}

// flushBacklog is the number of pending deletions and headers at which the
// background reclaimer writes them out even without memory pressure.
const flushBacklog = 256

// wakeReclaimerLocked nudges the background reclaimer, starting it on
// first use.
func (p *Pager) wakeReclaimerLocked() {
	if p.cfg.faults.noBackground || !p.startWorkersLocked() {
		return
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// startWorkersLocked starts the background goroutines once; it reports
// false after Close.
func (p *Pager) startWorkersLocked() bool {
	if p.closed {
		return false
	}
	if p.workersUp {
		return true
	}
	p.workersUp = true
	p.wg.Add(1 + p.cfg.workers)
	go p.reclaimer()
	for range p.cfg.workers {
		go p.prefetcher()
	}
	return true
}

// reclaimer is the background write-back goroutine: when the resident
// bytes pass the midpoint between the low watermark and the limit it
// evicts down to the low watermark, so that writers seldom wait for a
// write-back; it also flushes accumulated deletions.
func (p *Pager) reclaimer() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		}
		p.mu.Lock()
		var err error
		if !p.closed && p.resident > p.mid {
			err = p.reclaimLocked(p.low)
		}
		if err == nil && !p.closed && len(p.deletes)+len(p.readyHeaders) >= flushBacklog {
			err = p.writeBackLocked(nil)
		}
		p.mu.Unlock()
		if err != nil && !errors.Is(err, ErrClosed) {
			p.cfg.logger.Warn("paging: background write-back failed", "err", err)
		}
	}
}
