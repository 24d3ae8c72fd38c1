package dag_test

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
)

func noop(context.Context, dag.State) error { return nil }

func n(id string, deps ...string) dag.Node {
	return dag.Node{ID: id, Run: noop, DependsOn: deps}
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name    string
		nodes   []dag.Node
		want    []error
		message []string
	}{
		{
			name:    "empty ID",
			nodes:   []dag.Node{n("a"), n("")},
			want:    []error{dag.ErrEmptyID},
			message: []string{"node #1: empty node ID"},
		},
		{
			name:    "duplicate ID",
			nodes:   []dag.Node{n("a"), n("b"), n("a")},
			want:    []error{dag.ErrDuplicateID},
			message: []string{`duplicate node ID "a" (nodes #0 and #2)`},
		},
		{
			name:    "unknown dependency names both",
			nodes:   []dag.Node{n("a"), n("b", "x")},
			want:    []error{dag.ErrUnknownDependency},
			message: []string{`node "b" depends on unknown node "x"`},
		},
		{
			name:    "self dependency",
			nodes:   []dag.Node{n("a", "a")},
			want:    []error{dag.ErrSelfDependency},
			message: []string{`node "a" depends on itself`},
		},
		{
			name:    "cycle path",
			nodes:   []dag.Node{n("a", "c"), n("b", "a"), n("c", "b"), n("d", "c")},
			want:    []error{dag.ErrCycle},
			message: []string{"cycle: a -> b -> c -> a"},
		},
		{
			name:    "two-node cycle",
			nodes:   []dag.Node{n("x"), n("p", "q"), n("q", "p")},
			want:    []error{dag.ErrCycle},
			message: []string{"cycle: p -> q -> p"},
		},
		{
			name:    "missing run function",
			nodes:   []dag.Node{{ID: "a"}},
			want:    []error{dag.ErrNoRunFunc},
			message: []string{`node "a" has no Run function`},
		},
		{
			name:    "negative timeout",
			nodes:   []dag.Node{{ID: "a", Run: noop, Timeout: -1}},
			want:    []error{dag.ErrInvalidSetting},
			message: []string{`node "a": Timeout = -1ns: must be ≥ 0`},
		},
		{
			name:    "bad retry policy",
			nodes:   []dag.Node{{ID: "a", Run: noop, Retry: &dag.RetryPolicy{Multiplier: 0.5}}},
			want:    []error{dag.ErrInvalidSetting},
			message: []string{`node "a": Retry.Multiplier = 0.5: must be ≥ 1`},
		},
		{
			name:  "every problem at once",
			nodes: []dag.Node{n(""), n("a", "zz"), n("a"), n("s", "s")},
			want:  []error{dag.ErrEmptyID, dag.ErrUnknownDependency, dag.ErrDuplicateID, dag.ErrSelfDependency},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := dag.New(tt.nodes...)
			require.Error(t, err)
			assert.Nil(t, g)
			for _, w := range tt.want {
				assert.ErrorIs(t, err, w)
			}
			for _, m := range tt.message {
				assert.Contains(t, err.Error(), m)
			}
			var ve *dag.ValidationError
			require.ErrorAs(t, err, &ve)
		})
	}
}

func TestValidGraphsAccepted(t *testing.T) {
	for _, nodes := range [][]dag.Node{
		nil,
		{n("a")},
		{n("a"), n("b", "a", "a")}, // a repeated dependency counts once
		{n("b", "a"), n("a")},      // dependencies may be declared later
	} {
		g, err := dag.New(nodes...)
		require.NoError(t, err)
		assert.Equal(t, len(nodes), g.Len())
	}
	g, _ := dag.New(n("a"), n("b", "a", "a"))
	assert.Equal(t, [][2]string{{"a", "b"}}, g.Edges())
}

func diamond(t *testing.T) *dag.Graph {
	t.Helper()
	g, err := dag.New(
		n("load"),
		n("chunk", "load"),
		dag.Node{ID: "index-b", Run: noop, DependsOn: []string{"chunk"}},
		dag.Node{ID: "index-a", Run: noop, DependsOn: []string{"chunk"}, Priority: 5},
		n("retrieve", "index-a", "index-b"),
		n("side"),
		dag.Node{ID: "report", Run: noop, DependsOn: []string{"retrieve", "side"}, Optional: true},
	)
	require.NoError(t, err)
	return g
}

