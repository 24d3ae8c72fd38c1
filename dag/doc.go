// Package dag is the graph model of cemaf: agents described as directed
// acyclic graphs of nodes that exchange data through a shared State.
//
// # Model
//
// A Node is a unit of work (an LLM call, a tool, a transform): an ID, a Func
// and the IDs of the nodes it depends on, plus optional settings read by the
// executor (timeout, retry policy, priority, optional, and its Class: CPU
// work that computes on this device, or IO work that waits on an LLM, the
// network or disk, each bounded by its own concurrency limit), and whether
// it is a branch (its outcome chooses which of its dependents run; see
// Node.Branch for the rule). New
// validates a list of nodes and returns an immutable *Graph: IDs must be
// non-empty and unique, every dependency must name a node, no node may
// depend on itself and there must be no cycle. Every problem is reported at once, each as a
// *ValidationError wrapping a sentinel (ErrCycle, ErrDuplicateID, …) that
// names the nodes involved; a cycle is reported with its path, "a -> b -> a".
//
// A Graph gives a deterministic topological order (ties broken by Priority,
// then by the order nodes were given), levels of nodes that may run together,
// roots, leaves, ancestors and descendants, an index-based view for
// schedulers, and exports to Graphviz DOT and Mermaid. Edges point from a
// dependency to its dependent: a -> b means b runs after a.
//
// State is the key/value store nodes share: []byte values with exact
// accounting of value bytes, typed JSON helpers (PutJSON, GetJSON), and
// RangeReader for reading part of a large value (NewValueReader), and
// ValueCreator for writing one in parts (NewValueWriter: a State that
// spools to files, or a wrapper that decodes the value as it arrives, need
// not hold it whole in memory). MemoryState keeps it all in
// memory; package paging provides a State that keeps a RAM budget and spills
// cold values to an LZ4-compressed bbolt file, and can stand in wherever a
// State is expected.
//
// Package dag imports nothing else of cemaf and starts no goroutines. Graphs
// and MemoryStates are safe for concurrent use.
//
// # Caveats
//
// New keeps the Node values given to it; do not modify their DependsOn slices
// afterwards. Values returned by State.Get are shared, not copied: treat them
// as read-only. Sizes count value bytes only, not keys or map overhead.
package dag
