package paging

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/pierrec/lz4/v4"
)

// Pages are stored as standard LZ4 frames (the lz4 command reads them),
// written and read here with the block functions of pierrec/lz4 straight
// into and out of the caller's buffers: lz4.Writer and lz4.Reader stage
// every block in a buffer taken from a sync.Pool, which the garbage
// collector empties, so that each page cost a block-sized allocation
// once collections were frequent. A frame is:
//
//	magic 04 22 4D 18 | FLG | BD | [content size, 8 bytes] | HC
//	blocks: size (4 bytes LE, high bit: stored uncompressed) | data
//	        [| block checksum, 4 bytes]
//	end mark 00 00 00 00 | content checksum (xxHash32 of the page)
//
// The frames written have independent blocks, a content checksum and no
// content size or block checksums; the reader also accepts frames with
// content size, block checksums or linked blocks.

const (
	flgVersion      = 0x40
	flgIndependent  = 0x20
	flgBlockSum     = 0x10
	flgContentSize  = 0x08
	flgContentSum   = 0x04
	flgDictID       = 0x01
	blockRawBit     = 0x80000000
	maxFrameHeader  = 4 + 2 + 8 + 4 + 1
	frameTrailerLen = 4 + 4
)

// blockSizeCode is the BD byte's code for an LZ4 block size.
func blockSizeCode(bs lz4.BlockSize) byte {
	switch bs {
	case lz4.Block64Kb:
		return 4
	case lz4.Block256Kb:
		return 5
	case lz4.Block1Mb:
		return 6
	default:
		return 7
	}
}

// appendFrame appends page to dst as an LZ4 frame, compressing each block
// with c. dst must have room for recordBound(len(page)) bytes after its
// length, or it is reallocated.
func appendFrame(dst, page []byte, c *lz4.Compressor) ([]byte, error) {
	bs, _ := blockSizeFor(len(page))
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, lz4Magic)
	desc := [2]byte{flgVersion | flgIndependent | flgContentSum, blockSizeCode(bs) << 4}
	dst = append(dst, desc[0], desc[1], byte(xxh32(desc[:])>>8))
	for src := page; len(src) > 0; {
		chunk := src[:min(len(src), int(bs))]
		src = src[len(chunk):]
		hdr := len(dst)
		dst = append(dst, 0, 0, 0, 0)
		bound := lz4.CompressBlockBound(len(chunk))
		if cap(dst)-len(dst) < bound {
			dst = append(dst[:len(dst):len(dst)], make([]byte, bound)...)[:len(dst)]
		}
		n, err := c.CompressBlock(chunk, dst[len(dst):len(dst)+bound])
		if err != nil {
			return dst[:start], fmt.Errorf("paging: lz4 compress: %w", err)
		}
		if n == 0 || n >= len(chunk) {
			binary.LittleEndian.PutUint32(dst[hdr:], uint32(len(chunk))|blockRawBit)
			dst = append(dst, chunk...)
			continue
		}
		binary.LittleEndian.PutUint32(dst[hdr:], uint32(n))
		dst = dst[:len(dst)+n]
	}
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	return binary.LittleEndian.AppendUint32(dst, xxh32(page)), nil
}

var (
	errFrameHeader = errors.New("bad frame header")
	errFrameBlock  = errors.New("bad block")
)

