package dag

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/cemaf-go/cemaf/internal/readyq"
)

// Graph is a validated, immutable directed acyclic graph of nodes. Build one
// with New. A Graph is safe for concurrent use and may be run any number of
// times, concurrently, by executors.
//
// Besides the ID-based methods, a Graph offers an index-based view for
// schedulers: nodes are numbered 0..Len()-1 in the order given to New, and
// Dependencies, Dependents and Order return indices. Slices returned by the
// index-based methods are shared and must not be modified.
type Graph struct {
	nodes []Node
	index map[string]int32
	// Compressed adjacency: the dependencies of node i are
	// deps[depOff[i]:depOff[i+1]], its dependents children[childOff[i]:childOff[i+1]].
	depOff, deps       []int32
	childOff, children []int32
	order              []int32 // topological order
	level              []int32 // level[i]: longest path from a root
	nlevels            int
}

// New validates nodes and returns the Graph they form. Nodes keep the order
// given (it breaks priority ties). New keeps the Node values, including their
// DependsOn slices, which the caller must not modify afterwards. A dependency
// listed twice counts once.
//
// Validation reports every problem at once, joined with errors.Join, each a
// *ValidationError wrapping one of ErrEmptyID, ErrDuplicateID,
// ErrUnknownDependency, ErrSelfDependency, ErrNoRunFunc, ErrInvalidSetting or
// ErrCycle. Cost: O((nodes + edges) · log nodes).
func New(nodes ...Node) (*Graph, error) {
	n := len(nodes)
	if n > 1<<31-1 {
		return nil, fmt.Errorf("dag: %d nodes: at most %d are supported", n, 1<<31-1)
	}
	g := &Graph{nodes: nodes, index: make(map[string]int32, n)}
	var errs []error
	for i := range nodes {
		nd := &nodes[i]
		switch {
		case nd.ID == "":
			errs = append(errs, &ValidationError{Err: ErrEmptyID, Index: i})
			continue
		case nd.Run == nil:
			errs = append(errs, &ValidationError{Err: ErrNoRunFunc, Node: nd.ID, Index: i})
		case nd.Timeout < 0:
			errs = append(errs, &ValidationError{Err: ErrInvalidSetting, Node: nd.ID, Index: i,
				Detail: fieldError("Timeout", nd.Timeout, "must be ≥ 0 (0 = the executor's default)").Error()})
		}
		if nd.Class > IO {
			errs = append(errs, &ValidationError{Err: ErrInvalidSetting, Node: nd.ID, Index: i,
				Detail: fieldError("Class", nd.Class, "must be dag.CPU or dag.IO").Error()})
		}
		if nd.Retry != nil {
			if err := nd.Retry.Validate(); err != nil {
				errs = append(errs, &ValidationError{Err: ErrInvalidSetting, Node: nd.ID, Index: i, Detail: err.Error()})
			}
		}
		if first, dup := g.index[nd.ID]; dup {
			errs = append(errs, &ValidationError{Err: ErrDuplicateID, Node: nd.ID, Index: i, Other: strconv.Itoa(int(first))})
			continue
		}
		g.index[nd.ID] = int32(i)
	}
	errs = g.link(errs)
	if cyc := g.sort(); cyc != nil {
		errs = append(errs, &ValidationError{Err: ErrCycle, Node: cyc[0], Index: int(g.index[cyc[0]]), Cycle: cyc})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return g, nil
}

// link resolves DependsOn into the compressed adjacency, skipping (and
// reporting) unknown and self dependencies, and counting duplicates once.
func (g *Graph) link(errs []error) []error {
	n := len(g.nodes)
	total := 0
	for i := range g.nodes {
		total += len(g.nodes[i].DependsOn)
	}
	g.depOff = make([]int32, n+1)
	g.deps = make([]int32, 0, total)
	childCount := make([]int32, n+1)
	seen := make([]int32, n) // seen[d] == i+1: d already a dependency of i
	for i := range g.nodes {
		nd := &g.nodes[i]
		self, ok := g.index[nd.ID]
		owner := ok && self == int32(i) // false for a duplicate or empty ID
		for _, dep := range nd.DependsOn {
			d, ok := g.index[dep]
			switch {
			case dep == nd.ID:
				if owner {
					errs = append(errs, &ValidationError{Err: ErrSelfDependency, Node: nd.ID, Index: i})
				}
			case !ok:
				if nd.ID != "" {
					errs = append(errs, &ValidationError{Err: ErrUnknownDependency, Node: nd.ID, Index: i, Other: dep})
				}
			case !owner || seen[d] == int32(i)+1:
			default:
				seen[d] = int32(i) + 1
				g.deps = append(g.deps, d)
				childCount[d+1]++
			}
		}
		g.depOff[i+1] = int32(len(g.deps))
	}
	g.childOff = childCount
	for i := 1; i <= n; i++ {
		g.childOff[i] += g.childOff[i-1]
	}
	g.children = make([]int32, len(g.deps))
	fill := slices.Clone(g.childOff[:n])
	for i := range n {
		for _, d := range g.deps[g.depOff[i]:g.depOff[i+1]] {
			g.children[fill[d]] = int32(i)
			fill[d]++
		}
	}
	return errs
}

// sort computes the topological order (Kahn's algorithm, ready nodes taken by
// priority then index) and levels. It returns a cycle path if there is one.
func (g *Graph) sort() []string {
	n := len(g.nodes)
	indeg := make([]int32, n)
	prio := make([]int, n)
	for i := range n {
		indeg[i] = g.depOff[i+1] - g.depOff[i]
		prio[i] = g.nodes[i].Priority
	}
	q := readyq.New(readyq.Uniform(prio), n)
	for i := range n {
		if indeg[i] == 0 {
			q.Push(int32(i))
		}
	}
	g.order = make([]int32, 0, n)
	g.level = make([]int32, n)
	for q.Len() > 0 {
		i := q.Pop()
		g.order = append(g.order, i)
		if l := int(g.level[i]) + 1; l > g.nlevels {
			g.nlevels = l
		}
		for _, c := range g.children[g.childOff[i]:g.childOff[i+1]] {
			g.level[c] = max(g.level[c], g.level[i]+1)
			if indeg[c]--; indeg[c] == 0 {
				q.Push(c)
			}
		}
	}
	if len(g.order) == n {
		return nil
	}
	return g.findCycle(indeg)
}

// findCycle walks dependencies among the nodes Kahn's algorithm could not
// order (each has a remaining dependency) until a node repeats.
func (g *Graph) findCycle(indeg []int32) []string {
	start := int32(-1)
	for i := range indeg {
		if indeg[i] > 0 {
			start = int32(i)
			break
		}
	}
	pos := map[int32]int{}
	var path []int32
	for v := start; ; {
		if p, ok := pos[v]; ok {
			path = path[p:]
			break
		}
		pos[v] = len(path)
		path = append(path, v)
		for _, d := range g.deps[g.depOff[v]:g.depOff[v+1]] {
			if indeg[d] > 0 {
				v = d
				break
			}
		}
	}
	// path follows "depends on"; print it in the direction of the edges
	// (a -> b: b depends on a), starting at the earliest node.
	slices.Reverse(path)
	first := 0
	for k := range path {
		if path[k] < path[first] {
			first = k
		}
	}
	cyc := make([]string, 0, len(path)+1)
	for k := range path {
		cyc = append(cyc, g.nodes[path[(first+k)%len(path)]].ID)
	}
	return append(cyc, cyc[0])
}

// Len returns the number of nodes.
func (g *Graph) Len() int { return len(g.nodes) }

// Node returns the node with the given ID.
func (g *Graph) Node(id string) (Node, bool) {
	i, ok := g.index[id]
	if !ok {
		return Node{}, false
	}
	return g.nodes[i], true
}

// Nodes returns the nodes in the order given to New.
func (g *Graph) Nodes() []Node { return slices.Clone(g.nodes) }

// At returns node i (0 ≤ i < Len()) without copying it.
func (g *Graph) At(i int) *Node { return &g.nodes[i] }

// IndexOf returns the index of the node with the given ID.
func (g *Graph) IndexOf(id string) (int, bool) {
	i, ok := g.index[id]
	return int(i), ok
}

// Dependencies returns the indices of node i's dependencies (shared slice).
func (g *Graph) Dependencies(i int) []int32 { return g.deps[g.depOff[i]:g.depOff[i+1]] }

// Dependents returns the indices of the nodes that depend on node i (shared
// slice).
func (g *Graph) Dependents(i int) []int32 { return g.children[g.childOff[i]:g.childOff[i+1]] }

// Order returns node indices in topological order (shared slice).
func (g *Graph) Order() []int32 { return g.order }

// TopologicalOrder returns the node IDs in a deterministic topological order:
// among nodes whose dependencies are all placed, higher Priority first, then
// the order given to New.
func (g *Graph) TopologicalOrder() []string { return g.ids(g.order) }

// Levels groups the nodes by depth: level 0 holds the roots, and a node's
// level is one more than the deepest of its dependencies. Nodes of one level
// do not depend on each other and may run together. Within a level, nodes
// keep the topological order.
func (g *Graph) Levels() [][]string {
	out := make([][]string, g.nlevels)
	for _, i := range g.order {
		l := g.level[i]
		out[l] = append(out[l], g.nodes[i].ID)
	}
	return out
}

// Roots returns the nodes without dependencies, in topological order.
func (g *Graph) Roots() []string {
	return g.filter(func(i int32) bool { return g.depOff[i+1] == g.depOff[i] })
}

// Leaves returns the nodes no other node depends on, in topological order.
func (g *Graph) Leaves() []string {
	return g.filter(func(i int32) bool { return g.childOff[i+1] == g.childOff[i] })
}

// Ancestors returns every node that id depends on, directly or not, in
// topological order. It fails with ErrUnknownNode for an unknown id.
func (g *Graph) Ancestors(id string) ([]string, error) {
	return g.reach(id, g.depOff, g.deps)
}

// Descendants returns every node that depends on id, directly or not, in
// topological order. It fails with ErrUnknownNode for an unknown id.
func (g *Graph) Descendants(id string) ([]string, error) {
	return g.reach(id, g.childOff, g.children)
}

// Edges returns every edge as a pair {dependency, dependent}, ordered by
// dependent (in the order given to New), then by dependency as listed.
func (g *Graph) Edges() [][2]string {
	out := make([][2]string, 0, len(g.deps))
	for i := range g.nodes {
		for _, d := range g.Dependencies(i) {
			out = append(out, [2]string{g.nodes[d].ID, g.nodes[i].ID})
		}
	}
	return out
}

func (g *Graph) reach(id string, off, adj []int32) ([]string, error) {
	start, ok := g.index[id]
	if !ok {
		return nil, unknownNode(id)
	}
	mark := make([]bool, len(g.nodes))
	stack := []int32{start}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, w := range adj[off[v]:off[v+1]] {
			if !mark[w] {
				mark[w] = true
				stack = append(stack, w)
			}
		}
	}
	return g.filter(func(i int32) bool { return mark[i] }), nil
}

func (g *Graph) filter(keep func(int32) bool) []string {
	var out []string
	for _, i := range g.order {
		if keep(i) {
			out = append(out, g.nodes[i].ID)
		}
	}
	return out
}

func (g *Graph) ids(idx []int32) []string {
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = g.nodes[i].ID
	}
	return out
}
