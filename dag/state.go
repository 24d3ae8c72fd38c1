package dag

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// ErrNotFound is returned (wrapped, with the key in the message) by
// State.Get for a key that is not present.
var ErrNotFound = errors.New("key not found")

// State is the key/value data that nodes of a graph exchange.
//
// Values are byte slices. Put stores a copy of the value, so the caller may
// reuse its buffer afterwards. Get returns the stored bytes without copying:
// the caller must treat them as read-only (bytes.Clone gives a private copy).
//
// Size and SizeOf account value bytes exactly: Size is the sum of len(value)
// over all keys, SizeOf the len of one value. Keys and per-entry overhead are
// not counted.
//
// Implementations must be safe for concurrent use by many nodes. The in-memory
// implementation is MemoryState; package paging provides one that keeps a RAM
// budget and spills cold values to disk, and can stand in for any State.
type State interface {
	// Get returns the value stored under key, or an error wrapping
	// ErrNotFound when there is none.
	Get(key string) ([]byte, error)
	// Put stores a copy of value under key, replacing any previous value.
	Put(key string, value []byte) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(key string) error
	// Keys returns the keys present, sorted.
	Keys() []string
	// Size returns the total number of value bytes stored.
	Size() int64
	// SizeOf returns the length of the value under key and whether it exists.
	SizeOf(key string) (int64, bool)
}

// RangeReader is implemented by States that can read part of a value without
// materialising all of it (the pager reads only the pages it needs). Use
// NewValueReader rather than calling it directly: it falls back to Get for
// States that do not implement it.
type RangeReader interface {
	// ReadAt reads len(p) bytes of the value under key starting at byte off,
	// with the semantics of io.ReaderAt.
	ReadAt(key string, p []byte, off int64) (int, error)
}

// NewValueReader returns a reader over the value stored under key. If s
// implements RangeReader the value is read incrementally; otherwise it is
// fetched once with Get. The value is not snapshotted: a concurrent Put to key
// may be observed part-way through.
func NewValueReader(s State, key string) (io.Reader, error) {
	size, ok := s.SizeOf(key)
	if !ok {
		return nil, keyNotFound(key)
	}
	if rr, ok := s.(RangeReader); ok {
		return io.NewSectionReader(readerAtFunc(func(p []byte, off int64) (int, error) {
			return rr.ReadAt(key, p, off)
		}), 0, size), nil
	}
	v, err := s.Get(key)
	if err != nil {
		return nil, err
	}
	return &sliceReader{b: v}, nil
}

// ReadAt reads len(p) bytes of the value under key starting at byte off,
// with the semantics of io.ReaderAt: through s's RangeReader when it has
// one, otherwise from the whole value returned by Get.
func ReadAt(s State, key string, p []byte, off int64) (int, error) {
	if rr, ok := s.(RangeReader); ok {
		return rr.ReadAt(key, p, off)
	}
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("dag: state: read %q at negative offset %d", key, off)
	}
	if off >= int64(len(v)) {
		return 0, io.EOF
	}
	n := copy(p, v[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

type readerAtFunc func(p []byte, off int64) (int, error)

func (f readerAtFunc) ReadAt(p []byte, off int64) (int, error) { return f(p, off) }

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// PutJSON encodes v as JSON and stores it under key.
func PutJSON(s State, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("dag: state: encode %q as JSON: %w", key, err)
	}
	return s.Put(key, b)
}

// GetJSON decodes the JSON value stored under key into a T.
func GetJSON[T any](s State, key string) (T, error) {
	var v T
	b, err := s.Get(key)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("dag: state: decode %q as %T: %w", key, v, err)
	}
	return v, nil
}

func keyNotFound(key string) error {
	return fmt.Errorf("dag: state: key %q: %w", key, ErrNotFound)
}

// MemoryState is a State held entirely in memory. The zero value is an empty
// State ready to use. It is safe for concurrent use.
type MemoryState struct {
	// mu guards m and size.
	mu   sync.RWMutex
	m    map[string][]byte
	size int64
}

var _ State = (*MemoryState)(nil)

// NewMemoryState returns an empty MemoryState.
func NewMemoryState() *MemoryState { return &MemoryState{} }

// Get returns the stored value; the caller must not modify it.
func (s *MemoryState) Get(key string) ([]byte, error) {
	s.mu.RLock()
	v, ok := s.m[key]
	s.mu.RUnlock()
	if !ok {
		return nil, keyNotFound(key)
	}
	return v, nil
}

// Put stores a copy of value under key.
func (s *MemoryState) Put(key string, value []byte) error {
	c := make([]byte, len(value))
	copy(c, value)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string][]byte)
	}
	if old, ok := s.m[key]; ok {
		s.size -= int64(len(old))
	}
	s.m[key] = c
	s.size += int64(len(c))
	s.mu.Unlock()
	return nil
}

// Delete removes key; deleting a missing key is not an error.
func (s *MemoryState) Delete(key string) error {
	s.mu.Lock()
	if old, ok := s.m[key]; ok {
		s.size -= int64(len(old))
		delete(s.m, key)
	}
	s.mu.Unlock()
	return nil
}

// Keys returns the keys present, sorted.
func (s *MemoryState) Keys() []string {
	s.mu.RLock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	s.mu.RUnlock()
	slices.Sort(keys)
	return keys
}

// Size returns the total number of value bytes stored.
func (s *MemoryState) Size() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.size
}

// SizeOf returns the length of the value under key and whether it exists.
func (s *MemoryState) SizeOf(key string) (int64, bool) {
	s.mu.RLock()
	v, ok := s.m[key]
	s.mu.RUnlock()
	return int64(len(v)), ok
}
