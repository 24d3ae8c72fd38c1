// Package boltcheck verifies a bbolt file before it is opened for writing,
// without letting a damaged file crash the process.
//
// bbolt trusts the file it maps: a damaged page can make it panic on a
// goroutine of its own (Tx.Check, the freelist rebuild of NoFreelistSync)
// or read past the end of the mapping, a memory fault that no recover
// catches. Verify therefore reads the file itself, with ReadAt, where a bad
// offset is an error and not a fault: it parses and checksums the meta
// pages, bounds-checks the high-water mark and the freelist, and walks the
// page tree from the root (branch and leaf pages, inline and nested
// buckets), checking every page ID, element, key and value extent, the key
// order, and that no page is reached twice or is both in use and free.
// Values are bounds-checked, not read, so the walk costs about one read per
// page of keys. Only then does it open the file with bbolt, read-only, to
// run the caller's inspect function. A file that passes can be opened
// read-write safely.
//
// The meta layout parsed here is bbolt's version 2 format on little-endian
// machines (amd64, arm64, arm), the only ones the module builds for.
package boltcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Errors of Verify, wrapped with details.
var (
	// ErrNotBolt: the file is not a bbolt file (no valid meta page).
	ErrNotBolt = errors.New("not a bbolt file")
	// ErrDamaged: the file is a bbolt file whose pages are damaged.
	ErrDamaged = errors.New("damaged bbolt file")
	// ErrLocked: another process holds the file open for writing.
	ErrLocked = errors.New("locked by another process")
)

const (
	magic          = 0xED0CDAED
	version        = 2
	pageHeaderSize = 16
	metaOffset     = pageHeaderSize
	metaSumLen     = 56 // meta bytes covered by the checksum
	noFreelist     = ^uint64(0)
	freelistFlag   = 0x10
)

// meta is the part of bbolt's meta page Verify checks.
type meta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages [0, pgid) are in use
	txid     uint64
}

// Verify checks the bbolt file at path, which must exist and be non-empty;
// timeout bounds the wait for a lock held by another process. inspect, if
// not nil, is called within the verified read-only transaction (to check
// the caller's own format marks); its error is returned as is.
func Verify(path string, timeout time.Duration, inspect func(tx *bolt.Tx) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	m, err := readMeta(f, st.Size())
	if err != nil {
		return err
	}
	free, err := checkFreelist(f, st.Size(), m)
	if err != nil {
		return err
	}
	if err := walkTree(f, m, free); err != nil {
		return err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: true})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return ErrLocked
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch):
			return fmt.Errorf("%w: %v", ErrNotBolt, err)
		}
		return fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	defer db.Close()
	return inspectRO(db, inspect)
}

// readMeta returns the valid meta page with the highest transaction ID.
func readMeta(f *os.File, size int64) (meta, error) {
	var best meta
	found := false
	// Meta 0 is at offset 0 and names the page size; meta 1 is at one page
	// size. If meta 0 is damaged, bbolt falls back to the default 4096.
	pageSize := uint32(4096)
	for i := range 2 {
		off := int64(i) * int64(pageSize)
		buf := make([]byte, pageHeaderSize+64)
		if _, err := f.ReadAt(buf, off); err != nil {
			if errors.Is(err, io.EOF) {
				continue
			}
			return meta{}, err
		}
		m, ok := parseMeta(buf)
		if !ok {
			continue
		}
		if i == 0 {
			pageSize = m.pageSize
		}
		if !found || m.txid > best.txid {
			best, found = m, true
		}
	}
	if !found {
		return meta{}, fmt.Errorf("%w: no valid meta page", ErrNotBolt)
	}
	if int64(best.pgid)*int64(best.pageSize) > size {
		return meta{}, fmt.Errorf("%w: the meta page claims %d pages of %d bytes, the file has %d bytes", ErrDamaged, best.pgid, best.pageSize, size)
	}
	return best, nil
}

