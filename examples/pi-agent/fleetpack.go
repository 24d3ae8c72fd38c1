package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// A pack is the values an index shard reads or writes, in one value:
//
//	"PIF1" uvarint(shard) uvarint(shards) uvarint(count)
//	count × (uvarint(len key) key uvarint(len value) value)
//
// It is written and read in parts (packWriter, readPack, shardView): no
// side holds a shard's pack whole.

const packMagic = "PIF1"

// maxPackKey bounds the length of a key in a pack.
const maxPackKey = 64 << 10

var errBadPack = errors.New("not a packed shard (corrupt or from another version)")

// appendPackHeader appends the header of a pack of count entries.
func appendPackHeader(b []byte, shard, shards, count int) []byte {
	b = append(b, packMagic...)
	b = binary.AppendUvarint(b, uint64(shard))
	b = binary.AppendUvarint(b, uint64(shards))
	return binary.AppendUvarint(b, uint64(count))
}

// appendEntryHead appends what precedes an entry's value: its key and the
// value's length.
func appendEntryHead(b []byte, key string, size int64) []byte {
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	return binary.AppendUvarint(b, uint64(size))
}

// packWriter writes a pack of a known number of entries to a writer.
type packWriter struct {
	w    *bufio.Writer
	left int
	head []byte
}

func newPackWriter(w io.Writer, shard, shards, count int) (*packWriter, error) {
	p := &packWriter{w: bufio.NewWriterSize(w, 64<<10), left: count}
	_, err := p.w.Write(appendPackHeader(nil, shard, shards, count))
	return p, err
}

// add writes one entry.
func (p *packWriter) add(key string, value []byte) error {
	if p.left == 0 {
		return errors.New("pack: more entries than its count")
	}
	p.left--
	p.head = appendEntryHead(p.head[:0], key, int64(len(value)))
	if _, err := p.w.Write(p.head); err != nil {
		return err
	}
	_, err := p.w.Write(value)
	return err
}

// flush ends the pack: every entry of its count was added.
func (p *packWriter) flush() error {
	if p.left != 0 {
		return fmt.Errorf("pack: %d entries short of its count", p.left)
	}
	return p.w.Flush()
}

// readPack reads a pack from r: it calls head (if not nil) with the pack's
// shard and shard count before any entry, so that a pack meant for another
// shard is refused before fn sees an entry of it, then fn with each entry
// in order; value is valid only during the call. A value longer than
// maxValue, a truncated pack or bytes after its last entry fail with
// errBadPack, after fn has seen the entries before the fault. Memory grows
// with the largest value actually read, not with a length the pack claims.
func readPack(r io.Reader, maxValue int64, head func(shard, shards int) error, fn func(key string, value []byte) error) (shard, shards int, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var magic [len(packMagic)]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil || string(magic[:]) != packMagic {
		return 0, 0, badPack(err)
	}
	uv := func(limit uint64) (int, error) {
		v, err := binary.ReadUvarint(br)
		if err != nil || v > limit {
			return 0, badPack(err)
		}
		return int(v), nil
	}
	if shard, err = uv(maxShards); err != nil {
		return 0, 0, err
	}
	if shards, err = uv(maxShards); err != nil {
		return 0, 0, err
	}
	if head != nil {
		if err := head(shard, shards); err != nil {
			return 0, 0, err
		}
	}
	// Within an int on a 32-bit board too.
	count, err := uv(math.MaxInt32)
	if err != nil {
		return 0, 0, err
	}
	var key, value bytes.Buffer
	for range count {
		kl, err := uv(maxPackKey)
		if err != nil {
			return 0, 0, err
		}
		key.Reset()
		if _, err := io.CopyN(&key, br, int64(kl)); err != nil {
			return 0, 0, badPack(err)
		}
		vl, err := uv(uint64(maxValue))
		if err != nil {
			return 0, 0, err
		}
		value.Reset()
		if _, err := io.CopyN(&value, br, int64(vl)); err != nil {
			return 0, 0, badPack(err)
		}
		if err := fn(key.String(), value.Bytes()); err != nil {
			return 0, 0, err
		}
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return 0, 0, badPack(err)
	}
	return shard, shards, nil
}

// badPack is errBadPack, with the read error that revealed it, if any
// other than the end of the bytes.
func badPack(err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errBadPack
	}
	return fmt.Errorf("%w: %w", errBadPack, err)
}
