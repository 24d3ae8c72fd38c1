package paging

// Spares are the buffers of pages that left RAM (evicted clean, or
// released when their value was replaced or deleted) and that nobody else
// can see: never returned by Get, not being copied by a reader, not being
// compressed by a write-back. They are kept, counted in the budget, for
// the next page of the same length that a Put, a ValueWriter or a page-in
// needs, so that a pager moving data through a full budget allocates
// almost nothing. A reservation that finds no spare of its length drops
// spares (to the garbage collector) before it evicts anything; Evict and a
// shrinking SetMemoryLimit drop them all.
//
// spares, spareBytes and spareCount are guarded by Pager.mu.

// recycleLocked keeps buf (the buffer of a page leaving RAM, of the
// page's exact length) as a spare if nobody else can see it; fl are the
// page's flags and readers its reader count.
func (p *Pager) recycleLocked(buf []byte, fl pageFlags, readers int32) {
	n := int64(len(buf))
	if n == 0 || int64(cap(buf)) != n || fl&(fExposed|fInflight) != 0 || readers != 0 {
		return
	}
	if p.usedLocked()+n > p.fill {
		return
	}
	if p.spares == nil {
		p.spares = make(map[int64][][]byte)
	}
	p.spares[n] = append(p.spares[n], buf)
	p.spareBytes += n
	p.spareCount++
}

// takeSpareLocked returns a spare of n bytes, or nil; the caller accounts
// the n bytes as resident.
func (p *Pager) takeSpareLocked(n int64) []byte {
	l := p.spares[n]
	if len(l) == 0 {
		return nil
	}
	buf := l[len(l)-1]
	l[len(l)-1] = nil
	if len(l) == 1 {
		delete(p.spares, n)
	} else {
		p.spares[n] = l[:len(l)-1]
	}
	p.spareBytes -= n
	p.spareCount--
	return buf
}

// dropSparesLocked drops spares until at most keep bytes of them are
// left.
func (p *Pager) dropSparesLocked(keep int64) {
	for n, l := range p.spares {
		for len(l) > 0 && p.spareBytes > keep {
			l[len(l)-1] = nil
			l = l[:len(l)-1]
			p.spareBytes -= n
			p.spareCount--
		}
		if len(l) == 0 {
			delete(p.spares, n)
		} else {
			p.spares[n] = l
		}
		if p.spareBytes <= keep {
			return
		}
	}
}
