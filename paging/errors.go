package paging

import (
	"errors"
	"fmt"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/limit"
)

// Sentinel errors. They are returned wrapped, with the key or path in the
// message; match them with errors.Is.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("paging: pager closed")
	// ErrCorrupt reports stored data that fails its checksum or does not
	// decode: a page (the message names the key and page) or the page file
	// itself. The pager never returns bytes that did not verify.
	ErrCorrupt = errors.New("paging: corrupt data")
	// ErrForeignFile reports a file at the storage path that is not a page
	// file written by this package. Wrap leaves it untouched.
	ErrForeignFile = errors.New("paging: not a page file")
	// ErrLocked reports a page file held open by another Pager or process.
	ErrLocked = errors.New("paging: page file in use")
	// ErrWriterDone is returned by a ValueWriter used after Close or Abort.
	// It matches dag.ErrValueEnded too.
	ErrWriterDone = fmt.Errorf("paging: value writer already closed: %w", dag.ErrValueEnded)
)

// maxKeyLen is the longest key the page file can hold: bbolt keys are at
// most 32768 bytes and the pager prefixes one byte.
const maxKeyLen = 32767

func checkKey(key string) error {
	if len(key) > maxKeyLen {
		return &limit.Error{Kind: limit.MessageSize, Subject: "key", Current: float64(len(key)), Limit: maxKeyLen, Unit: "bytes",
			Detail: "keys of the page file are at most 32767 bytes"}
	}
	return nil
}

// corruptf wraps ErrCorrupt with a message naming what was being read.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}