// decodeFrame decodes the LZ4 frame rec into dst, which must have exactly
// the content's length, checking the header checksum, every block and
// block checksum, the exact length and the content checksum.
func decodeFrame(rec, dst []byte) error {
	if len(rec) < 7 || binary.LittleEndian.Uint32(rec) != lz4Magic {
		return errFrameHeader
	}
	flg, bd := rec[4], rec[5]
	if flg&0xC0 != flgVersion || flg&0x02 != 0 || bd&0x8F != 0 || bd>>4 < 4 {
		return errFrameHeader
	}
	hlen := 6
	if flg&flgContentSize != 0 {
		hlen += 8
	}
	if flg&flgDictID != 0 {
		hlen += 4
	}
	if len(rec) < hlen+1 || byte(xxh32(rec[4:hlen])>>8) != rec[hlen] {
		return errFrameHeader
	}
	if flg&flgContentSize != 0 && binary.LittleEndian.Uint64(rec[6:]) != uint64(len(dst)) {
		return errLength
	}
	maxBlock := 1 << (8 + 2*int(bd>>4))
	r := rec[hlen+1:]
	off := 0
	for {
		if len(r) < 4 {
			return errFrameBlock
		}
		size := binary.LittleEndian.Uint32(r)
		r = r[4:]
		if size == 0 {
			break
		}
		raw := size&blockRawBit != 0
		n := int(size &^ blockRawBit)
		if n > maxBlock || n > len(r) {
			return errFrameBlock
		}
		data := r[:n]
		r = r[n:]
		if flg&flgBlockSum != 0 {
			if len(r) < 4 || binary.LittleEndian.Uint32(r) != xxh32(data) {
				return errChecksum
			}
			r = r[4:]
		}
		out := dst[off:min(len(dst), off+maxBlock)]
		var m int
		switch {
		case raw:
			if n > len(out) {
				return errLength
			}
			m = copy(out, data)
		case flg&flgIndependent != 0 || off == 0:
			var err error
			if m, err = lz4.UncompressBlock(data, out); err != nil {
				return fmt.Errorf("%w: %w", errFrameBlock, err)
			}
		default:
			var err error
			if m, err = lz4.UncompressBlockWithDict(data, out, dst[max(0, off-64<<10):off]); err != nil {
				return fmt.Errorf("%w: %w", errFrameBlock, err)
			}
		}
		off += m
	}
	if off != len(dst) {
		return errLength
	}
	if flg&flgContentSum != 0 {
		if len(r) < 4 || binary.LittleEndian.Uint32(r) != xxh32(dst) {
			return errChecksum
		}
		r = r[4:]
	}
	if len(r) != 0 {
		return errLength
	}
	return nil
}

// xxHash32 with seed 0, the checksum of LZ4 frames.
const (
	xxPrime1 uint32 = 2654435761
	xxPrime2 uint32 = 2246822519
	xxPrime3 uint32 = 3266489917
	xxPrime4 uint32 = 668265263
	xxPrime5 uint32 = 374761393
)

func xxRound(acc, in uint32) uint32 {
	return bits.RotateLeft32(acc+in*xxPrime2, 13) * xxPrime1
}

func xxh32(b []byte) uint32 {
	n := len(b)
	var h uint32
	if n >= 16 {
		p1 := xxPrime1 // wrapping arithmetic
		v1, v2, v3, v4 := p1+xxPrime2, xxPrime2, uint32(0), 0-p1
		for len(b) >= 16 {
			v1 = xxRound(v1, binary.LittleEndian.Uint32(b[0:]))
			v2 = xxRound(v2, binary.LittleEndian.Uint32(b[4:]))
			v3 = xxRound(v3, binary.LittleEndian.Uint32(b[8:]))
			v4 = xxRound(v4, binary.LittleEndian.Uint32(b[12:]))
			b = b[16:]
		}
		h = bits.RotateLeft32(v1, 1) + bits.RotateLeft32(v2, 7) + bits.RotateLeft32(v3, 12) + bits.RotateLeft32(v4, 18)
	} else {
		h = xxPrime5
	}
	h += uint32(n)
	for ; len(b) >= 4; b = b[4:] {
		h += binary.LittleEndian.Uint32(b) * xxPrime3
		h = bits.RotateLeft32(h, 17) * xxPrime4
	}
	for _, c := range b {
		h += uint32(c) * xxPrime5
		h = bits.RotateLeft32(h, 11) * xxPrime1
	}
	h ^= h >> 15
	h *= xxPrime2
	h ^= h >> 13
	h *= xxPrime3
	h ^= h >> 16
	return h
}
