package llm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// sseReader reads the data lines of a server-sent event stream. Each data
// line is one event, as chat-completions servers send them ("data: {...}"
// then a blank line); comments, blank lines and other fields are skipped.
// Multi-line data events are not joined: no chat-completions server sends
// them.
type sseReader struct {
	r    *bufio.Reader
	max  int    // longest line accepted, in bytes
	long []byte // a line longer than r's buffer, assembled
}

// errLineTooLong is returned for a line longer than the reader's limit.
var errLineTooLong = errors.New("stream line too long")

func newSSEReader(r io.Reader, bufSize, maxLine int) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, bufSize), max: maxLine}
}

// next returns the data of the next event, valid until the following call,
// or io.EOF at a clean end of the stream, or the read error.
func (s *sseReader) next() ([]byte, error) {
	for {
		line, err := s.line()
		if err != nil {
			// An unterminated last line is an incomplete event: dropped.
			return nil, err
		}
		if data, ok := dataField(line); ok {
			return data, nil
		}
	}
}

// line returns the next line without its end of line, or an error when
// the stream ends before the line does (io.EOF for a clean end).
func (s *sseReader) line() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.long = append(s.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(s.long) > s.max {
				return nil, fmt.Errorf("%w: over %d bytes", errLineTooLong, s.max)
			}
			line, err = s.r.ReadSlice('\n')
			s.long = append(s.long, line...)
		}
		line = s.long
		if len(line) > s.max {
			return nil, fmt.Errorf("%w: over %d bytes", errLineTooLong, s.max)
		}
	}
	line = bytes.TrimRight(line, "\r\n")
	return line, err
}

// dataField returns the value of a "data:" line, without the one space
// that may follow the colon.
func dataField(line []byte) ([]byte, bool) {
	const prefix = "data:"
	if len(line) < len(prefix) || string(line[:len(prefix)]) != prefix {
		return nil, false
	}
	v := line[len(prefix):]
	if len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	return v, true
}
