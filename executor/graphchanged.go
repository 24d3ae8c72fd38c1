package executor

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cemaf-go/cemaf/dag"
)

// GraphChangedError is the error of a resume with a graph that differs from
// the run's original one. It matches ErrGraphChanged.
type GraphChangedError struct {
	RunID                    string
	AddedNodes, RemovedNodes []string
	AddedEdges, RemovedEdges [][2]string
	// BranchesChanged lists the nodes present in both graphs that became
	// or stopped being branch nodes (dag.Node.Branch).
	BranchesChanged []string
	OrderChanged    bool // same nodes, edges and branches in a different order
}

// Error lists what changed: added and removed nodes and edges.
func (e *GraphChangedError) Error() string {
	var parts []string
	list := func(what string, ids []string) {
		if len(ids) > 0 {
			parts = append(parts, what+" "+strings.Join(ids, ", "))
		}
	}
	edges := func(what string, es [][2]string) {
		if len(es) > 0 {
			s := make([]string, len(es))
			for i, e := range es {
				s[i] = e[0] + " -> " + e[1]
			}
			list(what, s)
		}
	}
	list("added nodes", e.AddedNodes)
	list("removed nodes", e.RemovedNodes)
	edges("added edges", e.AddedEdges)
	edges("removed edges", e.RemovedEdges)
	list("branch setting changed on", e.BranchesChanged)
	if e.OrderChanged {
		parts = append(parts, "node order changed")
	}
	return fmt.Sprintf("executor: cannot resume run %q: graph changed since the run started: %s", e.RunID, strings.Join(parts, "; "))
}

// Is matches ErrGraphChanged.
func (e *GraphChangedError) Is(target error) bool { return target == ErrGraphChanged }

func diffGraphs(id string, old graphRecord, g *dag.Graph) *GraphChangedError {
	e := &GraphChangedError{RunID: id}
	newNodes := make([]string, g.Len())
	for i := range newNodes {
		newNodes[i] = g.At(i).ID
	}
	e.AddedNodes, e.RemovedNodes = diffSets(newNodes, old.Nodes)
	e.AddedEdges, e.RemovedEdges = diffSets(g.Edges(), old.Edges)
	var branches []string
	for i := range g.Len() {
		if g.At(i).Branch {
			branches = append(branches, g.At(i).ID)
		}
	}
	became, stopped := diffSets(branches, old.Branches)
	for _, id := range append(became, stopped...) {
		if slices.Contains(newNodes, id) && slices.Contains(old.Nodes, id) {
			e.BranchesChanged = append(e.BranchesChanged, id)
		}
	}
	if len(e.AddedNodes)+len(e.RemovedNodes)+len(e.AddedEdges)+len(e.RemovedEdges)+len(e.BranchesChanged) == 0 {
		e.OrderChanged = true
	}
	return e
}

func diffSets[T comparable](cur, old []T) (added, removed []T) {
	oldSet := make(map[T]bool, len(old))
	for _, v := range old {
		oldSet[v] = true
	}
	curSet := make(map[T]bool, len(cur))
	for _, v := range cur {
		curSet[v] = true
		if !oldSet[v] {
			added = append(added, v)
		}
	}
	for _, v := range old {
		if !curSet[v] {
			removed = append(removed, v)
		}
	}
	return added, removed
}
