package paging

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cemaf-go/cemaf/disk"
	"github.com/cemaf-go/cemaf/internal/boltcheck"
	bolt "go.etcd.io/bbolt"
)

// compactTxBytes bounds each transaction of a compaction: bbolt buffers a
// transaction's dirty pages in the heap until it commits.
const compactTxBytes = 4 << 20

// compact copies the live data into a new file and swaps it in. The caller
// must keep writers out; readers continue until the swap.
func (s *store) compact() error {
	if s.wedge.Set() {
		return fmt.Errorf("paging: compact: %w", s.corrupt(boltcheck.Wedged)) // closing the file would wait forever
	}
	tmp := s.path + ".compact"
	_ = os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: lockTimeout, FreelistType: bolt.FreelistMapType,
		NoSync: true, MaxSize: int(s.maxFile)})
	if err != nil {
		return fmt.Errorf("paging: compact: %w", err)
	}
	s.mu.RLock()
	if s.db == nil {
		s.mu.RUnlock()
		dst.Close()
		os.Remove(tmp)
		return ErrClosed
	}
	err = s.guard(false, func() error { return bolt.Compact(dst, s.db, compactTxBytes) })
	s.mu.RUnlock()
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("paging: compact: %w", s.writeError(err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("paging: compact: %w", err)
	}
	s.db = nil
	renameErr := os.Rename(tmp, s.path)
	if renameErr == nil {
		renameErr = disk.SyncDir(filepath.Dir(s.path))
	} else {
		os.Remove(tmp)
	}
	var state string
	db, err := boltcheck.Open(s.path, boltcheck.Options{Bolt: s.boltOptions(), Inspect: s.inspect(&state), Logger: s.logger})
	if err != nil {
		return fmt.Errorf("paging: compact: reopen %s: %w", s.path, err)
	}
	s.db = db
	if renameErr != nil {
		return fmt.Errorf("paging: compact: %w", renameErr)
	}
	return nil
}

// Compact rewrites the page file without its dead space (see
// Stats.DeadBytes) and swaps it in. Writers wait for it; readers continue
// until the swap. It needs free disk space for the live data, and on 32-bit
// platforms address space for both files. Wrap compacts automatically when
// more than half of a file of at least 8 MiB is dead.
func (p *Pager) Compact() error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := p.st.compact(); err != nil {
		return err
	}
	p.mu.Lock()
	p.c.compactions++
	p.mu.Unlock()
	return nil
}

// compactAtOpen compacts a file of 8 MiB or more that is over half dead.
func (p *Pager) compactAtOpen() error {
	file, err := p.st.fileSize()
	if err != nil {
		return fmt.Errorf("paging: %w", err)
	}
	free := p.st.freeBytes()
	if file < 8<<20 || free*2 < file {
		return nil
	}
	p.cfg.logger.Info("paging: compacting page file", "path", p.st.path, "file_bytes", file, "dead_bytes", free)
	return p.Compact()
}
