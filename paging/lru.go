package paging

// lruAddLocked puts a resident, unpinned page at the front of the LRU
// list. p.mu must be held (as for every ...Locked method and the list and
// dirty-list helpers below).
func (p *Pager) lruAddLocked(pg *page) {
	if pg.flags&fInLRU == 0 && !pg.e.pinned {
		p.lru.Add(pg, struct{}{})
		pg.flags |= fInLRU
		pg.flags &^= fReferenced
		p.lruLen++
		p.hotSyncPageLocked(pg)
	}
}

// lruRemoveLocked takes pg out of the LRU list.
func (p *Pager) lruRemoveLocked(pg *page) {
	if pg.flags&fInLRU != 0 {
		p.lru.Remove(pg)
		pg.flags &^= fInLRU | fReferenced
		p.lruLen--
		p.hotSyncPageLocked(pg)
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
		// Both halves of the referenced bit are read and cleared.
		if hot := p.hotReferencedLocked(pg); pg.flags&fReferenced == 0 && !hot {
			return pg
		}
		pg.flags &^= fReferenced
		p.lru.Get(pg) // to the front
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
