package paging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

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

// lz4FrameOverhead bounds the bytes an LZ4 frame adds around its blocks:
// magic, descriptor (with content size), end mark and content checksum.
const lz4FrameOverhead = 4 + 11 + 4 + 4

// recordBound is the most bytes encodePage can produce for n bytes of data.
func recordBound(n int) int {
	blocks := n/int(lz4.Block4Mb) + 1
	return max(lz4.CompressBlockBound(n)+lz4FrameOverhead+4*blocks, n+rawHeaderLen)
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

// appendWriter is an io.Writer appending to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// maxScratch is the largest scratch buffer an encoder keeps between
// batches; larger pages get a scratch buffer per batch.
const maxScratch = 1 << 20

// encoder turns pages into records. It is not safe for concurrent use.
type encoder struct {
	w       [4]*lz4.Writer
	out     appendWriter
	scratch []byte
}

// encodePage appends the record for page to dst and reports whether it is
// an LZ4 frame (false: raw).
func (enc *encoder) encodePage(dst, page []byte, compress bool) ([]byte, bool, error) {
	start := len(dst)
	if compress {
		bs, i := blockSizeFor(len(page))
		w := enc.w[i]
		if w == nil {
			w = lz4.NewWriter(nil)
			if err := w.Apply(lz4.BlockSizeOption(bs), lz4.ChecksumOption(true), lz4.ConcurrencyOption(1)); err != nil {
				return dst, false, fmt.Errorf("paging: lz4 writer: %w", err)
			}
			enc.w[i] = w
		}
		enc.out.b = dst
		w.Reset(&enc.out)
		if _, err := w.Write(page); err != nil {
			return dst, false, fmt.Errorf("paging: lz4 compress: %w", err)
		}
		if err := w.Close(); err != nil {
			return dst, false, fmt.Errorf("paging: lz4 compress: %w", err)
		}
		dst = enc.out.b
		enc.out.b = nil
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

// decoder decodes LZ4 records; decoders are pooled.
type decoder struct {
	r  *lz4.Reader
	br bytes.Reader
}

var decoders = sync.Pool{New: func() any {
	d := &decoder{}
	d.r = lz4.NewReader(&d.br)
	return d
}}

// errShortRecord and friends are causes wrapped under ErrCorrupt.
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
		d := decoders.Get().(*decoder)
		d.br.Reset(rec)
		d.r.Reset(&d.br)
		_, err := io.ReadFull(d.r, dst)
		if err == nil {
			var one [1]byte
			// Reading past the content makes the reader check the end mark
			// and the content checksum.
			var n int
			n, err = d.r.Read(one[:])
			switch {
			case n == 0 && err == io.EOF:
				err = nil
			case err == nil || err == io.EOF:
				err = errLength
			}
		} else if err == io.ErrUnexpectedEOF || err == io.EOF {
			err = errLength
		}
		d.r.Reset(nil)
		d.br.Reset(nil)
		decoders.Put(d)
		if err != nil {
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
