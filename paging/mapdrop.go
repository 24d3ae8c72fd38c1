package paging

import (
	bolt "go.etcd.io/bbolt"
)

// The page file is memory-mapped by bbolt, and every page read from it
// maps the file's pages into the process: left alone, the resident set
// grows with the file (a 1 GiB page file read back end to end adds 1 GiB
// of file pages to it), although none of them is counted in the budget.
// After every dropAfter bytes read, the store tells the kernel it no longer
// needs the mapped pages (MADV_DONTNEED): they leave the resident set and
// stay in the page cache, from which the next access maps them again.

// dropAfter is how many bytes the store reads from the file between two
// drops of its mapped pages: an eighth of the budget, at least 1 MiB.
func dropAfter(budget int64) int64 { return max(budget/8, 1<<20) }

// touched counts n bytes read (or written) through the mapping and drops
// the mapped pages once dropAfter bytes were counted since the last drop.
// tx is the caller's transaction, before its commit: while a read
// transaction is open, or a write transaction has not begun to commit,
// bbolt does not remap the file.
func (s *store) touched(tx *bolt.Tx, n int) {
	if s.dropEvery <= 0 || s.sinceDrop.Add(int64(n)) < s.dropEvery {
		return
	}
	s.sinceDrop.Store(0)
	dropMapped(tx.DB().Info().Data, tx.Size())
}
