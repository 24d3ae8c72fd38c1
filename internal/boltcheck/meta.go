package boltcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// Layout of bbolt's meta page (internal/common/meta.go), after the page
// header.
const (
	magic          = 0xED0CDAED
	version        = 2
	pageHeaderSize = 16
	metaOffset     = pageHeaderSize
	metaSumLen     = 56 // meta bytes covered by the checksum
	noFreelist     = ^uint64(0)
	freelistFlag   = 0x10
	// Page sizes bbolt accepts, and that Verify accepts.
	minPageSize = 512
	maxPageSize = 1 << 20
)

// meta is the part of bbolt's meta page Verify checks.
type meta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages [0, pgid) are in use
	txid     uint64
}

// metaPages is what readMeta found in the two meta pages.
type metaPages struct {
	best meta // the meta page bbolt will use
	// bestIdx is the index (0 or 1) of best.
	bestIdx int
	// invalid[i] reports that meta page i fails bbolt's own validation
	// (magic, version, checksum), so that bbolt falls back to the other;
	// why[i] says how.
	invalid [2]bool
	why     [2]string
	// badHeader[i] reports that the page header of a valid meta page i
	// does not name it as meta page i: bbolt uses the page, but its
	// consistency check (Tx.Check) panics on it.
	badHeader [2]bool
}

// needsRepair reports whether a meta page must be rewritten for bbolt's
// consistency check to pass, and can be (the other one is sound).
func (mp metaPages) needsRepair() bool {
	return mp.invalid[0] != mp.invalid[1] || mp.badHeader[0] || mp.badHeader[1]
}

// metaStatus is how parseMeta judged a meta page.
type metaStatus int

const (
	metaOK metaStatus = iota
	// metaInvalid: bbolt rejects the page too (magic, version or
	// checksum) and uses the other one.
	metaInvalid
	// metaUnsafe: bbolt would accept the page, but its fields are out of
	// range (page size): the file is damaged.
	metaUnsafe
)

// parseMeta judges the meta page whose first bytes are buf, as bbolt's
// Meta.Validate does, plus range checks of its own.
func parseMeta(buf []byte) (meta, metaStatus, string) {
	if len(buf) < metaOffset+metaSumLen+8 {
		return meta{}, metaInvalid, "too short"
	}
	b := buf[metaOffset:]
	le := binary.LittleEndian
	switch {
	case le.Uint32(b[0:]) != magic:
		return meta{}, metaInvalid, "no bbolt magic number"
	case le.Uint32(b[4:]) != version:
		return meta{}, metaInvalid, fmt.Sprintf("format version %d, not %d", le.Uint32(b[4:]), version)
	}
	h := fnv.New64a()
	h.Write(b[:metaSumLen])
	if h.Sum64() != le.Uint64(b[metaSumLen:]) {
		return meta{}, metaInvalid, "checksum mismatch"
	}
	m := meta{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), freelist: le.Uint64(b[32:]), pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}
	if m.pageSize < minPageSize || m.pageSize > maxPageSize || m.pageSize&(m.pageSize-1) != 0 {
		return meta{}, metaUnsafe, fmt.Sprintf("page size %d", m.pageSize)
	}
	return m, metaOK, ""
}

// metaFlag is the page type of a meta page.
const metaFlag = 0x04

// readMetaAt reads and judges the meta page at offset off; a page cut
// short by the end of the file is invalid. hdrID is the page ID its page
// header gives (the page's index when the header is sound).
func readMetaAt(f *os.File, off int64) (m meta, st metaStatus, why string, hdrID uint64, err error) {
	buf := make([]byte, metaOffset+metaSumLen+8)
	if _, err := f.ReadAt(buf, off); err != nil {
		if errors.Is(err, io.EOF) {
			return meta{}, metaInvalid, "cut short by the end of the file", 0, nil
		}
		return meta{}, 0, "", 0, err
	}
	m, st, why = parseMeta(buf)
	hdrID = binary.LittleEndian.Uint64(buf)
	if binary.LittleEndian.Uint16(buf[8:]) != metaFlag {
		hdrID = ^uint64(0)
	}
	return m, st, why, hdrID, nil
}

