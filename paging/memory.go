package paging

import (
	"fmt"
	"time"

	"github.com/cemaf-go/cemaf/limit"
)

// garbageAllowance is the part of a budget that the pager leaves free of
// pages, spares and scratch: room for what the garbage collector has not
// reclaimed yet (the buffers of pages that left RAM, the copies Put makes)
// and for what it counts as live while it marks (what is allocated
// meanwhile), so that the budget bounds the live heap and not only the
// cache: a quarter of the budget, at most 8 MiB, in whole pages (none for
// a budget of fewer than 8 pages).
//
// A quarter, not less: a reader through Get allocates a page at every
// miss, and on a busy machine a collection's mark phase lasts long enough
// for those pages to count live (a 32 MiB budget read back with Get beside
// stress-ng or other tests: peak live heap 38.5–40.9 MiB with an eighth,
// 29.8–37.8 with a quarter, against the 40 MiB bound).
func garbageAllowance(limit, pageSize int64) int64 {
	if limit < 8*pageSize {
		return 0
	}
	return min(limit/4, 8<<20) / pageSize * pageSize
}

// usedLocked is what fills the budget: resident pages, spares and the
// write-back scratch. Called with p.mu held.
func (p *Pager) usedLocked() int64 { return p.resident + p.spareBytes + p.scratchBytes }

// reserveCheapLocked reserves n bytes if that takes no eviction: a spare
// of n bytes (handed over in *spare when spare is not nil), room left
// within p.fill, or room made by dropping spares and an idle scratch. It
// is the first step of reserveLocked and reserveCleanLocked. Called with
// p.mu held.
func (p *Pager) reserveCheapLocked(n int64, spare *[]byte) bool {
	for {
		if spare != nil && *spare == nil {
			if buf := p.takeSpareLocked(n); buf != nil {
				*spare = buf
				p.resident += n
				return true
			}
		}
		if p.usedLocked()+n <= p.fill {
			p.resident += n
			return true
		}
		switch {
		case p.spareBytes > 0:
			p.dropSparesLocked(max(0, p.fill-p.resident-p.scratchBytes-n))
		case p.scratchIdleLocked():
			p.dropScratchLocked()
		default:
			return false
		}
	}
}

// reserveLocked accounts n more resident bytes, first making room when the
// budget would be exceeded. The budget bounds resident pages plus spares
// (spares.go) and the write-back scratch (scratchBytes). If spare is not
// nil and a spare of n bytes exists, it is handed over in *spare and its
// bytes become the reservation. Otherwise, when there is no room, spares
// are dropped first, then the scratch when nothing is left to write back
// (reserveCheapLocked), then clean pages at the cold end of the LRU
// (dropping costs nothing) one at a time, just enough; when the cold end
// is dirty, pages are written back and dropped, least recently used
// first, down to the low watermark, so that the next writes do not each
// wait for a write-back (the zswap hysteresis); their buffers become
// spares for those writes. Called and returns with p.mu
// held; it releases p.mu while writing back or waiting. All of them fill
// the budget less its garbage allowance (p.fill); the scratch in use and
// the allowance give way only when no page can be evicted.
func (p *Pager) reserveLocked(n int64, spare *[]byte) error {
	for {
		if p.closed {
			return ErrClosed
		}
		if p.reserveCheapLocked(n, spare) {
			return nil
		}
		if pg := p.lruOldest(); pg != nil && pg.flags&fDirty == 0 {
			// Dropping a clean page costs nothing: drop just enough.
			p.lruRemoveLocked(pg)
			p.evictCleanLocked(pg)
			continue
		}
		// A write-back is needed: go down to the low watermark so that
		// the next writes do not each wait for one.
		victims := p.selectVictimsLocked(p.low - n)
		if len(victims) > 0 {
			if err := p.writeBackLocked(victims); err != nil {
				return err
			}
			continue
		}
		if p.resident+p.spareBytes+n <= p.limit {
			// Only the write-back scratch or the garbage allowance is in
			// the way: they yield to pages when nothing else can be
			// evicted.
			p.resident += n
			return nil
		}
		if p.spareBytes > 0 {
			continue
		}
		if p.evicting > 0 || p.loading > 0 || p.filling > 0 {
			// Others' write-backs, page-ins or writes will free or
			// settle bytes.
			p.cond.Wait()
			continue
		}
		return &limit.Error{Kind: limit.Memory, Subject: "pager", Current: float64(p.resident + n), Limit: float64(p.limit),
			Unit: "bytes", Detail: fmt.Sprintf("no evictable page: %d bytes pinned", p.pinned+p.pinPending)}
	}
}

// unreserveLocked returns a reservation that was not used.
func (p *Pager) unreserveLocked(n int64) {
	p.resident -= n
	p.cond.Broadcast()
}

// reserveCleanLocked reserves n bytes if that needs at most dropping
// spares and clean pages from the cold end of the LRU (no write-back): the
// rule for read-ahead and prefetch. spare is as for reserveLocked.
func (p *Pager) reserveCleanLocked(n int64, spare *[]byte) bool {
	for {
		if p.reserveCheapLocked(n, spare) {
			return true
		}
		pg := p.lruOldest()
		if pg == nil || pg.flags&fDirty != 0 {
			if pg != nil {
				p.wakeReclaimerLocked()
			}
			return false
		}
		p.lruRemoveLocked(pg)
		p.evictCleanLocked(pg)
	}
}

