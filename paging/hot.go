package paging

import (
	"hash/maphash"
	"sync/atomic"
)

// The hit path of Get takes no lock for a resident one-page value: a small
// table of atomic slots, indexed by a hash of the key, points at entries
// whose page 0 is "hot": visible, of one page, resident, evictable or
// pinned, and neither prefetched-unread nor claimed for eviction. Such an
// entry publishes its buffer in hotBuf (set and cleared under Pager.mu by
// hotSyncLocked); a reader loads it, marks the entry referenced and exposed
// (hotBits, the lock-free half of fReferenced and fExposed), and loads it
// again: if it changed, the page was leaving RAM and the reader takes the
// locked path instead. A page leaving RAM clears hotBuf first and reads
// hotBits afterwards (hotDropLocked), so a buffer a reader returned is
// never recycled. Keys that share a slot, or whose page is not hot, take
// the locked path, which publishes them.

// hotBits of an entry.
const (
	hotReferenced uint32 = 1 << iota
	hotExposed
)

// Slot table size: a power of two between minHotSlots and maxHotSlots,
// about one slot per 4 KiB of budget.
const (
	minHotSlots = 1 << 10
	maxHotSlots = 1 << 14
)

// hotTable is the lock-free index of hot entries. It is created by Wrap
// and never resized.
type hotTable struct {
	seed  maphash.Seed
	mask  uint64
	slots []atomic.Pointer[entry]
}

func newHotTable(limit int64) hotTable {
	n := uint64(minHotSlots)
	for n < maxHotSlots && int64(n)*4096 < limit {
		n *= 2
	}
	return hotTable{seed: maphash.MakeSeed(), mask: n - 1, slots: make([]atomic.Pointer[entry], n)}
}

func (h *hotTable) slotOf(key string) uint32 { return uint32(maphash.String(h.seed, key) & h.mask) }

// lookup returns the entry of key in its slot, if it is there.
func (h *hotTable) lookup(key string) *entry {
	if e := h.slots[maphash.String(h.seed, key)&h.mask].Load(); e != nil && e.key == key {
		return e
	}
	return nil
}

// getHot is the lock-free hit path: key's value if its entry is hot.
func (p *Pager) getHot(key string) ([]byte, bool) {
	e := p.hot.lookup(key)
	if e == nil {
		return nil, false
	}
	b := e.hotBuf.Load()
	if b == nil {
		return nil, false
	}
	const bits = hotReferenced | hotExposed
	if e.hotBits.Load()&bits != bits {
		e.hotBits.Or(bits)
	}
	if e.hotBuf.Load() != b {
		return nil, false
	}
	p.hotHits.Add(1)
	return *b, true
}

// hotSyncLocked publishes or withdraws the buffer of e's page 0 according
// to whether it is hot. p.mu must be held.
func (p *Pager) hotSyncLocked(e *entry) {
	pg := &e.p0
	hot := e.state == stateVisible && e.size > 0 && e.size <= e.psize && pg.buf != nil &&
		pg.flags&(fPrefetched|fEvictOnClean) == 0 && (pg.flags&fInLRU != 0 || e.pinned)
	cur := e.hotBuf.Load()
	if !hot {
		if cur != nil {
			e.hotBuf.Store(nil)
		}
		return
	}
	if cur == nil || &(*cur)[0] != &pg.buf[0] {
		b := pg.buf
		e.hotBuf.Store(&b)
	}
	if s := &p.hot.slots[e.hslot]; s.Load() != e {
		s.Store(e)
	}
}

// hotSyncPageLocked is hotSyncLocked for the entry of pg if pg is a page 0.
func (p *Pager) hotSyncPageLocked(pg *page) {
	if pg.idx == 0 {
		p.hotSyncLocked(pg.e)
	}
}

// hotDropLocked withdraws pg's buffer from the hit path before the page
// leaves RAM and returns pg's flags with fExposed and fReferenced set as
// lock-free readers set them; it clears those readers' bits. p.mu must be
// held.
func (p *Pager) hotDropLocked(pg *page) pageFlags {
	fl := pg.flags
	if pg.idx != 0 {
		return fl
	}
	e := pg.e
	if e.hotBuf.Load() != nil {
		e.hotBuf.Store(nil)
	}
	if bits := e.hotBits.Load(); bits != 0 {
		if bits&hotExposed != 0 {
			fl |= fExposed
		}
		if bits&hotReferenced != 0 {
			fl |= fReferenced
		}
		e.hotBits.Store(0)
	}
	return fl
}

// hotReferencedLocked reports and clears the referenced bit that lock-free
// readers set on pg (page 0 only).
func (p *Pager) hotReferencedLocked(pg *page) bool {
	if pg.idx != 0 {
		return false
	}
	if pg.e.hotBits.Load()&hotReferenced == 0 {
		return false
	}
	pg.e.hotBits.And(^hotReferenced)
	return true
}
