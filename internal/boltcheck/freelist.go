package boltcheck

import (
	"encoding/binary"
	"fmt"
	"os"
)

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
		return nil, fmt.Errorf("%w: freelist page: %w", ErrDamaged, err)
	}
	le := binary.LittleEndian
	flags, count, overflow := le.Uint16(hdr[8:]), uint64(le.Uint16(hdr[10:])), uint64(le.Uint32(hdr[12:]))
	if flags != freelistFlag { // bbolt panics on any other type
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
		return nil, fmt.Errorf("%w: freelist: %w", ErrDamaged, err)
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
