package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cemaf-go/cemaf/dag"
)

// Conditional edges: a branch node (dag.Node.Branch) calls Choose while it
// runs; when it succeeds, only the edges to the dependents it chose are
// taken. A node whose dependencies have all finished runs if at least one
// of its incoming edges was taken, and is skipped with ErrNotChosen
// otherwise (see dag.Node.Branch for the rule).

// ErrNotChosen is the error of a node skipped because none of its incoming
// edges was taken: the branch nodes it depends on chose other dependents,
// or the dependencies it has were themselves skipped as not chosen.
var ErrNotChosen = errors.New("not chosen by a branch")

// choice is the choice of the running attempt of a branch node. Guarded by
// run.mu.
type choice struct {
	attempt int32
	made    bool    // Choose was called by this attempt
	ids     []int32 // the dependents chosen, in the order first given
	err     error   // the first invalid Choose of this attempt
}

// Choose records which dependents of the running branch node (one with
// dag.Node.Branch set) run once it succeeds; the others are skipped with
// ErrNotChosen unless another dependency lets them run. ctx is the node's
// context (or one derived from it). Calls during one attempt add to the
// choice; Choose with no ID chooses none; a retried node chooses afresh.
// A branch node that returns nil without calling Choose fails.
//
// Choose fails, naming the node, when ctx is not a running node's, when
// the node is not a branch, or when an ID is not one of its dependents;
// such a mistake also fails the node's attempt (without retry), whatever
// it returns. Choose is safe to call from any goroutine of the node; it
// costs one lock of the run.
func Choose(ctx context.Context, ids ...string) error {
	nc, ok := ctx.Value(nodeInfoKey{}).(*nodeCtx)
	if !ok {
		return errors.New("executor: Choose called outside a running node")
	}
	return nc.ref.choose(nc, ids)
}

func (f *runRef) choose(nc *nodeCtx, ids []string) error {
	r := f.r
	node := f.g.At(int(nc.idx))
	r.mu.Lock()
	defer r.mu.Unlock()
	if f.ended || f.slots[nc.idx].token.Load() != f.tok(nc.attempt) {
		return fmt.Errorf("executor: Choose from node %q after its attempt %d ended", node.ID, nc.attempt)
	}
	var err error
	if !node.Branch {
		err = fmt.Errorf("executor: Choose from node %q, which is not a branch (set dag.Node.Branch)", node.ID)
	}
	var ch *choice
	if err == nil {
		ch = &r.choices[nc.idx]
		ch.made = true
		for _, id := range ids {
			j, ok := f.g.IndexOf(id)
			if !ok || !slices.Contains(f.g.Dependents(int(nc.idx)), int32(j)) {
				err = fmt.Errorf("executor: branch node %q chose %q, which is not one of its dependents (%s)", node.ID, id, dependentIDs(f.g, nc.idx))
				break
			}
			if !slices.Contains(ch.ids, int32(j)) {
				ch.ids = append(ch.ids, int32(j))
			}
		}
	}
	if err != nil && ch != nil && ch.err == nil {
		ch.err = err
	}
	if err != nil && ch == nil {
		// Not a branch: remember the mistake on the slot's choice entry if
		// the graph has any, else in the run's list.
		r.choiceFaults = append(r.choiceFaults, choiceFault{idx: nc.idx, attempt: nc.attempt, err: err})
	}
	return err
}

// choiceFault is an invalid Choose from a node that is not a branch.
type choiceFault struct {
	idx     int32
	attempt int32
	err     error
}

func dependentIDs(g *dag.Graph, i int32) string {
	deps := g.Dependents(int(i))
	if len(deps) == 0 {
		return "it has none"
	}
	ids := make([]string, len(deps))
	for k, d := range deps {
		ids[k] = g.At(int(d)).ID
	}
	return strings.Join(ids, ", ")
}

// beginChoice resets the choice of branch node i for a new attempt.
// Called with mu held.
func (r *run) beginChoice(i, attempt int32) {
	ch := &r.choices[i]
	*ch = choice{attempt: attempt, ids: ch.ids[:0]}
}

// choiceError is the error that fails a successful attempt of node i
// because of its choice: an invalid Choose, or a branch that made none.
// Called with mu held.
func (r *run) choiceError(i, attempt int32) error {
	for k, f := range r.choiceFaults {
		if f.idx == i && f.attempt == attempt {
			r.choiceFaults = slices.Delete(r.choiceFaults, k, k+1)
			return dag.Permanent(f.err)
		}
	}
	if !r.g.At(int(i)).Branch {
		return nil
	}
	ch := &r.choices[i]
	switch {
	case ch.err != nil:
		return dag.Permanent(ch.err)
	case !ch.made:
		return dag.Permanent(fmt.Errorf("executor: branch node %q returned without calling executor.Choose", r.g.At(int(i)).ID))
	}
	return nil
}

// chosenIDs returns the IDs chosen by branch node i. Called with mu held.
func (r *run) chosenIDs(i int32) []string {
	ids := r.choices[i].ids
	out := make([]string, len(ids))
	for k, j := range ids {
		out[k] = r.g.At(int(j)).ID
	}
	return out
}

// takes reports whether the edge from finished node i to its dependent c is
// taken. Called with mu held.
func (r *run) takes(i, c int32) bool {
	if !r.g.At(int(i)).Branch {
		return true
	}
	return r.res.Nodes[i].Status == Succeeded && slices.Contains(r.choices[i].ids, c)
}

// settle decides the fate of node c once all its dependencies have
// finished: queued to run, or, when no incoming edge was taken, skipped as
// not chosen. While preparing a resume it only skips: the roots are
// queued by prepare. Called with mu held.
func (r *run) settle(c int32) {
	if r.taken != nil && r.taken[c] == 0 && len(r.g.Dependencies(int(c))) > 0 {
		r.skipNotChosen(c)
		return
	}
	if r.preparing {
		return
	}
	r.queue(c)
}

// queue makes node c ready. Called with mu held.
func (r *run) queue(c int32) {
	if r.readyPaused != nil {
		r.readyPaused[c] = r.res.Paused
	}
	cl := r.slots[c].class
	r.unreleased[cl]--
	r.ready[cl].Push(c)
}

// skipNotChosen skips node c, which no edge reached, and passes that on to
// its dependents. Called with mu held.
func (r *run) skipNotChosen(c int32) {
	nr := &r.res.Nodes[c]
	nr.Status, nr.Err = Skipped, ErrNotChosen
	r.remaining--
	r.unreleased[r.slots[c].class]--
	r.emit(Event{Kind: NodeSkipped, Node: nr.ID, Time: r.now(), Status: Skipped, Err: ErrNotChosen})
	for _, d := range r.g.Dependents(int(c)) {
		if r.indeg[d]--; r.indeg[d] == 0 && r.res.Nodes[d].Status == Pending {
			r.settle(d)
		}
	}
}
