package paging

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/pierrec/lz4/v4"
)

// A stored page (the value of a record in the pages bucket) is one of:
//
//   - a standard LZ4 frame (magic 04 22 4D 18) with the content checksum
//     on, as `lz4 -d` reads it; or
//   - a raw page: rawMagic, the CRC-32C of the data (little endian), then
//     the data itself. Incompressible pages and Compression "none" use it.
//
// Both carry a checksum; decodePage verifies it and the exact length.
const lz4Magic = 0x184D2204

var rawMagic = [4]byte{'C', 'M', 'R', 'W'}

const rawHeaderLen = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordBound is the most bytes encodePage can produce for n bytes of data:
// per block, the block bound and its size field.
func recordBound(n int) int {
	bs, _ := blockSizeFor(n)
	blocks := max(1, (n+int(bs)-1)/int(bs))
	return max(lz4.CompressBlockBound(n)+(16+4)*blocks+maxFrameHeader+frameTrailerLen, n+rawHeaderLen)
}

// blockSizeFor picks the smallest LZ4 block size that holds a page of n
// bytes in one block (4 MiB blocks for larger pages).
func blockSizeFor(n int) (lz4.BlockSize, int) {
	switch {
	case n <= int(lz4.Block64Kb):
		return lz4.Block64Kb, 0
	case n <= int(lz4.Block256Kb):
		return lz4.Block256Kb, 1
	case n <= int(lz4.Block1Mb):
		return lz4.Block1Mb, 2
	default:
		return lz4.Block4Mb, 3
	}
}

// arenaChunk is the size of the chunks of an encoder's record arena.
const arenaChunk = 256 << 10

// encoder turns pages into records. It is not safe for concurrent use.
type encoder struct {
	c lz4.Compressor
	// chunks hold the records of the batch being written (bbolt keeps a
	// reference to each value until the commit); they are reused by the
	// next batch. used counts the chunks in use, the last one partly.
	chunks [][]byte
	used   int
}

// resetArena makes the arena's chunks reusable; the records of the
// previous batch must be committed.
func (enc *encoder) resetArena() {
	for i := range enc.used {
		enc.chunks[i] = enc.chunks[i][:0]
	}
	enc.used = 0
}

// arenaBytes is the capacity of the arena's chunks.
func (enc *encoder) arenaBytes() int64 {
	var n int64
	for _, c := range enc.chunks {
		n += int64(cap(c))
	}
	return n
}

// releaseArena drops the arena's chunks; the records of the previous
// batch must be committed.
func (enc *encoder) releaseArena() { enc.chunks, enc.used = nil, 0 }

// room returns the arena's current chunk with at least n bytes free after
// its length, taking the next chunk (or a new one) when needed.
func (enc *encoder) room(n int) []byte {
	if enc.used > 0 {
		if c := enc.chunks[enc.used-1]; cap(c)-len(c) >= n {
			return c
		}
	}
	if enc.used < len(enc.chunks) {
		enc.used++
		if cap(enc.chunks[enc.used-1]) < n {
			// Too small for this page: replace it.
			enc.chunks[enc.used-1] = make([]byte, 0, max(n, arenaChunk))
		}
		return enc.chunks[enc.used-1]
	}
	c := make([]byte, 0, max(n, arenaChunk))
	enc.chunks = append(enc.chunks, c)
	enc.used++
	return c
}

// encodeRecord encodes page into the arena and returns the record, valid
// until the next resetArena.
func (enc *encoder) encodeRecord(page []byte, compress bool) ([]byte, error) {
	c := enc.room(recordBound(len(page)))
	start := len(c)
	out, _, err := enc.encodePage(c, page, compress)
	if err != nil {
		return nil, err
	}
	enc.chunks[enc.used-1] = out
	return out[start:len(out):len(out)], nil
}