// selectVictimsLocked takes pages from the cold end of the LRU until the
// resident bytes not already being evicted are at most target. Clean
// pages are dropped at once; dirty ones are claimed for write-back
// (returned, at most about one batch) and dropped when it commits.
func (p *Pager) selectVictimsLocked(target int64) []*page {
	var victims []*page
	var claimed int64
	for p.resident-p.evicting > target && claimed < p.batchBytes {
		pg := p.lruOldest()
		if pg == nil {
			break
		}
		p.lruRemoveLocked(pg)
		if pg.flags&fDirty == 0 {
			p.evictCleanLocked(pg)
			continue
		}
		size := int64(len(pg.buf))
		pg.flags |= fEvictOnClean
		p.evicting += size
		if pg.flags&fInflight == 0 {
			pg.flags |= fInflight
			pg.e.touchedDisk = true
			victims = append(victims, pg)
			claimed += size
		}
	}
	return victims
}

// evictCleanLocked drops a clean resident page that is not in the LRU; its
// buffer becomes a spare when nobody else can see it.
func (p *Pager) evictCleanLocked(pg *page) {
	fl := p.hotDropLocked(pg)
	n := int64(len(pg.buf))
	p.resident -= n
	p.residentPages--
	if pg.flags&fEvictOnClean != 0 {
		p.evicting -= n
	}
	if pg.flags&fPrefetched != 0 {
		p.c.prefetchWasted++
	}
	p.recycleLocked(pg.buf, fl, pg.readers)
	pg.flags &^= fEvictOnClean | fPrefetched | fExposed
	pg.buf = nil
	p.c.evictions++
}

// reclaimLocked evicts until the resident bytes are at most target.
// Called and returns with p.mu held.
func (p *Pager) reclaimLocked(target int64) error {
	for p.resident > target {
		victims := p.selectVictimsLocked(target)
		if len(victims) > 0 {
			if err := p.writeBackLocked(victims); err != nil {
				return err
			}
			continue
		}
		if p.resident <= target {
			break
		}
		if p.evicting > 0 || p.loading > 0 {
			p.cond.Wait()
			continue
		}
		break
	}
	return nil
}

// Evict pages out about n bytes, least recently used first, writing dirty
// pages back, and returns how many bytes were freed (resident pages and
// the spare buffers kept for reuse, which it drops all; it also lets go
// of the write-back's record buffers unless a write-back uses them, which
// freed does not count). It does not change the memory limit: later writes may fill the budget again. Pinned
// values are never evicted, so freed may be less than n. Evict blocks for
// the write-back; the error is a write failure (then freed counts what was
// freed before it). This is the method a memory guard calls under pressure.
func (p *Pager) Evict(n int64) (freed int64, err error) {
	if n <= 0 {
		return 0, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, ErrClosed
	}
	before := p.resident + p.spareBytes
	err = p.reclaimLocked(max(0, p.resident-n))
	p.dropSparesLocked(0)
	p.dropScratchLocked()
	return max(0, before-p.resident-p.spareBytes), err
}

// SetMemoryLimit changes the budget to bytes. When it shrinks, it evicts
// synchronously down to the new low watermark before returning, writing
// dirty pages back. It fails with a *limit.Error (Kind limit.Memory) when
// bytes is below four pages or below twice the pinned bytes (the limit is
// then unchanged), and with the write-back error when dirty pages cannot be
// written (the new limit is then in force but the pager still holds more:
// writes that need room fail until a write-back succeeds). Safe for
// concurrent use; blocks for the write-back.
func (p *Pager) SetMemoryLimit(bytes int64) error {
	err := p.setMemoryLimit(bytes)
	p.adviseGoLimit()
	return err
}

func (p *Pager) setMemoryLimit(bytes int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if is32Bit && bytes > 1<<30 {
		return &limit.Error{Kind: limit.Memory, Subject: "pager memory limit", Current: float64(bytes), Limit: 1 << 30,
			Unit: "bytes", Detail: "at most 1 GiB on 32-bit platforms"}
	}
	if minimum := max(4*p.cfg.pageSize, 2*(p.pinned+p.pinPending)); bytes < minimum {
		return &limit.Error{Kind: limit.Memory, Subject: "pager memory limit", Current: float64(minimum), Limit: float64(bytes),
			Unit: "bytes", Detail: "the limit must hold four pages and twice the pinned bytes"}
	}
	shrink := bytes < p.limit
	p.setLimitLocked(bytes)
	if !shrink {
		return nil
	}
	// Spares are dropped too: a smaller budget is a request for memory.
	p.dropSparesLocked(0)
	defer p.dropSparesLocked(0)
	if p.resident <= p.fill {
		return nil
	}
	if err := p.reclaimLocked(p.low); err != nil {
		return fmt.Errorf("paging: set memory limit: %w", err)
	}
	return nil
}

// Durable reports whether the pager runs in ModeDurable: whether a nil
// Checkpoint makes the values written before it survive a crash. The
// executor's checkpoint store relies on it to leave the values of a run in
// the pager instead of copying them.
func (p *Pager) Durable() bool { return p.cfg.mode == ModeDurable }

// MemoryLimit returns the current budget in bytes.
func (p *Pager) MemoryLimit() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limit
}

// ResidentBytes returns the value bytes held in RAM now (plus page-ins in
// progress). It never exceeds MemoryLimit once a Put has returned.
func (p *Pager) ResidentBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resident
}

// AccessCount returns the number of Get, ReadAt, Put and Delete calls so
// far.
func (p *Pager) AccessCount() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accessesLocked()
}

// LastAccess returns when the pager was last accessed. To keep the hit path
// free of clock reads, accesses are stamped lazily: the result is the time
// of the first LastAccess call that observed the latest access (or of Wrap
// when there was none), so its resolution is the caller's polling interval.
func (p *Pager) LastAccess() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.accessesLocked(); n != p.stampedSeq {
		p.stampedSeq = n
		p.lastAccess = time.Now()
	}
	return p.lastAccess
}
