package main

import (
	"errors"
	"slices"
	"sync"

	"github.com/cemaf-go/cemaf/dag"
)

// overlay is a State for one request: reads fall through to the shared,
// read-only base (the index); writes stay in the request's own memory.
type overlay struct {
	base  dag.State
	local dag.MemoryState

	// mu guards deleted.
	mu      sync.Mutex
	deleted map[string]bool
}

var _ dag.State = (*overlay)(nil)

func newOverlay(base dag.State) *overlay { return &overlay{base: base, deleted: map[string]bool{}} }

func (o *overlay) hidden(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.deleted[key]
}

func (o *overlay) Get(key string) ([]byte, error) {
	v, err := o.local.Get(key)
	if err == nil || !errors.Is(err, dag.ErrNotFound) || o.hidden(key) {
		return v, err
	}
	return o.base.Get(key)
}

func (o *overlay) Put(key string, value []byte) error {
	o.mu.Lock()
	delete(o.deleted, key)
	o.mu.Unlock()
	return o.local.Put(key, value)
}

func (o *overlay) Delete(key string) error {
	o.mu.Lock()
	o.deleted[key] = true
	o.mu.Unlock()
	return o.local.Delete(key)
}

func (o *overlay) Keys() []string {
	keys := o.local.Keys()
	for _, k := range o.base.Keys() {
		if !o.hidden(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

func (o *overlay) Size() int64 {
	var n int64
	for _, k := range o.Keys() {
		s, _ := o.SizeOf(k)
		n += s
	}
	return n
}

func (o *overlay) SizeOf(key string) (int64, bool) {
	if n, ok := o.local.SizeOf(key); ok {
		return n, true
	}
	if o.hidden(key) {
		return 0, false
	}
	return o.base.SizeOf(key)
}
