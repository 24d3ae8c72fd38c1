package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// textNotes records what decodeText repaired in a document, for the report.
type textNotes struct {
	BOM         bool `json:"bom,omitempty"`          // a byte-order mark was removed
	UTF16       bool `json:"utf16,omitempty"`        // the file was UTF-16 (with a BOM), converted
	InvalidUTF8 int  `json:"invalid_utf8,omitempty"` // bytes not valid UTF-8, replaced with U+FFFD
	NULs        int  `json:"nuls,omitempty"`         // NUL bytes past the start, replaced with spaces
	CR          bool `json:"cr,omitempty"`           // CRLF or CR line ends, converted to LF
}

func (n textNotes) String() string {
	var parts []string
	if n.UTF16 {
		parts = append(parts, "converted from UTF-16")
	} else if n.BOM {
		parts = append(parts, "byte-order mark removed")
	}
	if n.InvalidUTF8 > 0 {
		parts = append(parts, plural(n.InvalidUTF8, "invalid UTF-8 byte")+" replaced")
	}
	if n.NULs > 0 {
		parts = append(parts, plural(n.NULs, "NUL byte")+" replaced")
	}
	if n.CR {
		parts = append(parts, "CR line ends converted")
	}
	return strings.Join(parts, ", ")
}

var (
	bomUTF8    = []byte{0xef, 0xbb, 0xbf}
	bomUTF16LE = []byte{0xff, 0xfe}
	bomUTF16BE = []byte{0xfe, 0xff}
)

// sniffBytes is how much of the start of a file decides whether it is
// text.
const sniffBytes = 8 << 10

// decodeText turns the bytes of a document into UTF-8 text with LF line
// ends, as decodeTextTo does, in memory.
func decodeText(raw []byte) (text []byte, notes textNotes, skip string) {
	var out bytes.Buffer
	notes, skip, _ = decodeTextTo(&out, bytes.NewReader(raw))
	if skip != "" {
		return nil, notes, skip
	}
	return out.Bytes(), notes, ""
}

// decodeBlock is how much decodeTextTo reads and writes at a time.
const decodeBlock = 64 << 10

// decodeTextTo reads a document from src and writes it to dst as UTF-8
// text with LF line ends, streaming (it holds a few blocks of 64 KiB, never
// the document): a UTF-8 byte-order mark is removed, UTF-16 with a
// byte-order mark is converted, invalid UTF-8 is replaced with U+FFFD, NUL
// bytes with spaces, CRLF and CR with LF. A document whose start looks
// binary (NUL bytes, mostly control bytes or mostly invalid UTF-8 in its
// first 8 KiB) is not text: skip says why, and nothing is written. err is
// the first error of src or dst.
func decodeTextTo(dst io.Writer, src io.Reader) (notes textNotes, skip string, err error) {
	br := bufio.NewReaderSize(src, decodeBlock)
	var text io.Reader = br
	head, err := br.Peek(len(bomUTF8))
	if err != nil && !errors.Is(err, io.EOF) {
		return notes, "", err
	}
	switch {
	case bytes.HasPrefix(head, bomUTF8):
		br.Discard(len(bomUTF8))
		notes.BOM = true
	case bytes.HasPrefix(head, bomUTF16LE):
		br.Discard(2)
		text, notes.BOM, notes.UTF16 = &utf16Reader{r: br, order: binary.LittleEndian}, true, true
	case bytes.HasPrefix(head, bomUTF16BE):
		br.Discard(2)
		text, notes.BOM, notes.UTF16 = &utf16Reader{r: br, order: binary.BigEndian}, true, true
	}
	buf := make([]byte, max(sniffBytes, decodeBlock))
	n, err := io.ReadFull(text, buf[:sniffBytes])
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return notes, "", err
	}
	if why := binaryStart(buf[:n]); why != "" {
		return notes, why, nil
	}
	rep := repairer{w: dst, notes: &notes}
	for {
		if err := rep.write(buf[:n], false); err != nil {
			return notes, "", err
		}
		if n, err = text.Read(buf); err != nil && !errors.Is(err, io.EOF) {
			return notes, "", err
		} else if errors.Is(err, io.EOF) && n == 0 {
			return notes, "", rep.write(nil, true)
		}
	}
}

// repairer replaces NULs, invalid UTF-8 and CR line ends in the text
// written to it, block by block: an incomplete UTF-8 sequence at the end
// of a block waits for the next one, and so does a CR's LF.
type repairer struct {
	w       io.Writer
	notes   *textNotes
	carry   []byte // the start of a rune cut by the end of the last block
	join    []byte // carry and the next block
	afterCR bool   // the last block ended with a CR
	out     []byte
}

