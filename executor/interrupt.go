package executor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Human-in-the-loop: a node returns Interrupt(ctx, question) to wait for
// an answer; the run goes on with what does not depend on it and ends
// "waiting" (RunRecord.Questions); a resume with RunOptions.Answers gives
// the answer to the node, which reads it with InputFrom.

// ErrInterrupted is matched by the *InterruptError of a node waiting for
// input, by RunWith's error when a run ends waiting, and by the error of
// the nodes skipped because they depend on a waiting node.
var ErrInterrupted = errors.New("waiting for input")

// InterruptError is what a node returns to wait for input: Interrupt makes
// one. RunWith returns it (errors.Join of several when several nodes wait)
// when nothing else failed. It matches ErrInterrupted.
type InterruptError struct {
	// Node is the ID of the waiting node ("" outside a node).
	Node string
	// Question is what the node asks.
	Question string
}

// Error names the node and quotes the question.
func (e *InterruptError) Error() string {
	return fmt.Sprintf("executor: node %q is waiting for input: %q", e.Node, e.Question)
}

// Is matches ErrInterrupted.
func (e *InterruptError) Is(target error) bool { return target == ErrInterrupted }

// Interrupt returns the error a node returns to stop and wait for input:
// an *InterruptError naming the node of ctx and carrying question. The
// node's status becomes Waiting (it is not retried and does not fail the
// run); nodes that depend on it are skipped for now; the other nodes go on
// (nodes in flight finish, independent ones still start) and the run then
// ends with RunWith returning the *InterruptError, recorded in the
// checkpoint store as "waiting" with the question (RunRecord.Questions).
// Resuming the run with RunOptions.Answers[node] set runs the node again;
// it reads the answer with InputFrom and may ask again.
func Interrupt(ctx context.Context, question string) error {
	ie := &InterruptError{Question: question}
	if info, ok := NodeInfoFrom(ctx); ok {
		ie.Node = info.Node
	}
	return ie
}

// InputFrom returns the answer given for the node of ctx (or a context
// derived from it): the one in RunOptions.Answers, else the one recorded
// when an earlier resume gave it (so a crash after the answer does not
// lose it). ok is false when there is none.
func InputFrom(ctx context.Context) (answer string, ok bool) {
	nc, isNode := ctx.Value(nodeInfoKey{}).(*nodeCtx)
	if !isNode {
		return "", false
	}
	answer, ok = nc.ref.answers[nc.ref.g.At(int(nc.idx)).ID]
	return answer, ok
}

// Question is a question a waiting node asked (see Interrupt).
type Question struct {
	Node  string    `json:"node"`
	Text  string    `json:"text"`
	Asked time.Time `json:"asked"`
}

// validateAnswers checks RunOptions.Answers against the graph: every key
// names a node, every value is at most MaxInputBytes.
func (r *run) validateAnswers(answers map[string]string) error {
	if len(answers) == 0 {
		return nil
	}
	for _, id := range slices.Sorted(maps.Keys(answers)) {
		if _, ok := r.g.IndexOf(id); !ok {
			return fmt.Errorf("executor: RunOptions.Answers[%q]: the graph has no such node", id)
		}
		if n := len(answers[id]); n > MaxInputBytes {
			return fmt.Errorf("executor: RunOptions.Answers[%q]: %d bytes: must be ≤ %d", id, n, MaxInputBytes)
		}
	}
	return nil
}

// checkAnswers refuses answers for nodes that are not waiting in the
// recorded run.
func checkAnswers(id string, answers map[string]string, waiting []Question) error {
	for _, node := range slices.Sorted(maps.Keys(answers)) {
		if !slices.ContainsFunc(waiting, func(q Question) bool { return q.Node == node }) {
			names := make([]string, len(waiting))
			for i, q := range waiting {
				names[i] = q.Node
			}
			list := "none"
			if len(names) > 0 {
				list = strings.Join(names, ", ")
			}
			return fmt.Errorf("answer for node %q, which is not waiting for input in run %q (waiting: %s)", node, id, list)
		}
	}
	return nil
}

// interrupt records that node i is waiting for input. Called with mu
// held.
func (r *run) interrupt(i int32, ie *InterruptError, end time.Time) {
	nr := &r.res.Nodes[i]
	if ie.Node == "" {
		ie.Node = nr.ID
	}
	nr.Status, nr.Err = Waiting, ie
	r.remaining--
	r.res.Questions = append(r.res.Questions, Question{Node: nr.ID, Text: ie.Question, Asked: end})
	r.interrupts = append(r.interrupts, ie)
	r.emit(Event{Kind: NodeWaiting, Node: nr.ID, Attempt: nr.Attempts, Time: end, Status: Waiting, Err: ie})
	r.skipDescendants(i, &waitingUpstreamError{Dependency: nr.ID})
}

// waitingUpstreamError is the error of a node skipped because a dependency
// waits for input.
type waitingUpstreamError struct{ Dependency string }

func (e *waitingUpstreamError) Error() string {
	return fmt.Sprintf("dependency %q is waiting for input", e.Dependency)
}

func (e *waitingUpstreamError) Is(target error) bool { return target == ErrInterrupted }
