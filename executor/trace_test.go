package executor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

type spanKey struct{}

// recTracer records what the executor tells a Tracer and puts a "span"
// value in the contexts it returns.
type recTracer struct {
	mu       sync.Mutex
	runs     []executor.RunTrace
	runEnds  []executor.RunOutcome
	nodes    []executor.NodeTrace
	nodeEnds map[string][]executor.NodeOutcome
	panicAt  string
}

func (t *recTracer) TraceRun(ctx context.Context, run executor.RunTrace) (context.Context, func(executor.RunOutcome)) {
	t.mu.Lock()
	t.runs = append(t.runs, run)
	t.mu.Unlock()
	return context.WithValue(ctx, spanKey{}, "run:"+run.RunID), func(o executor.RunOutcome) {
		t.mu.Lock()
		t.runEnds = append(t.runEnds, o)
		t.mu.Unlock()
	}
}

func (t *recTracer) TraceNode(ctx context.Context, node executor.NodeTrace) (context.Context, func(executor.NodeOutcome)) {
	if node.Node == t.panicAt {
		panic("tracer bug")
	}
	t.mu.Lock()
	t.nodes = append(t.nodes, node)
	t.mu.Unlock()
	parent, _ := ctx.Value(spanKey{}).(string)
	return context.WithValue(ctx, spanKey{}, parent+"/"+node.Node), func(o executor.NodeOutcome) {
		t.mu.Lock()
		if t.nodeEnds == nil {
			t.nodeEnds = map[string][]executor.NodeOutcome{}
		}
		t.nodeEnds[node.Node] = append(t.nodeEnds[node.Node], o)
		t.mu.Unlock()
	}
}

func TestTracerWrapsRunsAndNodes(t *testing.T) {
	tr := &recTracer{}
	rec := &recorder{}
	e := mustExec(t, executor.Options{Tracer: tr, Observers: []executor.Observer{rec}})
	var seen sync.Map
	var flaky int
	g := mustGraph(t,
		dag.Node{ID: "a", Run: func(ctx context.Context, _ dag.State) error {
			seen.Store("a", ctx.Value(spanKey{}))
			info, ok := executor.NodeInfoFrom(ctx)
			assert.True(t, ok)
			assert.Equal(t, "a", info.Node)
			assert.True(t, executor.Emit(ctx, executor.Chunk{Kind: "token", Text: "x"}), "Emit works through the tracer's context")
			return nil
		}},
		dag.Node{ID: "b", DependsOn: []string{"a"}, Timeout: time.Minute, Retry: &dag.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond}, Run: func(ctx context.Context, _ dag.State) error {
			seen.Store("b", ctx.Value(spanKey{}))
			_, hasDeadline := ctx.Deadline()
			assert.True(t, hasDeadline, "the node's timeout applies to the tracer's context")
			if flaky++; flaky == 1 {
				return errors.New("flaky")
			}
			return nil
		}},
	)
	res, err := e.RunWith(context.Background(), g, dag.NewMemoryState(), executor.RunOptions{ID: "r1"})
	require.NoError(t, err)
	v, _ := seen.Load("a")
	assert.Equal(t, "run:r1/a", v, "node contexts derive from the run's traced context")
	v, _ = seen.Load("b")
	assert.Equal(t, "run:r1/b", v)

	require.Len(t, tr.runs, 1)
	assert.Equal(t, executor.RunTrace{RunID: "r1", Nodes: 2}, tr.runs[0])
	require.Len(t, tr.runEnds, 1)
	assert.Equal(t, "succeeded", tr.runEnds[0].Status)
	assert.Equal(t, res.Start, tr.runEnds[0].Start)
	assert.Equal(t, res.End, tr.runEnds[0].End)
	require.Len(t, tr.nodes, 3)
	assert.Equal(t, []int{1, 2}, []int{tr.nodes[1].Attempt, tr.nodes[2].Attempt})
	require.Len(t, tr.nodeEnds["b"], 2)
	assert.Equal(t, executor.Pending, tr.nodeEnds["b"][0].Status, "a failed attempt that will be retried")
	assert.ErrorContains(t, tr.nodeEnds["b"][0].Err, "flaky")
	assert.Equal(t, executor.Succeeded, tr.nodeEnds["b"][1].Status)
	assert.False(t, tr.nodeEnds["b"][1].End.Before(res.Start))
	fin := rec.ofKind(executor.RunFinished)
	require.Len(t, fin, 1)
	assert.Equal(t, "succeeded", fin[0].RunStatus)
}

func TestTracerPanicsAreContained(t *testing.T) {
	tr := &recTracer{panicAt: "b"}
	e := mustExec(t, executor.Options{Tracer: tr})
	g := mustGraph(t, dag.Node{ID: "a", Run: noop}, dag.Node{ID: "b", Run: noop, Retry: &dag.RetryPolicy{MaxAttempts: 3}})
	res, err := e.Run(context.Background(), g, dag.NewMemoryState())
	var pe *executor.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "Tracer.TraceNode", pe.Op)
	nr, _ := res.Node("b")
	assert.Equal(t, executor.Failed, nr.Status)
	assert.Equal(t, 1, nr.Attempts, "a tracer panic is not retried")
	require.Len(t, tr.runEnds, 1)
	assert.Equal(t, "failed", tr.runEnds[0].Status)

	e = mustExec(t, executor.Options{Tracer: runPanicTracer{}})
	_, err = e.Run(context.Background(), g, dag.NewMemoryState())
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "Tracer.TraceRun", pe.Op)
}

type runPanicTracer struct{}

func (runPanicTracer) TraceRun(context.Context, executor.RunTrace) (context.Context, func(executor.RunOutcome)) {
	panic("run tracer bug")
}

func (runPanicTracer) TraceNode(ctx context.Context, _ executor.NodeTrace) (context.Context, func(executor.NodeOutcome)) {
	return ctx, nil
}

// NodeTrace.Paused is the time the gate held the run while the node was
// ready.
func TestTracerNodePauseTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := newTestGate()
		tr := &recTracer{}
		e := mustExec(t, executor.Options{Gate: gate, Tracer: tr, Limits: executor.Limits{CPU: 1}})
		g := mustGraph(t,
			dag.Node{ID: "a", Run: func(context.Context, dag.State) error {
				gate.set(true) // the board gets hot while a runs
				time.AfterFunc(30*time.Second, func() { gate.set(false) })
				time.Sleep(time.Second)
				return nil
			}},
			dag.Node{ID: "b", DependsOn: []string{"a"}, Run: noop},
			dag.Node{ID: "c", DependsOn: []string{"b"}, Run: noop},
		)
		res, err := e.Run(context.Background(), g, dag.NewMemoryState())
		require.NoError(t, err)
		require.Len(t, tr.nodes, 3)
		assert.Equal(t, []time.Duration{0, 29 * time.Second, 0}, []time.Duration{tr.nodes[0].Paused, tr.nodes[1].Paused, tr.nodes[2].Paused})
		assert.Equal(t, res.Paused, tr.runEnds[0].Paused)
		assert.Equal(t, 1, tr.runEnds[0].Pauses)
	})
}