func parseMeta(buf []byte) (meta, bool) {
	b := buf[metaOffset:]
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != magic || le.Uint32(b[4:]) != version {
		return meta{}, false
	}
	h := fnv.New64a()
	h.Write(b[:metaSumLen])
	if h.Sum64() != le.Uint64(b[metaSumLen:]) {
		return meta{}, false
	}
	m := meta{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), freelist: le.Uint64(b[32:]), pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}
	if m.pageSize < 512 || m.pageSize > 1<<20 || m.pageSize&(m.pageSize-1) != 0 {
		return meta{}, false
	}
	return m, true
}

// checkFreelist bounds-checks the freelist, whose reading bbolt does not
// guard, and returns the free page IDs (with the freelist's own pages).
func checkFreelist(f *os.File, size int64, m meta) (pageSet, error) {
	free := newPageSet(m.pgid)
	if m.freelist == noFreelist {
		return free, nil
	}
	if m.freelist < 2 || m.freelist >= m.pgid {
		return nil, fmt.Errorf("%w: freelist page %d outside [2, %d)", ErrDamaged, m.freelist, m.pgid)
	}
	ps := int64(m.pageSize)
	hdr := make([]byte, pageHeaderSize+8)
	if _, err := f.ReadAt(hdr, int64(m.freelist)*ps); err != nil {
		return nil, fmt.Errorf("%w: freelist page: %v", ErrDamaged, err)
	}
	le := binary.LittleEndian
	flags, count, overflow := le.Uint16(hdr[8:]), uint64(le.Uint16(hdr[10:])), uint64(le.Uint32(hdr[12:]))
	if flags&freelistFlag == 0 {
		return nil, fmt.Errorf("%w: page %d is not a freelist page (flags %#x)", ErrDamaged, m.freelist, flags)
	}
	if m.freelist+overflow >= m.pgid {
		return nil, fmt.Errorf("%w: freelist overflows past page %d", ErrDamaged, m.pgid)
	}
	start := int64(pageHeaderSize)
	if count == 0xFFFF { // the real count is the first element
		count = le.Uint64(hdr[16:])
		start += 8
	}
	end := start + int64(count)*8
	if count > uint64(size/8) || end > int64(overflow+1)*ps {
		return nil, fmt.Errorf("%w: freelist of %d pages does not fit its %d page(s)", ErrDamaged, count, overflow+1)
	}
	ids := make([]byte, end-start)
	if _, err := f.ReadAt(ids, int64(m.freelist)*ps+start); err != nil {
		return nil, fmt.Errorf("%w: freelist: %v", ErrDamaged, err)
	}
	for i := 0; i < len(ids); i += 8 {
		id := le.Uint64(ids[i:])
		if id < 2 || id >= m.pgid {
			return nil, fmt.Errorf("%w: freelist holds page %d outside [2, %d)", ErrDamaged, id, m.pgid)
		}
		free.add(id)
	}
	for id := m.freelist; id <= m.freelist+overflow; id++ {
		free.add(id)
	}
	return free, nil
}

// Inspect opens path read-only and runs inspect in a read-only transaction
// on a goroutine where a memory fault becomes an error, without verifying
// the file first: for reading a few known records of a file that failed
// Verify (its owner's marks, say). A damaged page that inspect reaches
// gives ErrDamaged.
func Inspect(path string, timeout time.Duration, inspect func(tx *bolt.Tx) error) (err error) {
	// Keep the file bbolt opens: if the open itself panics on a damaged
	// meta page, closing it releases the lock.
	var file *os.File
	defer func() {
		if v := recover(); v != nil {
			if file != nil {
				file.Close()
			}
			err = fmt.Errorf("%w: %v", ErrDamaged, v)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: true,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		}})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return ErrLocked
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch):
			return fmt.Errorf("%w: %v", ErrNotBolt, err)
		}
		return fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	defer db.Close()
	return inspectRO(db, inspect)
}

// inspectRO runs inspect in a read-only transaction, on a goroutine where
// a memory fault becomes a panic, and turns panics into ErrDamaged.
func inspectRO(db *bolt.DB, inspect func(tx *bolt.Tx) error) error {
	if inspect == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		debug.SetPanicOnFault(true)
		defer func() {
			if v := recover(); v != nil {
				done <- fmt.Errorf("%w: %v", ErrDamaged, v)
			}
		}()
		done <- db.View(inspect)
	}()
	return <-done
}