// encodePage appends the record for page to dst and reports whether it is
// an LZ4 frame (false: raw).
func (enc *encoder) encodePage(dst, page []byte, compress bool) ([]byte, bool, error) {
	start := len(dst)
	if compress {
		var err error
		if dst, err = appendFrame(dst, page, &enc.c); err != nil {
			return dst, false, err
		}
		if len(dst)-start < len(page)+rawHeaderLen {
			return dst, true, nil
		}
		// Incompressible: store it raw instead.
		dst = dst[:start]
	}
	dst = append(dst, rawMagic[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(page, castagnoli))
	return append(dst, page...), false, nil
}

// errUnknownRecord and friends are causes wrapped under ErrCorrupt.
var (
	errUnknownRecord = errors.New("unknown record format")
	errLength        = errors.New("length mismatch")
	errChecksum      = errors.New("checksum mismatch")
)

// decodePage decodes rec into dst, which must have exactly the page's
// length. Any failure (bad checksum, wrong length, unknown format) returns
// an error wrapping ErrCorrupt; dst is then unspecified.
func decodePage(rec, dst []byte) (err error) {
	defer func() {
		// The decoder must never take the process down on a hostile
		// record; a panic here is a corrupt page.
		if r := recover(); r != nil {
			err = corruptf("decode panicked: %v", r)
		}
	}()
	switch {
	case len(rec) >= 4 && binary.LittleEndian.Uint32(rec) == lz4Magic:
		if err := decodeFrame(rec, dst); err != nil {
			return fmt.Errorf("%w: lz4 page: %w", ErrCorrupt, err)
		}
		return nil
	case len(rec) >= rawHeaderLen && [4]byte(rec[:4]) == rawMagic:
		data := rec[rawHeaderLen:]
		if len(data) != len(dst) {
			return fmt.Errorf("%w: raw page: %w: %d bytes stored, %d expected", ErrCorrupt, errLength, len(data), len(dst))
		}
		if crc32.Checksum(data, castagnoli) != binary.LittleEndian.Uint32(rec[4:8]) {
			return fmt.Errorf("%w: raw page: %w", ErrCorrupt, errChecksum)
		}
		copy(dst, data)
		return nil
	default:
		return fmt.Errorf("%w: %w", ErrCorrupt, errUnknownRecord)
	}
}

// header is the record of one value in the values bucket.
type header struct {
	blob  uint64 // id of the value's pages in the pages bucket
	size  int64  // value length in bytes
	psize int64  // page size the value was split with
}

const (
	headerVersion = 1
	headerLen     = 1 + 8 + 8 + 4 + 4
)

func (h header) npages() int64 {
	if h.size == 0 {
		return 0
	}
	return (h.size + h.psize - 1) / h.psize
}

func encodeHeader(h header) []byte {
	b := make([]byte, 0, headerLen)
	b = append(b, headerVersion)
	b = binary.BigEndian.AppendUint64(b, h.blob)
	b = binary.BigEndian.AppendUint64(b, uint64(h.size))
	b = binary.BigEndian.AppendUint32(b, uint32(h.psize))
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeHeader(b []byte) (header, error) {
	if len(b) != headerLen || b[0] != headerVersion {
		return header{}, fmt.Errorf("%w: value header of %d bytes", ErrCorrupt, len(b))
	}
	if crc32.Checksum(b[:headerLen-4], castagnoli) != binary.BigEndian.Uint32(b[headerLen-4:]) {
		return header{}, fmt.Errorf("%w: value header: %w", ErrCorrupt, errChecksum)
	}
	h := header{
		blob:  binary.BigEndian.Uint64(b[1:9]),
		size:  int64(binary.BigEndian.Uint64(b[9:17])),
		psize: int64(binary.BigEndian.Uint32(b[17:21])),
	}
	if h.size < 0 || h.psize < minPageSize || h.psize > maxPageSize {
		return header{}, fmt.Errorf("%w: value header: size %d, page size %d", ErrCorrupt, h.size, h.psize)
	}
	return h, nil
}

// pageKey is the key of page idx of blob in the pages bucket: both big
// endian, so that a blob's pages are adjacent and in order.
func pageKey(blob uint64, idx int64) []byte {
	var k [12]byte
	binary.BigEndian.PutUint64(k[:8], blob)
	binary.BigEndian.PutUint32(k[8:], uint32(idx))
	return k[:]
}

func parsePageKey(k []byte) (blob uint64, idx int64, ok bool) {
	if len(k) != 12 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(k[:8]), int64(binary.BigEndian.Uint32(k[8:])), true
}

// valueKey is the key of a value's header: a one-byte prefix makes the
// empty dag key storable (bbolt rejects empty keys).
func valueKey(key string) []byte {
	b := make([]byte, 0, 1+len(key))
	b = append(b, 'k')
	return append(b, key...)
}
