package main

import (
	"strings"
	"unicode"
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

// tokens splits text into lower-case terms, dropping stop words, one-letter
// words and a plural "s".
func tokens(text string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if len(f) < 2 || stopwords[f] {
			continue
		}
		out = append(out, stem(f))
	}
	return out
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

// chunkText splits a document into chunks of about size bytes, on paragraph
// boundaries where possible, and on sentence boundaries inside long
// paragraphs. Headings stay with the paragraph that follows them.
func chunkText(text string, size int) []string {
	var chunks []string
	var cur strings.Builder
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			chunks = append(chunks, s)
		}
		cur.Reset()
	}
	for _, para := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n\n") {
		para = strings.TrimSpace(para)
		if para == "" {
			continue
		}
		if cur.Len() > 0 && cur.Len()+len(para) > size && !strings.HasPrefix(strings.TrimSpace(cur.String()), "#") {
			flush()
		}
		if len(para) <= size {
			if cur.Len() > 0 {
				cur.WriteString("\n\n")
			}
			cur.WriteString(para)
			continue
		}
		for _, s := range sentences(para) {
			if cur.Len() > 0 && cur.Len()+len(s) > size {
				flush()
			}
			if cur.Len() > 0 {
				cur.WriteByte(' ')
			}
			cur.WriteString(s)
		}
	}
	flush()
	return chunks
}

// sentences splits text after '.', '!' or '?' followed by a space and an
// upper-case letter or digit, keeping abbreviations like "e.g." together.
func sentences(text string) []string {
	text = strings.Join(strings.Fields(text), " ")
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
