package boltcheck

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
)

// Page and element layout of bbolt's format (internal/common/page.go).
const (
	branchFlag  = 0x01
	leafFlag    = 0x02
	elemSize    = 16 // branch and leaf elements are both 16 bytes
	bucketFlag  = 0x01
	inBucketLen = 16 // root pgid + sequence
	maxDepth    = 64
)

// pageSet is a set of page IDs below the high-water mark, one bit a page.
type pageSet []uint64

func newPageSet(pgid uint64) pageSet { return make(pageSet, (pgid+63)/64) }

func (s pageSet) has(id uint64) bool { return s[id/64]&(1<<(id%64)) != 0 }
func (s pageSet) add(id uint64)      { s[id/64] |= 1 << (id % 64) }

// tree walks bbolt's page tree through ReadAt. The walk is depth-first, so
// each depth reuses one page buffer and one element slice: a page's keys
// stay valid while its children are checked.
type tree struct {
	f       *os.File
	m       meta
	free    pageSet
	visited pageSet
	bufs    [maxDepth + 2][]byte
	elems   [maxDepth + 2][]element
}

func walkTree(f *os.File, m meta, free pageSet) error {
	t := &tree{f: f, m: m, free: free, visited: newPageSet(m.pgid)}
	return t.page(m.root, 0, nil, nil)
}

// page checks the page pgid (a branch or leaf page of a bucket's tree),
// whose keys must lie in [lo, hi) (nil: unbounded), as its ancestors say.
func (t *tree) page(pgid uint64, depth int, lo, hi []byte) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: page tree deeper than %d", ErrDamaged, maxDepth)
	}
	if pgid < 2 || pgid >= t.m.pgid {
		return fmt.Errorf("%w: page %d outside [2, %d)", ErrDamaged, pgid, t.m.pgid)
	}
	ps := int64(t.m.pageSize)
	hdr := make([]byte, pageHeaderSize)
	if _, err := t.f.ReadAt(hdr, int64(pgid)*ps); err != nil {
		return fmt.Errorf("%w: page %d: %v", ErrDamaged, pgid, err)
	}
	le := binary.LittleEndian
	id, flags, count, overflow := le.Uint64(hdr), le.Uint16(hdr[8:]), int64(le.Uint16(hdr[10:])), uint64(le.Uint32(hdr[12:]))
	if id != pgid {
		return fmt.Errorf("%w: page %d says it is page %d", ErrDamaged, pgid, id)
	}
	if pgid+overflow >= t.m.pgid {
		return fmt.Errorf("%w: page %d overflows past page %d", ErrDamaged, pgid, t.m.pgid)
	}
	for p := pgid; p <= pgid+overflow; p++ {
		switch {
		case t.visited.has(p):
			return fmt.Errorf("%w: page %d is reached twice", ErrDamaged, p)
		case t.free.has(p):
			return fmt.Errorf("%w: page %d is both in use and free", ErrDamaged, p)
		}
		t.visited.add(p)
	}
	total := int64(overflow+1) * ps
	if pageHeaderSize+count*elemSize > total {
		return fmt.Errorf("%w: page %d: %d elements do not fit", ErrDamaged, pgid, count)
	}
	// Read the page up to the end of its element array and keys: at most
	// its first page unless its elements or keys reach further.
	n := min(total, max(ps, pageHeaderSize+count*elemSize))
	if n > 1<<30 {
		return fmt.Errorf("%w: page %d: extent of %d bytes", ErrDamaged, pgid, n)
	}
	if int64(cap(t.bufs[depth])) < n {
		t.bufs[depth] = make([]byte, n)
	}
	buf := t.bufs[depth][:n]
	if _, err := t.f.ReadAt(buf, int64(pgid)*ps); err != nil {
		return fmt.Errorf("%w: read page %d: %v", ErrDamaged, pgid, err)
	}
	return t.elements(buf, int64(pgid)*ps, total, flags, count, depth, lo, hi, location{page: pgid})
}

// location names where a problem is, for error messages only: formatting
// it is deferred to the error path.
type location struct {
	page   uint64
	bucket []byte // an inline bucket of that page
}

func (l location) String() string {
	if l.bucket != nil {
		return fmt.Sprintf("page %d bucket %q", l.page, l.bucket)
	}
	return fmt.Sprintf("page %d", l.page)
}

// element is one parsed branch or leaf element.
type element struct {
	key    []byte
	child  uint64 // branch
	bucket bool   // leaf: the value is a bucket header
	voff   int64  // leaf: offset of the value in the page
	vsize  int64
}

