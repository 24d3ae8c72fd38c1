package paging

import "sync/atomic"

// pageFlags record the state of one page. All are guarded by Pager.mu.
type pageFlags uint16

const (
	// fDirty: the resident bytes are not yet committed to the page file
	// under the entry's blob.
	fDirty pageFlags = 1 << iota
	// fOnDisk: the page's record is committed under the entry's blob.
	fOnDisk
	// fInflight: the page is claimed by a write-back batch.
	fInflight
	// fEvictOnClean: drop the page as soon as its write-back commits.
	fEvictOnClean
	// fInLRU: the page is in the Pager's LRU list (resident, evictable).
	fInLRU
	// fPrefetched: paged in by read-ahead and not accessed since.
	fPrefetched
	// fRAQueued: a read-ahead request for the page is queued.
	fRAQueued
	// fExposed: Get returned the buffer itself; it is never recycled.
	fExposed
	// fReferenced: accessed since it was last moved to the front of the
	// LRU list (second-chance promotion).
	fReferenced
)

// page is one chunk of a value: page idx covers bytes
// [idx*psize, min((idx+1)*psize, size)) of its entry. A page's bytes never
// change once it exists (a Put makes new pages), and a buffer handed out by
// Get is never reused (fExposed), so it stays valid after eviction; other
// buffers may be recycled as spares once the page leaves RAM.
//
// buf and flags come first: with entry.size and psize before p0 they put
// what the hit path of Get reads in one cache line.
type page struct {
	buf   []byte // resident bytes; nil when not resident
	flags pageFlags
	// readers counts ReadAt calls copying from buf outside the lock; the
	// buffer is not recycled while it is non-zero.
	readers int32
	// stored is the length of the page's record in the file (for Stats).
	stored int32
	e      *entry
	load   *loadWait // non-nil while a page-in is in progress
	dprev  *page     // dirty list links
	dnext  *page
	seq    uint64 // sequence number at which the page became dirty
	idx    int64
}

// loadWait lets readers of a page wait for a page-in started by someone
// else; done is closed when the load ends (successfully or not).
type loadWait struct {
	done chan struct{}
	err  error
}

// entryState is the lifecycle of an entry: pending (being written by Put
// or a ValueWriter, not yet visible), visible (in the index), dead
// (replaced, deleted or aborted; its resident pages have been released).
type entryState uint8

const (
	statePending entryState = iota
	stateVisible
	stateDead
)

// blobRef names a blob whose records are to be deleted, with what it holds
// on disk (for Stats).
type blobRef struct {
	id      uint64
	pages   int64
	logical int64
	stored  int64
}

// entry is one version of one key's value.
type entry struct {
	size  int64
	psize int64
	p0    page
	// hotBuf is page 0's buffer while the entry is hot (hot.go); hotBits
	// are what lock-free readers mark; hslot is the entry's slot in the
	// hot table.
	hotBuf  atomic.Pointer[[]byte]
	hotBits atomic.Uint32
	hslot   uint32
	key     string
	blob    uint64
	// seq is the sequence number at which the entry became visible.
	seq  uint64
	rest []*page // pages 1..n-1
	// obsolete lists blobs whose records die when this entry's header
	// commits (the versions it replaced).
	obsolete []blobRef
	ndirty   int64 // dirty pages, including those in flight
	// batchCount counts this entry's pages in the batch being built.
	batchCount int64
	state      entryState
	pinned     bool
	// headerDirty: the header must still be written; headerOnDisk: a
	// header for this blob is committed; touchedDisk: some page of this
	// blob may have reached the file; ready: queued in readyHeaders.
	headerDirty  bool
	headerOnDisk bool
	touchedDisk  bool
	ready        bool
	ra           readAhead
}

// readAhead tracks sequential access to an entry's pages.
type readAhead struct {
	last   int64 // last page accessed; -1 before the first access
	window int64 // current window, in pages
	ahead  int64 // highest page scheduled
}

func newEntry(key string, size, psize int64) *entry {
	e := &entry{key: key, size: size, psize: psize}
	e.p0.e = e
	e.ra.last = -1
	n := e.npages()
	if n > 1 {
		e.rest = make([]*page, n-1)
		for i := range e.rest {
			e.rest[i] = &page{e: e, idx: int64(i + 1)}
		}
	}
	return e
}

// npages is the number of pages of the entry (0 for an empty value).
func (e *entry) npages() int64 {
	if e.size == 0 {
		return 0
	}
	return (e.size + e.psize - 1) / e.psize
}

func (e *entry) page(i int64) *page {
	if i == 0 {
		return &e.p0
	}
	return e.rest[i-1]
}

// pageLen is the length of page i.
func (e *entry) pageLen(i int64) int64 {
	return min(e.psize, e.size-i*e.psize)
}

// shortKey abbreviates long keys in error messages.
func shortKey(key string) string {
	if len(key) <= 64 {
		return key
	}
	return key[:61] + "..."
}
