package main

import (
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

// chunkText splits a document (LF line ends) into chunks of at most size
// bytes (twice that with a heading): on paragraph boundaries where possible, then on line and sentence
// boundaries inside long paragraphs, and a sentence longer than size (a
// minified file, a long hex string) into pieces at spaces or, failing
// those, anywhere on a rune boundary. Headings stay with the paragraph
// that follows them. It returns the chunks and how many sentences it had
// to cut.
func chunkText(text string, size int) (chunks []string, cut int) {
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