// elements checks the elements of a page (or of an inline bucket's page)
// whose first bytes are buf, at offset base of the file, total bytes long:
// their extents, their order, their bounds [lo, hi), then their children.
func (t *tree) elements(buf []byte, base, total int64, flags uint16, count int64, depth int, lo, hi []byte, where location) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: %s: buckets nested deeper than %d", ErrDamaged, where, maxDepth)
	}
	le := binary.LittleEndian
	branch := false
	// Exactly one type, as bbolt asserts when it reads the page (a leaf
	// with another bit set makes it panic).
	switch flags {
	case branchFlag:
		branch = true
	case leafFlag:
	default:
		return fmt.Errorf("%w: %s is neither a branch nor a leaf page (flags %#x)", ErrDamaged, where, flags)
	}
	elems := t.elems[depth][:0]
	if int64(cap(elems)) < count {
		elems = make([]element, 0, count)
		t.elems[depth] = elems
	}
	elems = elems[:count]
	for i := range count {
		eoff := pageHeaderSize + i*elemSize
		e := buf[eoff : eoff+elemSize]
		var el element
		var pos, ksize int64
		if branch {
			pos, ksize, el.child = int64(le.Uint32(e)), int64(le.Uint32(e[4:])), le.Uint64(e[8:])
		} else {
			el.bucket = le.Uint32(e)&bucketFlag != 0
			pos, ksize, el.vsize = int64(le.Uint32(e[4:])), int64(le.Uint32(e[8:])), int64(le.Uint32(e[12:]))
		}
		kstart := eoff + pos
		if kstart+ksize+el.vsize > total {
			return fmt.Errorf("%w: %s element %d extends past the page", ErrDamaged, where, i)
		}
		key, err := t.slice(buf, base, kstart, ksize)
		if err != nil {
			return err
		}
		switch {
		case i > 0 && bytes.Compare(elems[i-1].key, key) >= 0:
			return fmt.Errorf("%w: %s keys out of order at element %d", ErrDamaged, where, i)
		case lo != nil && bytes.Compare(key, lo) < 0, hi != nil && bytes.Compare(key, hi) >= 0:
			return fmt.Errorf("%w: %s element %d outside the key range its ancestors give", ErrDamaged, where, i)
		}
		el.key, el.voff = key, kstart+ksize
		elems[i] = el
	}
	for i, el := range elems {
		switch {
		case branch:
			next := hi
			if i+1 < len(elems) {
				next = elems[i+1].key
			}
			if err := t.page(el.child, depth+1, el.key, next); err != nil {
				return err
			}
		case el.bucket:
			if el.vsize < inBucketLen {
				return fmt.Errorf("%w: %s element %d: bucket header of %d bytes", ErrDamaged, where, i, el.vsize)
			}
			v, err := t.slice(buf, base, el.voff, el.vsize)
			if err != nil {
				return err
			}
			if err := t.bucket(v, base+el.voff, depth, location{page: where.page, bucket: el.key}); err != nil {
				return err
			}
		}
	}
	return nil
}

// bucket checks a bucket whose header (and inline page, if any) is v.
func (t *tree) bucket(v []byte, base int64, depth int, where location) error {
	root := binary.LittleEndian.Uint64(v)
	if root != 0 {
		return t.page(root, depth+1, nil, nil)
	}
	inline := v[inBucketLen:]
	if len(inline) < pageHeaderSize {
		return fmt.Errorf("%w: %s: inline page of %d bytes", ErrDamaged, where, len(inline))
	}
	le := binary.LittleEndian
	flags, count := le.Uint16(inline[8:]), int64(le.Uint16(inline[10:]))
	if flags != leafFlag {
		return fmt.Errorf("%w: %s: inline page is not a leaf (flags %#x)", ErrDamaged, where, flags)
	}
	if pageHeaderSize+count*elemSize > int64(len(inline)) {
		return fmt.Errorf("%w: %s: %d elements do not fit the inline page", ErrDamaged, where, count)
	}
	return t.elements(inline, base+inBucketLen, int64(len(inline)), flags, count, depth+1, nil, nil, where)
}

// slice returns n bytes at offset off of a page whose first bytes are buf
// and which starts at offset base of the file, reading them if buf stops
// short.
func (t *tree) slice(buf []byte, base, off, n int64) ([]byte, error) {
	if off+n <= int64(len(buf)) {
		return buf[off : off+n], nil
	}
	return t.read(base+off, n)
}

func (t *tree) read(off, n int64) ([]byte, error) {
	if n < 0 || n > 1<<30 {
		return nil, fmt.Errorf("%w: extent of %d bytes", ErrDamaged, n)
	}
	b := make([]byte, n)
	if _, err := t.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("%w: read %d bytes at %d: %v", ErrDamaged, n, off, err)
	}
	return b, nil
}
