package paging

import "fmt"

// Stats is a snapshot of a Pager's state and cumulative counters. Byte
// counts are bytes; "logical" bytes are value bytes, "stored" bytes are
// what the page file holds for them after compression.
type Stats struct {
	// Mode is "cache" or "durable".
	Mode string `json:"mode"`
	// Keys is the number of values; ValueBytes their total size.
	Keys       int64 `json:"keys"`
	ValueBytes int64 `json:"value_bytes"`

	// MemoryLimitBytes is the budget; BytesInMemory the resident value
	// bytes (plus page-ins in progress), never above the budget once a
	// Put has returned.
	MemoryLimitBytes int64 `json:"memory_limit_bytes"`
	PagesInMemory    int64 `json:"pages_in_memory"`
	BytesInMemory    int64 `json:"bytes_in_memory"`
	// SpareBytes are buffers of pages that left RAM, kept for reuse by
	// the next pages of the same length; they count in the budget:
	// BytesInMemory + SpareBytes <= MemoryLimitBytes.
	SpareBytes int64 `json:"spare_bytes"`
	// ScratchBytes are the write-back encoders' buffers of compressed
	// records, kept from one batch to the next. They count in the budget
	// as far as clean pages can make room for them, and are released when
	// room is needed and no dirty page is left to write.
	ScratchBytes int64 `json:"scratch_bytes"`
	DirtyPages   int64 `json:"dirty_pages"`
	DirtyBytes   int64 `json:"dirty_bytes"`
	PinnedBytes  int64 `json:"pinned_bytes"`

	// PagesOnDisk and LogicalBytesOnDisk describe the live page records in
	// the file; StoredBytesOnDisk is their size in the file.
	PagesOnDisk        int64 `json:"pages_on_disk"`
	LogicalBytesOnDisk int64 `json:"logical_bytes_on_disk"`
	StoredBytesOnDisk  int64 `json:"stored_bytes_on_disk"`
	// CompressionRatio is LogicalBytesOnDisk / StoredBytesOnDisk (0 when
	// nothing is on disk).
	CompressionRatio float64 `json:"compression_ratio"`
	// FileBytes is the size of the page file; DeadBytes the part of it
	// that holds no live data (reused by later writes, returned to the
	// file system by Compact).
	FileBytes    int64 `json:"file_bytes"`
	DeadBytes    int64 `json:"dead_bytes"`
	MaxFileBytes int64 `json:"max_file_bytes"`

	// Hits and Misses count page accesses by Get and ReadAt that found the
	// page resident or had to read it from disk; HitRate is
	// Hits/(Hits+Misses).
	Hits    uint64  `json:"hits"`
	Misses  uint64  `json:"misses"`
	HitRate float64 `json:"hit_rate"`
	// Evictions counts pages dropped from RAM; PageIns pages read from
	// disk (misses and read-ahead); PageOuts pages written to disk, which
	// held BytesPagedOut value bytes and took StoredBytesPagedOut bytes in
	// the file (what the storage device has been written, before bbolt's
	// own overhead).
	Evictions           uint64 `json:"evictions"`
	PageIns             uint64 `json:"page_ins"`
	PageOuts            uint64 `json:"page_outs"`
	BytesPagedOut       int64  `json:"bytes_paged_out"`
	StoredBytesPagedOut int64  `json:"stored_bytes_paged_out"`
	// PrefetchIssued counts read-ahead page-ins; PrefetchUsed those read
	// afterwards; PrefetchWasted those evicted or discarded unread.
	PrefetchIssued uint64 `json:"prefetch_issued"`
	PrefetchUsed   uint64 `json:"prefetch_used"`
	PrefetchWasted uint64 `json:"prefetch_wasted"`

	// WriteErrors counts failed write-back transactions; LastError is the
	// latest one ("" if none).
	WriteErrors uint64 `json:"write_errors"`
	LastError   string `json:"last_error,omitempty"`
	Compactions uint64 `json:"compactions"`
	Checkpoints uint64 `json:"checkpoints"`
}

// Stats returns a snapshot. It takes the pager's lock briefly and stats
// the page file; it keeps working after Close (file figures are then 0).
func (p *Pager) Stats() Stats {
	p.mu.Lock()
	s := Stats{
		Mode:                p.cfg.mode.String(),
		Keys:                int64(len(p.index)),
		ValueBytes:          p.size,
		MemoryLimitBytes:    p.limit,
		PagesInMemory:       p.residentPages,
		BytesInMemory:       p.resident,
		SpareBytes:          p.spareBytes,
		ScratchBytes:        p.scratchBytes,
		DirtyPages:          p.dirtyPages,
		DirtyBytes:          p.dirtyBytes,
		PinnedBytes:         p.pinned,
		PagesOnDisk:         p.disk.pages,
		LogicalBytesOnDisk:  p.disk.logical,
		StoredBytesOnDisk:   p.disk.stored,
		MaxFileBytes:        p.cfg.maxFile,
		Hits:                p.c.hits + p.getHits + p.hotHits.Load(),
		Misses:              p.c.misses,
		Evictions:           p.c.evictions,
		PageIns:             p.c.pageIns,
		PageOuts:            p.c.pageOuts,
		BytesPagedOut:       p.c.bytesOut,
		StoredBytesPagedOut: p.c.storedOut,
		PrefetchIssued:      p.c.prefetchIssued,
		PrefetchUsed:        p.c.prefetchUsed,
		PrefetchWasted:      p.c.prefetchWasted,
		WriteErrors:         p.c.writeErrors,
		Compactions:         p.c.compactions,
		Checkpoints:         p.c.checkpoints,
	}
	if p.lastErr != nil {
		s.LastError = p.lastErr.Error()
	}
	closed := p.closed
	p.mu.Unlock()
	if s.Hits+s.Misses > 0 {
		s.HitRate = float64(s.Hits) / float64(s.Hits+s.Misses)
	}
	if s.StoredBytesOnDisk > 0 {
		s.CompressionRatio = float64(s.LogicalBytesOnDisk) / float64(s.StoredBytesOnDisk)
	}
	if !closed {
		s.FileBytes, _ = p.st.fileSize()
		s.DeadBytes = p.st.freeBytes()
	}
	return s
}

// String formats the main figures on one line.
func (s Stats) String() string {
	return fmt.Sprintf("pages in RAM %d (%d B of %d B), on disk %d (%d B stored, ratio %.2f), hit rate %.1f%%, evictions %d, page-ins %d, page-outs %d, prefetch used %d wasted %d, file %d B (%d B dead)",
		s.PagesInMemory, s.BytesInMemory, s.MemoryLimitBytes, s.PagesOnDisk, s.StoredBytesOnDisk, s.CompressionRatio,
		100*s.HitRate, s.Evictions, s.PageIns, s.PageOuts, s.PrefetchUsed, s.PrefetchWasted, s.FileBytes, s.DeadBytes)
}
