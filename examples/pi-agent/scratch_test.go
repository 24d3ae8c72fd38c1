package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
	"unicode/utf16"
	"unicode/utf8"
)

func oldDecodeText(raw []byte) (text []byte, notes textNotes, skip string) {
	switch {
	case bytes.HasPrefix(raw, bomUTF8):
		raw, notes.BOM = raw[len(bomUTF8):], true
	case bytes.HasPrefix(raw, bomUTF16LE):
		raw, notes.BOM, notes.UTF16 = oldFromUTF16(raw[2:], binary.LittleEndian), true, true
	case bytes.HasPrefix(raw, bomUTF16BE):
		raw, notes.BOM, notes.UTF16 = oldFromUTF16(raw[2:], binary.BigEndian), true, true
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

func oldFromUTF16(b []byte, order binary.ByteOrder) []byte {
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

func TestScratchDecodeEquiv(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alpha := []string{"a", "b", " ", "\n", "\r", "\r\n", "\x00", "\xff", "\xe2\x82", "\xe2\x82\xac", "\xf0\x9d\x84\x9e", "\xd8", "\xdc", "\x00\xd8", "\xfe\xff"}
	for it := 0; it < 20000; it++ {
		var b []byte
		switch r.IntN(4) {
		case 0:
			b = append(b, 0xef, 0xbb, 0xbf)
		case 1:
			b = append(b, 0xff, 0xfe)
		case 2:
			b = append(b, 0xfe, 0xff)
		}
		n := r.IntN(40)
		if r.IntN(50) == 0 {
			n = 5000
		}
		for i := 0; i < n; i++ {
			b = append(b, alpha[r.IntN(len(alpha))]...)
		}
		want, wn, ws := oldDecodeText(bytes.Clone(b))
		var out bytes.Buffer
		var src io.Reader = bytes.NewReader(b)
		if it%2 == 0 {
			src = iotest.OneByteReader(src)
		} else {
			src = iotest.HalfReader(src)
		}
		gn, gs, err := decodeTextTo(&out, src)
		if err != nil {
			t.Fatal(err)
		}
		if gs != ws || gn != wn || (ws == "" && !bytes.Equal(out.Bytes(), want)) {
			t.Fatalf("%q: want %q %+v %q, got %q %+v %q", b, want, wn, ws, out.Bytes(), gn, gs)
		}
	}
}
