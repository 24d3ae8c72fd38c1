package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
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
// ends: a UTF-8 byte-order mark is removed, UTF-16 with a byte-order mark
// is converted, invalid UTF-8 is replaced with U+FFFD, NUL bytes with
// spaces, CRLF and CR with LF. A file whose start looks binary (NUL bytes,
// mostly control bytes or mostly invalid UTF-8 in its first 8 KiB) is not
// text: skip says why, and text is nil. A document that needs no repair is
// returned as it is, without a copy.
func decodeText(raw []byte) (text []byte, notes textNotes, skip string) {
	switch {
	case bytes.HasPrefix(raw, bomUTF8):
		raw, notes.BOM = raw[len(bomUTF8):], true
	case bytes.HasPrefix(raw, bomUTF16LE):
		raw, notes.BOM, notes.UTF16 = fromUTF16(raw[2:], binary.LittleEndian), true, true
	case bytes.HasPrefix(raw, bomUTF16BE):
		raw, notes.BOM, notes.UTF16 = fromUTF16(raw[2:], binary.BigEndian), true, true
	}
	if why := binaryStart(raw[:min(len(raw), sniffBytes)]); why != "" {
		return nil, notes, why
	}
	if utf8.Valid(raw) && bytes.IndexByte(raw, '\r') < 0 && bytes.IndexByte(raw, 0) < 0 {
		return raw, notes, ""
	}
	out := make([]byte, 0, len(raw)+len(raw)/8)
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == 0:
			out = append(out, ' ')
			notes.NULs++
			i++
		case c == '\r':
			out = append(out, '\n')
			notes.CR = true
			i++
			if i < len(raw) && raw[i] == '\n' {
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
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
				notes.InvalidUTF8++
			} else {
				out = append(out, raw[i:i+size]...)
			}
			i += size
		}
	}
	return out, notes, ""
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

// fromUTF16 converts UTF-16 to UTF-8; an odd trailing byte and unpaired
// surrogates become U+FFFD.
func fromUTF16(b []byte, order binary.ByteOrder) []byte {
	units := make([]uint16, len(b)/2)
	for i := range units {
		units[i] = order.Uint16(b[2*i:])
	}
	out := make([]byte, 0, len(b))
	for _, r := range utf16.Decode(units) {
		out = utf8.AppendRune(out, r)
	}
	if len(b)%2 == 1 {
		out = utf8.AppendRune(out, utf8.RuneError)
	}
	return out
}
