package dag

import (
	"bytes"
	"errors"
	"io"
)

// ValueCreator is implemented by States that can take a value written in
// parts without the writer holding it whole in memory: a State that spools
// large values to files, or a wrapper that decodes a value as it arrives.
// Use NewValueWriter rather than calling it directly: it falls back to
// gathering the bytes and calling Put for States that do not implement it.
type ValueCreator interface {
	// CreateValue returns a writer of the value of key.
	CreateValue(key string) (ValueWriter, error)
}

// ValueWriter is one value of a State being written in parts. The bytes
// written are key's value once Commit returns nil; a State that stores
// values keeps key's earlier value until then, and after Abort. Exactly one
// of Commit and Abort ends the writer; calls after the first of them do
// nothing (Commit returns ErrValueEnded). A ValueWriter is used by one
// goroutine at a time.
type ValueWriter interface {
	io.Writer
	// Commit ends the value and stores it.
	Commit() error
	// Abort ends the value and discards it.
	Abort()
}

// ErrValueEnded is returned by the Write and Commit of a ValueWriter that
// was committed or aborted.
var ErrValueEnded = errors.New("dag: state: the value was already committed or aborted")

// NewValueWriter returns a writer of the value of key in s: s's own if s
// implements ValueCreator; otherwise one that gathers the bytes in memory
// and Puts them on Commit.
func NewValueWriter(s State, key string) (ValueWriter, error) {
	if vc, ok := s.(ValueCreator); ok {
		return vc.CreateValue(key)
	}
	return &bufferedValue{s: s, key: key}, nil
}

// bufferedValue is the ValueWriter of a State without its own.
type bufferedValue struct {
	s     State
	key   string
	buf   bytes.Buffer
	ended bool
}

func (v *bufferedValue) Write(p []byte) (int, error) {
	if v.ended {
		return 0, ErrValueEnded
	}
	return v.buf.Write(p)
}

func (v *bufferedValue) Commit() error {
	if v.ended {
		return ErrValueEnded
	}
	v.ended = true
	err := v.s.Put(v.key, v.buf.Bytes())
	v.buf = bytes.Buffer{}
	return err
}

func (v *bufferedValue) Abort() {
	v.ended = true
	v.buf = bytes.Buffer{}
}
