package main

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/cemaf-go/cemaf/dag"
)

// One Runtime serves many runs. serve shows the way: the corpus index is
// built once into a State of its own and shared read-only; each request's
// run gets an overlay whose reads fall through to the index and whose
// writes go to a namespace of the runtime's pager (its keys prefixed with
// "runs/<run ID>/"), which the request clears when it ends. The runs share
// the pager's RAM budget, and the memory guard pages them out like any
// other value; no run sees another's keys.

// namespace is the part of a State under a key prefix, as a State of its
// own. It tracks the keys it wrote, so that Clear needs no scan.
type namespace struct {
	s      dag.State
	prefix string

	// mu guards keys.
	mu   sync.Mutex
	keys map[string]bool
}

var (
	_ dag.State       = (*namespace)(nil)
	_ dag.RangeReader = (*namespace)(nil)
)

func newNamespace(s dag.State, prefix string) *namespace {
	return &namespace{s: s, prefix: prefix, keys: map[string]bool{}}
}

func (n *namespace) Get(key string) ([]byte, error) { return n.s.Get(n.prefix + key) }

func (n *namespace) Put(key string, value []byte) error {
	if err := n.s.Put(n.prefix+key, value); err != nil {
		return err
	}
	n.mu.Lock()
	n.keys[key] = true
	n.mu.Unlock()
	return nil
}

func (n *namespace) Delete(key string) error {
	if err := n.s.Delete(n.prefix + key); err != nil {
		return err
	}
	n.mu.Lock()
	delete(n.keys, key)
	n.mu.Unlock()
	return nil
}

func (n *namespace) Keys() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Sorted(maps.Keys(n.keys))
}

func (n *namespace) Size() int64 {
	var total int64
	for _, k := range n.Keys() {
		if sz, ok := n.SizeOf(k); ok {
			total += sz
		}
	}
	return total
}

func (n *namespace) SizeOf(key string) (int64, bool) { return n.s.SizeOf(n.prefix + key) }

// ReadAt reads part of a value through the State's RangeReader.
func (n *namespace) ReadAt(key string, p []byte, off int64) (int, error) {
	return dag.ReadAt(n.s, n.prefix+key, p, off)
}

// Clear deletes every key the namespace wrote.
func (n *namespace) Clear() error {
	var errs []error
	for _, k := range n.Keys() {
		errs = append(errs, n.Delete(k))
	}
	return errors.Join(errs...)
}

// runNamespace is the key prefix of a run's namespace.
func runNamespace(runID string) string {
	return "runs/" + strings.ReplaceAll(runID, "/", "_") + "/"
}

// overlay is a State for one request: reads fall through to the shared,
// read-only base (the index); writes stay in the request's own State.
type overlay struct {
	base  dag.State
	local dag.State

	// mu guards deleted.
	mu      sync.Mutex
	deleted map[string]bool
}

var (
	_ dag.State       = (*overlay)(nil)
	_ dag.RangeReader = (*overlay)(nil)
)

func newOverlay(base, local dag.State) *overlay {
	return &overlay{base: base, local: local, deleted: map[string]bool{}}
}

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

// ReadAt reads part of a value, from the request's own State when it
// holds key (or hides it), else from the base, each through its
// RangeReader: a posting list larger than the pager's budget is read page
// by page, never as a whole.
func (o *overlay) ReadAt(key string, p []byte, off int64) (int, error) {
	if _, ok := o.local.SizeOf(key); ok || o.hidden(key) {
		return dag.ReadAt(o.local, key, p, off)
	}
	return dag.ReadAt(o.base, key, p, off)
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

// MemoryLimit is the RAM budget of the State the namespace is part of (0:
// none known), so that an index built in a namespace sizes its buffers as
// one built in the State itself.
func (n *namespace) MemoryLimit() int64 {
	if m, ok := n.s.(memoryLimited); ok {
		return m.MemoryLimit()
	}
	return 0
}
