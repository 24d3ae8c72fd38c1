package paging_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pierrec/lz4/v4"

	"github.com/cemaf-go/cemaf/paging"
)

// TestLZ4CommandDecodesStoredPages extracts pages from the page file and
// decodes them with the lz4 command-line tool.
func TestLZ4CommandDecodesStoredPages(t *testing.T) {
	lz4, err := exec.LookPath("lz4")
	if err != nil {
		t.Skip("lz4 command not installed")
	}
	p := open(t, small(""))
	want := corpus(5, 10*kib) // three pages: 4 KiB, 4 KiB, 2 KiB
	if err := p.Put("doc", want); err != nil {
		t.Fatal(err)
	}
	if err := p.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var got []byte
	for i := range int64(3) {
		rec, err := p.StoredPage("doc", i)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "page.lz4")
		if err := os.WriteFile(path, rec, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(lz4, "-d", "-c", path).Output()
		if err != nil {
			t.Fatalf("lz4 -d page %d: %v", i, err)
		}
		got = append(got, out...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("lz4 decoded %d bytes that differ from the value", len(got))
	}
	// lz4 checks the content checksum too.
	rec, _ := p.StoredPage("doc", 0)
	rec[len(rec)-2] ^= 1
	path := filepath.Join(dir, "bad.lz4")
	os.WriteFile(path, rec, 0o600)
	if err := exec.Command(lz4, "-d", "-c", path).Run(); err == nil {
		t.Fatal("lz4 accepted a page with a bad content checksum")
	}
}

func TestEncodePage(t *testing.T) {
	tests := []struct {
		name     string
		data     []byte
		compress bool
		wantLZ4  bool
	}{
		{"text", corpus(1, 64*kib), true, true},
		{"incompressible stored raw", randomBytes(2, 64*kib), true, false},
		{"compression off", corpus(1, 64*kib), false, false},
		{"one byte", []byte{7}, true, false},
		{"larger than an lz4 block", corpus(3, 5<<20), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, isLZ4, err := paging.EncodePage(tt.data, tt.compress)
			if err != nil {
				t.Fatal(err)
			}
			if isLZ4 != tt.wantLZ4 {
				t.Fatalf("lz4 = %v, want %v", isLZ4, tt.wantLZ4)
			}
			if isLZ4 && !bytes.HasPrefix(rec, []byte{0x04, 0x22, 0x4d, 0x18}) {
				t.Fatal("not an LZ4 frame")
			}
			if !isLZ4 && len(rec) != len(tt.data)+8 {
				t.Fatalf("raw record of %d bytes for %d", len(rec), len(tt.data))
			}
			dst := make([]byte, len(tt.data))
			if err := paging.DecodePage(rec, dst); err != nil || !bytes.Equal(dst, tt.data) {
				t.Fatalf("round trip: %v", err)
			}
			// The wrong expected length is corruption, in both directions.
			for _, n := range []int{len(tt.data) - 1, len(tt.data) + 1} {
				if n < 0 {
					continue
				}
				if err := paging.DecodePage(rec, make([]byte, n)); !errors.Is(err, paging.ErrCorrupt) {
					t.Fatalf("decode into %d bytes: %v", n, err)
				}
			}
		})
	}
}

// FuzzDecodePage checks that decoding never panics and never returns wrong
// bytes: a record with one byte changed either fails with ErrCorrupt or
// decodes to the original page.
func FuzzDecodePage(f *testing.F) {
	f.Add(corpus(1, 3000), true, uint16(10), byte(1))
	f.Add(corpus(2, 9000), true, uint16(5000), byte(0x80))
	f.Add(randomBytes(3, 500), true, uint16(4), byte(0xff))
	f.Add(corpus(4, 100), false, uint16(6), byte(2))
	f.Add([]byte{1}, true, uint16(0), byte(0))
	f.Fuzz(func(t *testing.T, page []byte, compress bool, pos uint16, flip byte) {
		if len(page) == 0 {
			return
		}
		rec, _, err := paging.EncodePage(page, compress)
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]byte, len(page))
		if err := paging.DecodePage(rec, dst); err != nil || !bytes.Equal(dst, page) {
			t.Fatalf("round trip: %v", err)
		}
		bad := bytes.Clone(rec)
		bad[int(pos)%len(bad)] ^= flip
		clear(dst)
		err = paging.DecodePage(bad, dst)
		if err == nil && !bytes.Equal(dst, page) {
			t.Fatal("a corrupted record decoded to wrong bytes")
		}
		if err != nil && !errors.Is(err, paging.ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		// Arbitrary bytes as a record of arbitrary length: no panic.
		_ = paging.DecodePage(page, make([]byte, int(pos)%4096))
	})
}

// Frames written by pierrec/lz4's Writer (as page files written before the
// pager encoded frames itself hold them, and with the options other
// writers use: content size, block checksums, small blocks) decode, and
// the pager's frames decode with pierrec/lz4's Reader.
func TestLZ4FrameCompatibility(t *testing.T) {
	for _, size := range []int{1, 100, 4 * kib, 70 * kib, 300 * kib} {
		data := corpus(uint64(size), size)
		for _, opts := range [][]lz4.Option{
			{lz4.BlockSizeOption(lz4.Block4Mb), lz4.ChecksumOption(true)},
			{lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(true), lz4.BlockChecksumOption(true)},
			{lz4.BlockSizeOption(lz4.Block256Kb), lz4.ChecksumOption(true), lz4.SizeOption(uint64(size))},
			{lz4.BlockSizeOption(lz4.Block64Kb), lz4.ChecksumOption(false)},
		} {
			var buf bytes.Buffer
			w := lz4.NewWriter(&buf)
			if err := w.Apply(opts...); err != nil {
				t.Fatal(err)
			}
			w.Write(data)
			w.Close()
			got := make([]byte, size)
			if err := paging.DecodePage(buf.Bytes(), got); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes, writer options %d: DecodePage = %v, equal %v", size, len(opts), err, bytes.Equal(got, data))
			}
		}
		for _, d := range [][]byte{data, randomBytes(uint64(size), size)} {
			rec, isLZ4, err := paging.EncodePage(d, true)
			if err != nil {
				t.Fatal(err)
			}
			if !isLZ4 {
				continue // stored raw
			}
			out, err := io.ReadAll(lz4.NewReader(bytes.NewReader(rec)))
			if err != nil || !bytes.Equal(out, d) {
				t.Fatalf("%d bytes: lz4.Reader on the pager's frame = %v, equal %v", size, err, bytes.Equal(out, d))
			}
			for _, off := range []int{4, 6, len(rec) / 2, len(rec) - 1} {
				bad := bytes.Clone(rec)
				bad[off] ^= 0x20
				if err := paging.DecodePage(bad, make([]byte, len(d))); !errors.Is(err, paging.ErrCorrupt) {
					t.Fatalf("%d bytes, byte %d flipped: DecodePage = %v, want ErrCorrupt", size, off, err)
				}
			}
		}
	}
}
