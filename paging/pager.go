package paging

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/cemaf-go/cemaf/dag"
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

	// mu guards every field below and every entry and page. The fields
	// the hit path of Get touches come first, next to it.
	mu     sync.Mutex
	index  map[string]*entry
	closed bool
	// getHits counts Get calls served by the locked hit path; they are
	// accesses and page hits (see hits and accesses).
	getHits uint64
	// hot is the lock-free index of the hit path (hot.go), set by Wrap;
	// hotHits counts the Get calls it served.
	hot     hotTable
	hotHits atomic.Uint64
	cond    *sync.Cond // broadcast when a write-back, page-in or read-ahead ends

	// lru orders the resident pages that may be evicted (not pinned, not
	// loading, not claimed for eviction) by recency. It has no entry limit
	// of its own: eviction is by bytes, driven by the budget. A hit does
	// not reorder it; it sets the page's fReferenced bit, and lruOldest
	// gives referenced pages a second chance by moving them to the front
	// (the CLOCK approximation of LRU); lock-free hits set the same bit in
	// the entry's hotBits. This keeps the hit path to a lookup and a
	// flag.
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
	// fill is the budget less its garbage allowance (garbageAllowance):
	// what resident pages, spares and scratch fill.
	fill       int64
	batchBytes int64 // target size of one write-back batch
	resident   int64 // bytes of resident pages plus page-in reservations
	evicting   int64 // resident bytes claimed for eviction, not yet dropped
	loading    int64 // bytes reserved by page-ins in progress
	filling    int64 // bytes reserved by Puts copying a page outside the lock
	// spares are buffers of pages that left RAM, kept for reuse and
	// counted in the budget (spares.go): spareBytes in spareCount buffers.
	spares     map[int64][][]byte
	spareBytes int64
	spareCount int64
	// scratchBytes are the encoders' record arenas (codec.go), counted in
	// the budget; encoding is set while a batch (built, not completed)
	// uses them.
	scratchBytes  int64
	encoding      bool
	dirtyBytes    int64
	dirtyPages    int64
	residentPages int64
	pinned        int64 // bytes of visible pinned values
	pinPending    int64 // bytes of pinned values being written
	size          int64 // sum of visible value sizes
	seq           uint64
	nextBlob      uint64

	lastAccess time.Time
	stampedSeq uint64 // accessesLocked() when lastAccess was taken
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

// counters are the cumulative event counts reported by Stats. Get's hit
// path counts in Pager.getHits instead of accesses and hits.
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
	_ dag.State        = (*Pager)(nil)
	_ dag.RangeReader  = (*Pager)(nil)
	_ dag.ValueCreator = (*Pager)(nil)
)

// errGone is returned internally when the entry being read was replaced or
// deleted meanwhile; callers look the key up again.
var errGone = errors.New("paging: entry replaced")

// accessesLocked is the number of accesses so far.
func (p *Pager) accessesLocked() uint64 { return p.c.accesses + p.getHits + p.hotHits.Load() }

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
	p.dropSparesLocked(0)
	p.mu.Unlock()
	p.adviseGoLimit()
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