func TestOrderLevelsAndReachability(t *testing.T) {
	g := diamond(t)
	assert.Equal(t, []string{"load", "chunk", "index-a", "index-b", "retrieve", "side", "report"}, g.TopologicalOrder())
	assert.Equal(t, [][]string{{"load", "side"}, {"chunk"}, {"index-a", "index-b"}, {"retrieve"}, {"report"}}, g.Levels())
	assert.Equal(t, []string{"load", "side"}, g.Roots())
	assert.Equal(t, []string{"report"}, g.Leaves())

	anc, err := g.Ancestors("retrieve")
	require.NoError(t, err)
	assert.Equal(t, []string{"load", "chunk", "index-a", "index-b"}, anc)
	desc, err := g.Descendants("chunk")
	require.NoError(t, err)
	assert.Equal(t, []string{"index-a", "index-b", "retrieve", "report"}, desc)
	_, err = g.Descendants("nope")
	assert.ErrorIs(t, err, dag.ErrUnknownNode)
	assert.Contains(t, err.Error(), `"nope"`)

	nd, ok := g.Node("report")
	require.True(t, ok)
	assert.True(t, nd.Optional)
	i, ok := g.IndexOf("retrieve")
	require.True(t, ok)
	assert.Len(t, g.Dependencies(i), 2)
}

func TestTopologicalOrderIsDeterministic(t *testing.T) {
	build := func() []string {
		var nodes []dag.Node
		for i := range 200 {
			id := string(rune('A'+i%26)) + strings.Repeat("x", i/26)
			var deps []string
			if i > 0 {
				deps = []string{nodes[(i*7)%i].ID}
			}
			nodes = append(nodes, dag.Node{ID: id, Run: noop, DependsOn: deps, Priority: i % 3})
		}
		g, err := dag.New(nodes...)
		require.NoError(t, err)
		return g.TopologicalOrder()
	}
	first := build()
	for range 5 {
		assert.Equal(t, first, build())
	}
}

func TestFingerprint(t *testing.T) {
	a, _ := dag.New(n("a"), n("b", "a"), n("c", "a", "b"))
	b, _ := dag.New(n("a"), n("b", "a"), dag.Node{ID: "c", Run: noop, DependsOn: []string{"b", "a"}, Priority: 3})
	c, _ := dag.New(n("a"), n("b", "a"), n("c", "a"))
	assert.Equal(t, a.Fingerprint(), b.Fingerprint(), "dependency order and settings do not change the identity")
	assert.NotEqual(t, a.Fingerprint(), c.Fingerprint(), "a removed edge changes the identity")
	assert.Equal(t, "a0a4ab8299fcec750f0aaedada132c61a313277b7a71b7dfacccf8b1ba53e991", a.Fingerprint(),
		"a graph without branch nodes keeps the fingerprint checkpoint files recorded before branches existed")
	br, _ := dag.New(dag.Node{ID: "a", Run: noop, Branch: true}, n("b", "a"), n("c", "a", "b"))
	assert.NotEqual(t, a.Fingerprint(), br.Fingerprint(), "making a node a branch changes the identity")
}

func TestBranchExport(t *testing.T) {
	g, err := dag.New(
		dag.Node{ID: "route", Run: noop, Branch: true},
		n("fast", "route"), n("slow", "route"), n("join", "fast", "slow"),
	)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, g.WriteDOT(&buf))
	out := buf.String()
	assert.Contains(t, out, `"route" [shape=diamond];`)
	assert.Contains(t, out, `"route" -> "fast" [style=dashed, label="if chosen"];`)
	assert.Contains(t, out, `"route" -> "slow" [style=dashed, label="if chosen"];`)
	assert.Contains(t, out, `"fast" -> "join";`, "edges of other nodes are plain")

	buf.Reset()
	require.NoError(t, g.WriteMermaid(&buf))
	out = buf.String()
	assert.Contains(t, out, `n0{"route"}`)
	assert.Contains(t, out, "n0 -. if chosen .-> n1\n")
	assert.Contains(t, out, "n0 -. if chosen .-> n2\n")
	assert.Contains(t, out, "n1 --> n3\n")
}

func TestWriteDOT(t *testing.T) {
	g, err := dag.New(n(`say "hi"`), n(`back\slash`, `say "hi"`), dag.Node{ID: "opt", Run: noop, Optional: true, DependsOn: []string{`back\slash`}})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, g.WriteDOT(&buf))
	out := buf.String()
	assert.Contains(t, out, `"say \"hi\"" -> "back\\slash";`)
	assert.Contains(t, out, `"opt" [style="rounded,dashed"];`)
	assert.Contains(t, out, `"say \"hi\"";`, "CPU nodes have no attributes")

	io, err := dag.New(dag.Node{ID: "llm", Run: noop, Class: dag.IO}, dag.Node{ID: "opt-llm", Run: noop, Class: dag.IO, Optional: true})
	require.NoError(t, err)
	buf.Reset()
	require.NoError(t, io.WriteDOT(&buf))
	assert.Contains(t, buf.String(), `"llm" [peripheries=2];`)
	assert.Contains(t, buf.String(), `"opt-llm" [style="rounded,dashed", peripheries=2];`)
	buf.Reset()
	require.NoError(t, g.WriteDOT(&buf))

	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("graphviz dot not installed; DOT not checked by graphviz")
	}
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = &buf
	svg, err := cmd.CombinedOutput()
	require.NoError(t, err, "dot rejected the DOT output: %s", svg)
	assert.Contains(t, string(svg), "<svg")
	assert.Contains(t, string(svg), "back\\slash")
}

