package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// stopwords are skipped when indexing and querying. Read-only.
var stopwords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an and are as at be but by can do does for from had has have how i if in
		into is it its it's may more most no not of on or so than that the their them then there these they this
		to too up was we what when where which while who why will with would you your our out over under about
		after before also any all each every one two very just only such some much many its`) {
		m[w] = true
	}
	return m
}()

// maxTermBytes bounds an index term: a longer token (a hash, a line of
// base64, a 40 KB hex string) is cut to its first maxTermBytes bytes, on a
// rune boundary, in documents and questions alike, so that it still matches
// and its postings key stays far below the pager's key limit.
const maxTermBytes = 64

// tokens splits text into lower-case terms, dropping stop words, one-letter
// words and a plural "s"; terms are at most maxTermBytes long.
func tokens(text string) []string {
	out, _ := appendTokens(nil, text)
	return out
}

// appendTokens appends the terms of text to dst and returns how many were
// cut to maxTermBytes.
func appendTokens(dst []string, text string) ([]string, int) {
	cut := 0
	for _, f := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if len(f) < 2 || stopwords[f] {
			continue
		}
		if len(f) > maxTermBytes {
			f = truncateRunes(f, maxTermBytes)
			cut++
		}
		dst = append(dst, stem(f))
	}
	return dst, cut
}

// truncateRunes cuts s to at most n bytes without splitting a rune.
func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// stem strips a plural ending, so that "zones" and "zone" match.
func stem(w string) string {
	switch {
	case len(w) > 4 && strings.HasSuffix(w, "ies"):
		return w[:len(w)-3] + "y"
	case len(w) > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us"):
		return w[:len(w)-1]
	}
	return w
}

// chunkText splits a document (LF line ends) into chunks, as chunkStream
// does, in memory.
func chunkText(text string, size int) (chunks []string, cut int) {
	cut, _ = chunkStream(strings.NewReader(text), size, func(c string) error {
		chunks = append(chunks, c)
		return nil
	})
	return chunks, cut
}

// maxParagraph is the longest paragraph chunkStream holds whole; it is at
// least 4 chunks.
func maxParagraph(size int) int { return max(1<<20, 4*size) }

// chunkStream splits a document (LF line ends) read from r into chunks of
// at most size bytes (twice that with a heading), passing each to emit as
// it is made: on paragraph boundaries where possible, then on line and
// sentence boundaries inside long paragraphs, and a sentence longer than
// size (a minified file, a long hex string) into pieces at spaces or,
// failing those, anywhere on a rune boundary. Headings stay with the
// paragraph that follows them. It returns how many sentences it had to
// cut, and the first error of r or emit.
//
// It holds one paragraph at a time, at most maxParagraph bytes: a longer
// one is chunked line by line as it streams (its white space is trimmed
// from its first and last line only), and a line longer than that is cut
// at a space (or a rune boundary) into lines of at most maxParagraph bytes
// first.
func chunkStream(r io.Reader, size int, emit func(string) error) (cut int, err error) {
	c := chunker{size: size, emit: emit}
	limit := maxParagraph(size)
	buf := make([]byte, 0, limit+decodeBlock)
	search := 0   // where "\n\n" may start in buf
	long := false // buf is the rest of a paragraph of more than limit bytes
	for eof := false; !eof; {
		// Here len(buf) <= limit < cap(buf).
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case errors.Is(rerr, io.EOF):
			eof = true
		case rerr != nil:
			return c.cut, rerr
		}
		start := 0
		for {
			i := bytes.Index(buf[search:], []byte("\n\n"))
			if i < 0 {
				break
			}
			end := search + i
			if long {
				c.longTail(string(buf[start:end]))
				long = false
			} else {
				c.paragraph(string(buf[start:end]))
			}
			start, search = end+2, end+2
			if c.err != nil {
				return c.cut, c.err
			}
		}
		buf = buf[:copy(buf, buf[start:])]
		search = max(len(buf)-1, 0)
		if eof {
			break
		}
		if !long && len(buf) > limit {
			buf = buf[:copy(buf, bytes.TrimLeftFunc(buf, unicode.IsSpace))]
			if len(buf) > limit {
				long = true
				c.startLong()
			}
		}
		for long && len(buf) > limit {
			// Hand over whole lines; the last '\n' of buf may start a
			// paragraph break. A line longer than limit is cut first.
			if j := bytes.LastIndexByte(buf[:len(buf)-1], '\n'); j >= 0 {
				c.longLines(string(buf[:j]))
				buf = buf[:copy(buf, buf[j+1:])]
			} else {
				j = len(splitAt(string(buf[:limit]), limit-1))
				if j == 0 {
					j = limit
				}
				c.longLines(string(buf[:j]))
				buf = buf[:copy(buf, buf[j:])]
			}
			search = max(len(buf)-1, 0)
			if c.err != nil {
				return c.cut, c.err
			}
		}
	}
	if long {
		c.longTail(string(buf))
	} else {
		c.paragraph(string(buf))
	}
	c.flush()
	return c.cut, c.err
}

// chunker builds chunks from paragraphs and lines.
type chunker struct {
	size int
	cur  strings.Builder
	cut  int
	emit func(string) error
	err  error
}

func (c *chunker) flush() {
	if s := strings.TrimSpace(c.cur.String()); s != "" && c.err == nil {
		c.err = c.emit(s)
	}
	c.cur.Reset()
}

func (c *chunker) add(piece, sep string) {
	if c.cur.Len() > 0 && c.cur.Len()+len(sep)+len(piece) > c.size {
		c.flush()
	}
	if c.cur.Len() > 0 {
		c.cur.WriteString(sep)
	}
	c.cur.WriteString(piece)
}

// heading says whether the chunk being built starts with a heading.
func (c *chunker) heading() bool {
	return strings.HasPrefix(strings.TrimSpace(c.cur.String()), "#")
}

// paragraph adds one whole paragraph.
func (c *chunker) paragraph(para string) {
	para = strings.TrimSpace(para)
	if para == "" {
		return
	}
	if c.cur.Len() > 0 && c.cur.Len()+len(para) > c.size && !c.heading() {
		c.flush()
	}
	if len(para) <= c.size {
		// Not add: a heading keeps the paragraph that follows it, so
		// a chunk may reach twice size.
		if c.cur.Len() > 0 {
			c.cur.WriteString("\n\n")
		}
		c.cur.WriteString(para)
		return
	}
	c.longLines(para)
}

// startLong begins a paragraph longer than a chunk whose lines follow.
func (c *chunker) startLong() {
	if c.cur.Len() > 0 && !c.heading() {
		c.flush()
	}
}

// longTail adds the last lines of a long paragraph.
func (c *chunker) longTail(lines string) {
	if lines = strings.TrimRightFunc(lines, unicode.IsSpace); lines != "" {
		c.longLines(lines)
	}
}

// longLines adds the lines of a paragraph longer than a chunk.
func (c *chunker) longLines(lines string) {
	for line := range strings.SplitSeq(lines, "\n") {
		if len(line) <= c.size {
			c.add(line, "\n")
			continue
		}
		for _, s := range sentences(line) {
			if len(s) <= c.size {
				c.add(s, " ")
				continue
			}
			c.cut++
			for len(s) > 0 {
				piece := splitAt(s, c.size)
				c.add(piece, " ")
				s = strings.TrimLeft(s[len(piece):], " ")
			}
		}
	}
}

// splitAt returns the longest prefix of s of at most size bytes that ends
// at a space, or else on a rune boundary.
func splitAt(s string, size int) string {
	if len(s) <= size {
		return s
	}
	if i := strings.LastIndexByte(s[:size+1], ' '); i > size/2 {
		return s[:i]
	}
	return truncateRunes(s, size)
}

// sentences splits text after '.', '!' or '?' followed by a space and an
// upper-case letter or digit, keeping abbreviations like "e.g." together.
// Runs of white space count as one space.
func sentences(text string) []string {
	text = collapseSpace(text)
	var out []string
	start := 0
	for i := 0; i+2 < len(text); i++ {
		c := text[i]
		if (c == '.' || c == '!' || c == '?') && text[i+1] == ' ' {
			next := rune(text[i+2])
			if unicode.IsUpper(next) || unicode.IsDigit(next) {
				out = append(out, strings.TrimSpace(text[start:i+1]))
				start = i + 2
			}
		}
	}
	if s := strings.TrimSpace(text[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

// collapseSpace replaces every run of white space with one space and trims
// both ends, in one pass.
func collapseSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}
