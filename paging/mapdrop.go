package paging

import (
	bolt "go.etcd.io/bbolt"
)

// The page file is memory-mapped by bbolt, and every page read from it
// maps the file's pages into the process: left alone, the resident set
// grows with the file (a 1 GiB page file read back end to end adds 1 GiB
// of file pages to it), although none of them is counted in the budget.
// After every dropAfter bytes read, written or freed, the store tells the
// kernel it no longer needs the mapped pages (MADV_DONTNEED): they leave
// the resident set and stay in the page cache, from which the next access
// maps them again. A transaction that frees many records is split
// (deleteGroup), since its commit maps them too.

// dropAfter is how many bytes the store reads (writes, frees) between two
// drops of its mapped pages: an eighth of the budget in force (it follows
// SetMemoryLimit), at least 1 MiB.
func dropAfter(budget int64) int64 { return max(budget/8, 1<<20) }

// touched counts n bytes read (or written) through the mapping and drops
// the mapped pages once dropAfter bytes were counted since the last drop.
// tx is the caller's transaction, before its commit: while a read
// transaction is open, or a write transaction has not begun to commit,
// bbolt does not remap the file.
func (s *store) touched(tx *bolt.Tx, n int64) {
	every := s.dropEvery.Load()
	if every <= 0 || s.sinceDrop.Add(n) < every {
		return
	}
	s.sinceDrop.Store(0)
	dropMapped(tx.DB().Info().Data, tx.Size())
}

// dropNow drops the mapped pages at once.
func (s *store) dropNow() {
	if s.dropEvery.Load() <= 0 {
		return
	}
	s.view(func(tx *bolt.Tx) error {
		s.sinceDrop.Store(0)
		dropMapped(tx.DB().Info().Data, tx.Size())
		return nil
	})
}

// faultAround is about how much of the file the kernel maps when bbolt
// reads the header of a record (/proc/sys/vm/fault_around_bytes, 64 KiB
// by default).
const faultAround = 64 << 10

// deleteGroup is how many of deletes one transaction applies. Committing a
// transaction that frees records reads the header of each, and maps the
// file around it, with no chance to drop the mapping before the commit
// ends: a transaction frees about dropEvery / faultAround records, at
// least one delete's.
func (s *store) deleteGroup(deletes []delRec) int {
	every := s.dropEvery.Load()
	if every <= 0 {
		return len(deletes)
	}
	var mapped int64
	for i, d := range deletes {
		for _, ref := range d.blobs {
			mapped += ref.pages * faultAround
		}
		if mapped > every && i > 0 {
			return i
		}
	}
	return len(deletes)
}
