package paging

// raRequest asks a read-ahead worker to page in page idx of e.
type raRequest struct {
	e   *entry
	idx int64
}

// readAheadLocked notes an access to page i of e and, when the access
// continues a sequential run, schedules the next pages. The window starts
// at 2 pages and doubles with each sequential page up to the configured
// maximum, bounded so that read-ahead never takes more than a quarter of
// the unpinned budget.
func (p *Pager) readAheadLocked(e *entry, i int64) {
	if p.cfg.readAhead == 0 {
		return
	}
	ra := &e.ra
	switch {
	case i == ra.last:
		return
	case i == ra.last+1:
		ra.window = min(max(2, 2*ra.window), int64(p.cfg.readAhead))
	default:
		ra.window = 0
		ra.ahead = i
	}
	ra.last = i
	if ra.window == 0 {
		return
	}
	budget := max(1, (p.limit-p.pinned)/(4*e.psize))
	end := min(i+min(ra.window, budget), e.npages()-1)
	for j := max(ra.ahead+1, i+1); j <= end; j++ {
		pg := e.page(j)
		if pg.buf != nil || pg.load != nil || pg.flags&fRAQueued != 0 {
			continue
		}
		if !p.startWorkersLocked() {
			return
		}
		select {
		case p.raCh <- raRequest{e: e, idx: j}:
			pg.flags |= fRAQueued
			p.raPending++
		default:
			// Workers are saturated: stop here and retry on the next access.
			return
		}
		ra.ahead = j
	}
	ra.ahead = max(ra.ahead, end)
}

// prefetcher is a read-ahead worker: it pages in requested pages when the
// budget has room that needs no write-back.
func (p *Pager) prefetcher() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case req := <-p.raCh:
			p.prefetch(req.e, req.idx)
		}
	}
}

// prefetch pages in page i of e for read-ahead, if it is still wanted.
func (p *Pager) prefetch(e *entry, i int64) {
	p.mu.Lock()
	defer func() {
		p.raPending--
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	pg := e.page(i)
	pg.flags &^= fRAQueued
	if p.closed || e.state == stateDead || pg.buf != nil || pg.load != nil {
		return
	}
	n := e.pageLen(i)
	var spare []byte
	if !p.reserveCleanLocked(n, &spare) {
		return
	}
	p.c.prefetchIssued++
	if _, err := p.loadLocked(pg, n, true, spare); err != nil {
		p.cfg.logger.Debug("paging: read-ahead failed", "key", shortKey(e.key), "page", i, "err", err)
	}
}
