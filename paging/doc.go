// Package paging keeps an agent's State within a RAM budget by paging cold
// values out to disk: a context pager.
//
// # Model
//
// A Pager is a dag.State (and a dag.RangeReader). Wrap creates one over an
// existing State, whose entries move into the pager, and over a page file
// in Options.StoragePath, whose values it indexes. Every value is split
// into pages of Options.PageSizeMB (the last page may be shorter); a page
// is either resident (a byte slice in RAM) or only on disk, as one record
// of a bbolt file, compressed as a standard LZ4 frame with its content
// checksum (the lz4 command decodes it) or stored raw with a CRC-32C when it
// does not compress. The key index (key, size, where the pages are) is
// always in RAM.
//
// The budget, Options.MemoryLimitMB, bounds the resident value bytes:
// pages of all values, dirty or clean, pinned or not, plus page-ins in
// progress. Recency is kept by a golang-lru simplelru list of the evictable
// pages, with second-chance promotion (the CLOCK approximation of LRU): a
// hit sets a referenced bit, and a referenced page reaching the cold end is
// moved back to the front instead of being evicted. When a write or a
// page-in needs room, clean pages at the cold end of the LRU list are
// dropped one at a time; when the cold end is
// dirty, pages are written back (compressed, in batches committed together)
// and dropped down to a low watermark (Options.LowWatermarkPercent, 90 % by
// default), so that the following writes do not each wait for a write-back
// (the hysteresis of Linux zswap). A background reclaimer starts that work
// early, once the resident bytes pass midway between the low watermark and
// the limit. Pinned keys (Options.PinKeys) are never paged out and may take
// at most half of the budget. When Put returns, the resident bytes are
// within the limit; a value larger than the budget streams through it.
//
// Get returns a one-page value without copying. Its hit path takes no lock:
// a table of atomic slots indexed by a hash of the key points at the
// entries whose one page is resident and evictable (or pinned), which
// publish their buffer atomically; a hit loads it, marks the page
// referenced, counts, and allocates nothing. Keys sharing a slot fall back
// to one short critical section and a map lookup. A value of several
// pages is assembled into a new slice. A page that Get returned is never
// reused, so every miss of Get allocates. AppendValue copies a value of any
// size into a buffer the caller owns and reuses, and ReadAt a range of
// one: with them the pager recycles the buffers of the pages it evicts
// (spares, counted in the budget) for its page-ins and for the pages that
// Put and ValueWriter fill, and moving data through a full budget
// allocates little beyond bbolt's own transaction buffers (0.4 bytes per
// byte moved with AppendValue, 0.85 with Get; see "Memory bound"). The
// write-back's buffers of compressed records are kept from one batch to
// the next and count in the budget too (Stats.ScratchBytes); they are let
// go when room is needed and nothing is left to write back.
// ReadAt and dag.NewValueReader read
// only the pages they need; a reader that moves to the next page of a value
// starts asynchronous read-ahead of the following pages (a window of 2 up
// to Options.ReadAheadPages pages, bounded by a quarter of the budget and
// using only room that needs no write-back). Create returns a ValueWriter
// that stores a value of any size page by page; the Pager is a
// dag.ValueCreator, so dag.NewValueWriter writes into it so too.
//
// # Memory bound
//
// The budget bounds the process, not only the cache: by default an open
// pager sets the Go runtime's memory limit (runtime/debug.SetMemoryLimit),
// which is what makes the garbage collector keep the heap, garbage
// included, near the live heap instead of letting it grow to twice that.
// The rule, for every pager of the process together:
//
//   - Each open pager advises a heap of 1.3 × its budget + 8 MiB (below
//     the 1.5 × + 8 MiB promised, for what the collector lets through
//     while it marks). The limit set is the sum of the advice, plus the
//     live heap outside the pagers beyond 8 MiB (measured when the first
//     one opened), plus the runtime's memory that is not heap objects
//     (metadata, stacks, fragmentation; measured at each change), which the
//     Go limit counts. It follows the pagers: raised when one opens or its
//     budget grows (SetMemoryLimit), lowered when one closes or its budget
//     shrinks, restored to what it was when the last one closes.
//   - A limit the pagers did not set is never touched: if GOMEMLIMIT is in
//     the environment (any value, "off" included), if a limit is in force
//     when the first pager opens, or if the program changes the limit the
//     pagers set, the program is in charge from then on.
//   - Options.LeaveGoMemoryLimit opts a pager out.
//
// Within the budget, resident pages, spares and the write-back's record
// buffers leave an allowance free: a quarter of the budget, at most 8 MiB,
// in whole pages (none below 8 pages). It is room for what the collector
// has not reclaimed yet and for what it counts as live while it marks
// (the pages allocated meanwhile, which a reader through Get causes at
// every miss), and gives way only when no page can be evicted. The
// allowance is what keeps the live heap within the budget + 8 MiB when
// the machine is busy and each collection takes longer.
//
// TestMemoryBound and BenchmarkMemory measure it: writing ten times a
// 32 MiB budget in 64 KiB values and reading them back in random order,
// the heap in use peaks at ≤ 1.5 × the budget + 8 MiB and the live heap
// at ≤ the budget + 8 MiB, reading with AppendValue or Get (BENCHMARKS.md). A
// program that keeps much more memory outside the pagers than it had when
// the first one opened should set GOMEMLIMIT itself: the collector would
// otherwise run often to stay under the pagers' limit.
//
// # Memory guard and adaptive executor
//
// Evict(n) pages out about n bytes (what a memory guard calls under
// pressure), ResidentBytes, LastAccess and AccessCount describe the pager
// to it, and SetMemoryLimit / MemoryLimit let an adaptive executor shrink or
// grow the budget at run time.
//
// # Modes and the page file
//
// The page file is StoragePath/pages.db, a bbolt database whose meta bucket
// holds a format mark and a state: "open" while a pager uses it (written
// and synced by Wrap), "clean" after Close (written and synced last). A
// file without the mark is reported with ErrForeignFile and never written.
// A value's header is committed in the same transaction as its last page
// or later, and the pages of the version it replaces are deleted in that
// same transaction, so the file always holds complete values.
//
// In ModeCache (the default) write-backs are not synced; Checkpoint and
// Close (which writes every dirty value back) sync the file once. Before
// bbolt opens an existing file read-write, Wrap walks its structure itself
// with ReadAt (internal/boltcheck): bbolt trusts the file it maps, and a
// damaged one could otherwise make it fault where no recover reaches.
// bbolt keeps two meta pages (the headers that locate the data); when one
// is damaged, a torn write at power loss say, the file is opened on the
// other one, as it was at that transaction, and the damaged page is
// rewritten from it (logged). A file with both damaged, or otherwise
// damaged and not provably a cache file of ours left open, is reported
// with ErrCorrupt, in words naming the file and what to do, and left
// alone. If
// Wrap finds the state "open" (the previous owner crashed or lost power),
// it also verifies the contents: bbolt's consistency check, then orphan
// pages (written
// before their value's header committed) are deleted, and every page of
// every value is decoded and checksummed; values that fail are dropped (and
// logged). If bbolt cannot open the file or its own check fails, the file
// is discarded and a new one created.
//
// In ModeDurable every write-back transaction is committed with fsync (one
// per batch of pages: group commit) and Checkpoint writes every value and
// deletion that completed before it; concurrent Checkpoint calls share
// commits. After a crash, kill -9 included, every key covered by a
// successful Checkpoint reads back intact (or holds a later complete
// value). A file that fails bbolt's check is reported as ErrCorrupt and
// left alone.
//
// Dead space (records of replaced and deleted values) is reused by later
// writes; Compact rewrites the file without it, and Wrap compacts a file of
// 8 MiB or more that is more than half dead. Options.MaxFileBytes caps the
// file (1 GiB by default on 32-bit platforms, where bbolt must map the
// whole file into a 4 GiB address space; 64 GiB on 64-bit ones).
//
// # Errors
//
// Limits are *limit.Error values (errors.Is(err, limit.ErrExceeded); the
// public alias is throttle.LimitError): Kind limit.Memory for pins past
// half the budget, Get of a value larger than the budget and a budget too
// small for the pins; limit.FileSize when the page file is full;
// limit.Disk when the device is full; limit.MessageSize for keys over
// 32767 bytes. A page that fails its checksum gives an error wrapping
// ErrCorrupt that names the key; the pager never returns unverified bytes.
// A file damaged or truncated while open (another program, a card whose
// reads fail under the mapping) makes bbolt panic or fault; the pager
// turns both into errors wrapping ErrCorrupt that name the file. After a
// write transaction has failed that way, later write-backs, Checkpoint and
// Close fail with ErrCorrupt at once, and the file stays open (and locked)
// until the process ends: bbolt's writer lock may still be held.
// When write-back fails the values in RAM stay there: writes that need room
// fail, reads keep working (a page that cannot be cached is read uncached).
//
// # Goroutines and units
//
// Wrap starts no goroutine. The first operation that needs one starts the
// background reclaimer and the read-ahead workers (min(GOMAXPROCS, 4) of
// them); a write-back compresses its pages on up to as many goroutines and
// waits for them. Close stops every goroutine and waits for it. All
// methods are safe for concurrent use.
//
// Options.MemoryLimitMB and PageSizeMB are in MB of 2^20 bytes and may be
// fractional; every other size, in Options, methods and Stats, is in bytes
// (int64, also on 32-bit platforms).
//
// # Page size
//
// The default page, 256 KiB, was chosen by measurement (BenchmarkPageSize,
// 2-core amd64 shared with other work, text-like corpus; median of 3:
// page-in MB/s, write-back MB/s, 64 MiB scan MB/s, peak heap beyond a
// 32 MiB budget):
//
//	page     page-in  write-back  scan   heap overhead
//	64 KiB   2950     690         4390   4.5-5.1 MiB
//	256 KiB  3390     660         5440   5.8-6.4 MiB
//	1 MiB    3190     520         3970   6.3-9.0 MiB
//	4 MiB    2270     190         3550   6.6-11.1 MiB
//	16 MiB   1480     240         -      19.8-22.0 MiB (over the bound, 64 MiB budget)
//
// Page-in speed is about flat up to 1 MiB (LZ4 decoding dominates) and
// drops beyond; scanning gains from 64 KiB to 256 KiB as the fixed cost
// per page (a bbolt lookup, a lock round, a frame header) is amortised,
// and loses beyond; write-back
// loses from 1 MiB on, as a batch holds fewer pages to compress in
// parallel; and what a page costs outside the budget (the record arena,
// the write-back batch, the read amplification of a small ReadAt, the
// granularity of eviction) grows with it. LZ4 matches only within 64 KiB,
// so larger pages do not compress better (ratio 2.23 at 256 KiB, 2.25 at
// 1 MiB).
//
// # Caveats
//
//   - The bytes returned by Get are shared: never modify them. A one-page
//     value's buffer stays valid after it is evicted.
//   - Get of a value of several pages allocates and copies it; Get of a value
//     larger than the budget fails (read it with dag.NewValueReader).
//   - Not counted in the budget: the key index (about 250 bytes plus the key
//     per value), buffers returned by Get and still held by callers, and the
//     working memory of write-back and compression (a few MiB, growing with
//     the page size). TestHeapBound checks that writing ten times a 16 or
//     32 MiB budget keeps the Go heap within 1.10 × the budget + 8 MiB.
//   - The Go memory limit is process-wide: see "Memory bound" for how the
//     pagers share it and when they leave it alone.
//   - Replacing a value needs room in the file for both versions until the
//     new one commits.
//   - Cache mode does not survive power loss by design: a file left "open"
//     is verified and what fails is dropped.
//   - Close in cache mode writes every dirty value back; if that fails (disk
//     full) the values only in RAM are lost. Call Checkpoint first when they
//     matter.
//   - ReadAt and readers from dag.NewValueReader do not snapshot the value: a
//     concurrent Put may be observed part-way through.
//   - On 32-bit platforms Compact needs address space for the old and the new
//     file at once.
//   - LastAccess is stamped lazily (the hit path reads no clock): its
//     resolution is the interval between LastAccess calls.
package paging