// write repairs p; final says it is the last block.
func (r *repairer) write(p []byte, final bool) error {
	raw := p
	if len(r.carry) > 0 {
		r.join = append(append(r.join[:0], r.carry...), p...)
		raw, r.carry = r.join, r.carry[:0]
	}
	out := r.out[:0]
	i := 0
	if r.afterCR && len(raw) > 0 {
		if raw[0] == '\n' {
			i++
		}
		r.afterCR = false
	}
	for i < len(raw) {
		c := raw[i]
		switch {
		case c == 0:
			out = append(out, ' ')
			r.notes.NULs++
			i++
		case c == '\r':
			out = append(out, '\n')
			r.notes.CR = true
			i++
			if i == len(raw) {
				r.afterCR = true
			} else if raw[i] == '\n' {
				i++
			}
		case c < utf8.RuneSelf:
			// Copy the run of plain ASCII at once.
			j := i + 1
			for j < len(raw) && raw[j] < utf8.RuneSelf && raw[j] != '\r' && raw[j] != 0 {
				j++
			}
			out = append(out, raw[i:j]...)
			i = j
		case !final && !utf8.FullRune(raw[i:]):
			r.carry = append(r.carry[:0], raw[i:]...)
			i = len(raw)
		default:
			ru, size := utf8.DecodeRune(raw[i:])
			if ru == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
				r.notes.InvalidUTF8++
			} else {
				out = append(out, raw[i:i+size]...)
			}
			i += size
		}
	}
	r.out = out
	if len(out) == 0 {
		return nil
	}
	_, err := r.w.Write(out)
	return err
}

// binaryStart says why the start of a file is not text, or "".
func binaryStart(head []byte) string {
	if len(head) == 0 {
		return ""
	}
	if bytes.IndexByte(head, 0) >= 0 {
		return "binary (NUL bytes), not text"
	}
	control, invalid := 0, 0
	for i := 0; i < len(head); {
		c := head[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' && c != 0x1b {
				control++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(head[i:])
		if r == utf8.RuneError && size == 1 && len(head)-i >= utf8.UTFMax {
			invalid++ // a rune cut at the end of head is not counted
		}
		i += size
	}
	switch {
	case control*10 > len(head):
		return "binary (control bytes), not text"
	case invalid*4 > len(head):
		return fmt.Sprintf("binary or not UTF-8 (%d%% of its first bytes are not UTF-8), not text", invalid*100/len(head))
	}
	return ""
}

// utf16Reader converts UTF-16 read from r to UTF-8; an odd trailing byte
// and unpaired surrogates become U+FFFD.
type utf16Reader struct {
	r     io.Reader
	order binary.ByteOrder
	in    []byte // bytes read and not converted: an odd byte, a high surrogate
	units []uint16
	out   []byte // converted and not returned
	eof   bool
}

func (u *utf16Reader) Read(p []byte) (int, error) {
	for len(u.out) == 0 {
		if u.eof {
			return 0, io.EOF
		}
		if err := u.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

// fill reads one block and converts what it can of it.
func (u *utf16Reader) fill() error {
	if cap(u.in) == 0 {
		u.in = make([]byte, 0, decodeBlock+4)
	}
	n, err := u.r.Read(u.in[len(u.in):cap(u.in)])
	u.in = u.in[:len(u.in)+n]
	switch {
	case errors.Is(err, io.EOF):
		u.eof = true
	case err != nil:
		return err
	}
	b := u.in
	u.units = u.units[:0]
	for len(b) >= 2 {
		u.units = append(u.units, u.order.Uint16(b))
		b = b[2:]
	}
	units := u.units
	// A high surrogate at the end may pair with the next block's first unit.
	if !u.eof && len(units) > 0 && utf16.IsSurrogate(rune(units[len(units)-1])) && units[len(units)-1] < 0xdc00 {
		units = units[:len(units)-1]
		b = u.in[len(u.in)-len(b)-2:]
	}
	out := u.out[:0]
	for _, r := range utf16.Decode(units) {
		out = utf8.AppendRune(out, r)
	}
	if u.eof && len(b)%2 == 1 {
		out = utf8.AppendRune(out, utf8.RuneError)
		b = nil
	}
	u.out = out
	u.in = append(u.in[:0], b...)
	return nil
}