func TestWriteMermaid(t *testing.T) {
	g := diamond(t)
	var buf bytes.Buffer
	require.NoError(t, g.WriteMermaid(&buf))
	out := buf.String()
	assert.True(t, strings.HasPrefix(out, "flowchart LR\n"))
	assert.Contains(t, out, `n0["load"]`)
	assert.Contains(t, out, `n6(["report"])`)
	assert.Contains(t, out, "n0 --> n1")
	assert.Equal(t, 7+len(g.Edges())+1, strings.Count(out, "\n"))

	q, _ := dag.New(n(`a "quoted" <id>`))
	buf.Reset()
	require.NoError(t, q.WriteMermaid(&buf))
	assert.Contains(t, buf.String(), `n0["a #quot;quoted#quot; #lt;id#gt;"]`)
	assert.NotContains(t, buf.String(), "classDef", "no class line without IO nodes")

	io, _ := dag.New(dag.Node{ID: "llm", Run: noop, Class: dag.IO}, n("parse", "llm"))
	buf.Reset()
	require.NoError(t, io.WriteMermaid(&buf))
	assert.Contains(t, buf.String(), `n0["llm"]:::io`)
	assert.Contains(t, buf.String(), `n1["parse"]`+"\n")
	assert.True(t, strings.HasSuffix(buf.String(), "    classDef io stroke-width:3px\n"))
}

// graphFromBytes builds node lists from arbitrary bytes: each node takes two
// bytes (dependency count, seed) and dependencies may point anywhere,
// including forward, to itself or to unknown names, so cycles and every
// validation error occur.
func graphFromBytes(data []byte) []dag.Node {
	var nodes []dag.Node
	for k := 0; k+1 < len(data) && len(nodes) < 64; k += 2 {
		i := len(nodes)
		nd := dag.Node{ID: "n" + string(rune('0'+data[k]%40)), Run: noop, Priority: int(data[k+1] % 3)}
		if data[k]%17 == 0 {
			nd.ID = ""
		}
		for d := range int(data[k+1] % 4) {
			target := (int(data[k]) + d*int(data[k+1])) % 45
			nd.DependsOn = append(nd.DependsOn, "n"+string(rune('0'+target)))
		}
		_ = i
		nodes = append(nodes, nd)
	}
	return nodes
}

func FuzzNew(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte("cycles are fun"))
	f.Add([]byte{10, 3, 11, 1, 12, 2, 13, 3, 10, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes := graphFromBytes(data)
		g, err := dag.New(nodes...)
		if err != nil {
			if g != nil {
				t.Fatal("graph returned with an error")
			}
			checkCycleErrors(t, nodes, err)
			return
		}
		checkOrder(t, g)
	})
}

// checkCycleErrors verifies that every reported cycle is a real cycle of the
// node list: each arrow a -> b is an edge where b depends on a.
func checkCycleErrors(t *testing.T, nodes []dag.Node, err error) {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var ve *dag.ValidationError
		if !errors.As(e, &ve) {
			t.Fatalf("error %v is not a *ValidationError", e)
		}
		if ve.Err != dag.ErrCycle {
			continue
		}
		if len(ve.Cycle) < 3 || ve.Cycle[0] != ve.Cycle[len(ve.Cycle)-1] {
			t.Fatalf("cycle path %v is not closed", ve.Cycle)
		}
		for k := 0; k+1 < len(ve.Cycle); k++ {
			from, to := ve.Cycle[k], ve.Cycle[k+1]
			if !dependsOn(nodes, to, from) {
				t.Fatalf("cycle %v: %s does not depend on %s", ve.Cycle, to, from)
			}
		}
	}
}

func dependsOn(nodes []dag.Node, id, dep string) bool {
	for _, nd := range nodes {
		if nd.ID == id && slices.Contains(nd.DependsOn, dep) {
			return true
		}
	}
	return false
}

func checkOrder(t *testing.T, g *dag.Graph) {
	pos := map[string]int{}
	for k, id := range g.TopologicalOrder() {
		pos[id] = k
	}
	if len(pos) != g.Len() {
		t.Fatalf("order has %d nodes, graph %d", len(pos), g.Len())
	}
	for _, e := range g.Edges() {
		if pos[e[0]] >= pos[e[1]] {
			t.Fatalf("edge %s -> %s out of order", e[0], e[1])
		}
	}
}

// The fuzz generator must produce real cycles, or FuzzNew would check nothing.
func TestFuzzGeneratorProducesCycles(t *testing.T) {
	cycles := 0
	for seed := range 2000 {
		data := make([]byte, 40)
		for k := range data {
			data[k] = byte((seed*31 + k*k*7 + seed*k) % 251)
		}
		nodes := graphFromBytes(data)
		if _, err := dag.New(nodes...); errors.Is(err, dag.ErrCycle) {
			cycles++
			checkCycleErrors(t, nodes, err)
		}
	}
	assert.Greater(t, cycles, 50, "generator produced too few cycles")
}