// readMeta finds the two meta pages as bbolt does and returns the one
// bbolt will use: the valid one with the higher transaction ID. Meta page
// 0 is at offset 0 and names the page size; meta page 1 is at one page
// size. When meta page 0 is invalid, bbolt takes the page size from the
// first valid meta page it finds at 1 KiB, 2 KiB, ... 16 MiB, and so does
// readMeta. A file with no valid meta page is ErrNotBolt, or ErrDamaged
// when the rest of it looks like a bbolt file.
func readMeta(f *os.File, size int64) (metaPages, error) {
	var mp metaPages
	var ms [2]meta
	m0, st0, why0, id0, err := readMetaAt(f, 0)
	if err != nil {
		return mp, err
	}
	if st0 == metaUnsafe {
		return mp, fmt.Errorf("%w: meta page 0: %s", ErrDamaged, why0)
	}
	pageSize := int64(m0.pageSize)
	if st0 != metaOK {
		pageSize = 0
		for i := range 15 {
			pos := int64(1024) << i
			if pos >= size-1024 {
				break
			}
			if m, st, _, _, err := readMetaAt(f, pos); err == nil && st == metaOK {
				pageSize = int64(m.pageSize)
				break
			}
		}
	}
	ms[0], mp.invalid[0], mp.why[0] = m0, st0 != metaOK, why0
	mp.badHeader[0] = st0 == metaOK && id0 != 0
	if pageSize == 0 {
		mp.invalid[1], mp.why[1] = true, "no valid one at any page size"
	} else {
		m1, st1, why1, id1, err := readMetaAt(f, pageSize)
		if err != nil {
			return mp, err
		}
		if st1 == metaUnsafe {
			return mp, fmt.Errorf("%w: meta page 1: %s", ErrDamaged, why1)
		}
		ms[1], mp.invalid[1], mp.why[1] = m1, st1 != metaOK, why1
		mp.badHeader[1] = st1 == metaOK && id1 != 1
	}
	switch {
	case mp.invalid[0] && mp.invalid[1]:
		if looksLikeBolt(f, size) {
			return mp, fmt.Errorf("%w: both meta pages, the two copies of the header that locate its data, are unreadable (meta page 0: %s; meta page 1: %s)", ErrDamaged, mp.why[0], mp.why[1])
		}
		return mp, fmt.Errorf("%w: no valid meta page (meta page 0: %s)", ErrNotBolt, mp.why[0])
	case mp.invalid[0]:
		mp.best, mp.bestIdx = ms[1], 1
	case mp.invalid[1]:
		mp.best, mp.bestIdx = ms[0], 0
	default:
		if ms[0].pageSize != ms[1].pageSize {
			return mp, fmt.Errorf("%w: the meta pages disagree on the page size (%d and %d)", ErrDamaged, ms[0].pageSize, ms[1].pageSize)
		}
		mp.best, mp.bestIdx = ms[0], 0
		if ms[1].txid > ms[0].txid {
			mp.best, mp.bestIdx = ms[1], 1
		}
	}
	if int64(pageSize)*2 > size {
		return mp, fmt.Errorf("%w: %d bytes do not hold the two meta pages of %d bytes", ErrDamaged, size, pageSize)
	}
	if int64(mp.best.pgid)*int64(mp.best.pageSize) > size {
		return mp, fmt.Errorf("%w: meta page %d claims %d pages of %d bytes, the file has %d bytes", ErrDamaged, mp.bestIdx, mp.best.pgid, mp.best.pageSize, size)
	}
	return mp, nil
}

// looksLikeBolt reports whether a file without a valid meta page still
// looks like a bbolt file: a meta page carries bbolt's magic number, or,
// for some page size, page 2 identifies itself as page 2 and has a known
// page type. It tells damage from a file of another format in messages.
func looksLikeBolt(f *os.File, size int64) bool {
	var b [pageHeaderSize + 4]byte
	le := binary.LittleEndian
	for _, off := range []int64{0, 1024, 2048, 4096, 8192, 16384, 32768, 65536} {
		if _, err := f.ReadAt(b[:], off); err == nil && le.Uint32(b[metaOffset:]) == magic {
			return true
		}
	}
	for ps := int64(minPageSize); ps <= maxPageSize && 3*ps <= size; ps *= 2 {
		if _, err := f.ReadAt(b[:pageHeaderSize], 2*ps); err != nil {
			continue
		}
		flags := le.Uint16(b[8:])
		if le.Uint64(b[:]) == 2 && (flags == branchFlag || flags == leafFlag || flags == freelistFlag) {
			return true
		}
	}
	return false
}
