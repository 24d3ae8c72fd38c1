package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cemaf-go/cemaf/dag"
)

// benchText is 4 MiB of markdown-like prose.
func benchText() []byte {
	para := "The irrigation valve opens at dawn for exactly twelve minutes; the sensor logs humidity every ten minutes. "
	var b bytes.Buffer
	for b.Len() < 4<<20 {
		b.WriteString(strings.Repeat(para, 6))
		b.WriteString("\n\n")
	}
	return b.Bytes()
}

// BenchmarkDecodeText measures decoding a clean document (the common case:
// checks only, no copy) and one that needs repair (CRLF and Latin-1), with
// utf8.Valid over the same bytes as the baseline.
func BenchmarkDecodeText(b *testing.B) {
	clean := benchText()
	dirty := bytes.ReplaceAll(bytes.ReplaceAll(clean, []byte("\n"), []byte("\r\n")), []byte("minutes"), []byte("min\xfates"))
	b.Run("baseline-utf8-valid", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(clean)))
		for b.Loop() {
			if !utf8.Valid(clean) {
				b.Fatal("not valid")
			}
		}
	})
	b.Run("clean", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(clean)))
		for b.Loop() {
			decodeText(clean)
		}
	})
	b.Run("repair", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(dirty)))
		for b.Loop() {
			decodeText(dirty)
		}
	})
}

// BenchmarkCorpusDigest measures the digest of a 16 MiB corpus of 32
// files against reading the same files through the same bounded open
// (the baseline: what loading costs in I/O).
func BenchmarkCorpusDigest(b *testing.B) {
	dir := b.TempDir()
	text := benchText()[:512<<10]
	for i := range 32 {
		if err := os.WriteFile(filepath.Join(dir, "doc-"+string(rune('a'+i%26))+string(rune('a'+i/26))+".md"), text, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	c, err := openCorpus(context.Background(), dir)
	if err != nil {
		b.Fatal(err)
	}
	size := int64(32 * len(text))
	b.Run("baseline-read", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(size)
		buf := make([]byte, 64<<10)
		for b.Loop() {
			c.walk(context.Background(), func(name string) error {
				f, _, err := c.openDoc(name, maxDocBytes)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
				return err
			}, func(string, string) {})
		}
	})
	b.Run("digest", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(size)
		for b.Loop() {
			if _, err := c.digest(context.Background(), maxDocBytes); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkShardViewUnpack decodes a worker's pack of 10,000 postings (32
// bytes each) into a State through the device's view, which checks every
// key against the shard's; the baseline is readPack putting the same
// entries into the State without the check.
func BenchmarkShardViewUnpack(b *testing.B) {
	entries := []packEntry{{statsKey(1), []byte(`{"chunks":5}`)}}
	for i := range 10_000 {
		entries = append(entries, packEntry{postingKey(1, "term"+strconv.Itoa(i)), bytes.Repeat([]byte{byte(i)}, 32)})
	}
	packed := encodePack(b, 1, 2, entries)
	b.Run("view", func(b *testing.B) {
		b.ReportAllocs()
		s := dag.NewMemoryState()
		v := &shardView{State: s, node: "index-1", out: fleetOutKey("index-1"), shard: 1, shards: 2, maxValue: 1 << 20}
		for b.Loop() {
			if err := v.Put(v.out, packed); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		s := dag.NewMemoryState()
		for b.Loop() {
			if _, _, err := readPack(bytes.NewReader(packed), 1<<20, nil, s.Put); err != nil {
				b.Fatal(err)
			}
		}
	})
}
