package main

import (
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

func oldChunkText(text string, size int) (chunks []string, cut int) {
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			chunks = append(chunks, s)
		}
		cur.Reset()
	}
	add := func(piece, sep string) {
		if cur.Len() > 0 && cur.Len()+len(sep)+len(piece) > size {
			flush()
		}
		if cur.Len() > 0 {
			cur.WriteString(sep)
		}
		cur.WriteString(piece)
	}
	for para := range strings.SplitSeq(text, "\n\n") {
		para = strings.TrimSpace(para)
		if para == "" {
			continue
		}
		if cur.Len() > 0 && cur.Len()+len(para) > size && !strings.HasPrefix(strings.TrimSpace(cur.String()), "#") {
			flush()
		}
		if len(para) <= size {
			// Not add: a heading keeps the paragraph that follows it, so
			// a chunk may reach twice size.
			if cur.Len() > 0 {
				cur.WriteString("\n\n")
			}
			cur.WriteString(para)
			continue
		}
		for line := range strings.SplitSeq(para, "\n") {
			if len(line) <= size {
				add(line, "\n")
				continue
			}
			for _, s := range sentences(line) {
				if len(s) <= size {
					add(s, " ")
					continue
				}
				cut++
				for len(s) > 0 {
					piece := splitAt(s, size)
					add(piece, " ")
					s = strings.TrimLeft(s[len(piece):], " ")
				}
			}
		}
	}
	flush()
	return chunks, cut
}

func TestScratchChunkEquiv(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alpha := []string{"word ", "Big. ", "x", " ", "\n", "\n\n", "\n\n\n", "# H\n", "é", "  ", "\t", ". A", "longwordlongwordlongword"}
	for it := 0; it < 5000; it++ {
		var b strings.Builder
		n := r.IntN(400)
		if r.IntN(30) == 0 {
			n = 20000
		}
		for i := 0; i < n; i++ {
			b.WriteString(alpha[r.IntN(len(alpha))])
		}
		size := 20 + r.IntN(300)
		want, wc := oldChunkText(b.String(), size)
		var got []string
		gc, err := chunkStream(iotest.HalfReader(iotest.OneByteReader(strings.NewReader(b.String()))), size, func(c string) error { got = append(got, c); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if wc != gc || strings.Join(want, "\x00") != strings.Join(got, "\x00") {
			t.Fatalf("size %d %q:\nwant %q %d\ngot %q %d", size, b.String(), want, wc, got, gc)
		}
	}
}
