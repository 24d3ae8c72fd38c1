package remote

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/cemaf-go/cemaf/dag"
)

// Spec marks a node of a graph to run on a worker that serves Capability.
// The node's function runs there on a State holding only the keys in Reads;
// the keys in Writes that it puts or deletes come back into the
// coordinator's State.
type Spec struct {
	// Capability names what the node needs ("llm", "index"): a subject
	// token of 1 to 32 characters among a-z, A-Z, 0-9, '_' and '-'.
	// Required.
	Capability string
	// Func is the name the function is registered under on the workers
	// (Registry.Register). Empty means the node's ID.
	Func string
	// Reads are the State keys the node reads: their values travel with
	// the task. Reading any other key on the worker fails with
	// ErrUndeclaredKey.
	Reads []string
	// Writes are the State keys the node may put or delete. Writing any
	// other key on the worker fails with ErrUndeclaredKey.
	Writes []string
}

// validate checks the spec of node id; the error names the node and the
// field.
func (s *Spec) validate(id string) error {
	if err := checkToken("Spec.Capability", s.Capability); err != nil {
		return fmt.Errorf("remote: node %q: %w", id, err)
	}
	for _, list := range []struct {
		name string
		keys []string
	}{{"Spec.Reads", s.Reads}, {"Spec.Writes", s.Writes}} {
		if len(list.keys) > maxEntries {
			return fmt.Errorf("remote: node %q: %s has %d keys: at most %d", id, list.name, len(list.keys), maxEntries)
		}
		for i, k := range list.keys {
			if k == "" || len(k) > maxField {
				return fmt.Errorf("remote: node %q: %s[%d] = %q: keys must be 1 to %d bytes", id, list.name, i, k, maxField)
			}
			if slices.Contains(list.keys[:i], k) {
				return fmt.Errorf("remote: node %q: %s lists %q twice", id, list.name, k)
			}
		}
	}
	if len(s.Func) > maxField {
		return fmt.Errorf("remote: node %q: Spec.Func is %d bytes: at most %d", id, len(s.Func), maxField)
	}
	return nil
}

// checkToken validates a name used as a subject token.
func checkToken(field, v string) error {
	ok := len(v) > 0 && len(v) <= 32
	for i := 0; ok && i < len(v); i++ {
		c := v[i]
		ok = c == '_' || c == '-' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
	}
	if !ok {
		return fmt.Errorf("%s = %q: must be 1 to 32 characters among a-z, A-Z, 0-9, '_' and '-'", field, v)
	}
	return nil
}

// Priority bands. JetStream has no priority queue, so each capability has
// one subject (and one consumer) per band, and workers pull the higher bands
// first.
const (
	bandHigh   = 0 // Node.Priority > 0
	bandNormal = 1 // Node.Priority == 0
	bandLow    = 2 // Node.Priority < 0
	numBands   = 3
)

var bandNames = [numBands]string{"high", "normal", "low"}

// bandOf maps a node priority to its band.
func bandOf(priority int) int {
	switch {
	case priority > 0:
		return bandHigh
	case priority < 0:
		return bandLow
	}
	return bandNormal
}

// Registry maps the (capability, name) of a task to the function a worker
// runs for it. The zero value is an empty registry ready to use; it is safe
// for concurrent use. A program that builds the same graph on every device
// registers its remote nodes with RegisterNode, so that workers run the very
// dag.Func the node would run locally.
type Registry struct {
	// mu guards funcs.
	mu    sync.RWMutex
	funcs map[string]map[string]dag.Func // capability → name → func
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry { return &Registry{} }

// Register makes fn the function run for tasks of capability under name. It
// fails, naming the field, for an invalid capability, an empty name, a nil
// fn, or a name already registered for that capability.
func (r *Registry) Register(capability, name string, fn dag.Func) error {
	if err := checkToken("capability", capability); err != nil {
		return fmt.Errorf("remote: register %q: %w", name, err)
	}
	if name == "" || len(name) > maxField {
		return fmt.Errorf("remote: register: name %q: must be 1 to %d bytes", name, maxField)
	}
	if fn == nil {
		return fmt.Errorf("remote: register %q (capability %q): nil function", name, capability)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.funcs == nil {
		r.funcs = make(map[string]map[string]dag.Func)
	}
	m := r.funcs[capability]
	if m == nil {
		m = make(map[string]dag.Func)
		r.funcs[capability] = m
	}
	if _, dup := m[name]; dup {
		return fmt.Errorf("remote: register %q (capability %q): already registered", name, capability)
	}
	m[name] = fn
	return nil
}

// RegisterNode registers n.Run under spec.Func (or n.ID) for
// spec.Capability: what a worker needs to run the node that
// Coordinator.Node makes remote with the same spec.
func (r *Registry) RegisterNode(n dag.Node, spec Spec) error {
	if err := spec.validate(n.ID); err != nil {
		return err
	}
	return r.Register(spec.Capability, cmp.Or(spec.Func, n.ID), n.Run)
}

// lookup returns the function for (capability, name).
func (r *Registry) lookup(capability, name string) (dag.Func, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn, ok := r.funcs[capability][name]
	return fn, ok
}

// Capabilities returns the capabilities that have at least one function,
// sorted.
func (r *Registry) Capabilities() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.funcs))
}
