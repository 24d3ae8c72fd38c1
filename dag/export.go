package dag

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"slices"
	"strconv"
	"strings"
)

// WriteDOT writes the graph in Graphviz DOT. An edge a -> b means b depends
// on a (data flows along the arrows). Optional nodes are drawn dashed, IO
// nodes with a double border, branch nodes (Node.Branch) as diamonds whose
// outgoing edges are dashed and labelled "if chosen". Node IDs are quoted
// and escaped, so any ID is valid DOT.
func (g *Graph) WriteDOT(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("digraph cemaf {\n\trankdir=LR;\n\tnode [shape=box, style=rounded];\n")
	for _, i := range g.order {
		nd := &g.nodes[i]
		bw.WriteString("\t")
		bw.WriteString(dotQuote(nd.ID))
		var attrs []string
		if nd.Optional {
			attrs = append(attrs, `style="rounded,dashed"`)
		}
		if nd.Class == IO {
			attrs = append(attrs, "peripheries=2")
		}
		if nd.Branch {
			attrs = append(attrs, "shape=diamond")
		}
		if len(attrs) > 0 {
			bw.WriteString(" [" + strings.Join(attrs, ", ") + "]")
		}
		bw.WriteString(";\n")
	}
	for _, i := range g.order {
		for _, c := range g.Dependents(int(i)) {
			bw.WriteString("\t")
			bw.WriteString(dotQuote(g.nodes[i].ID))
			bw.WriteString(" -> ")
			bw.WriteString(dotQuote(g.nodes[c].ID))
			if g.nodes[i].Branch {
				bw.WriteString(` [style=dashed, label="if chosen"]`)
			}
			bw.WriteString(";\n")
		}
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

func dotQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// WriteMermaid writes the graph as a Mermaid flowchart (left to right). Nodes
// get synthetic identifiers n0, n1, … (by position) and their IDs as labels,
// so any ID renders; optional nodes have a stadium shape, branch nodes
// (Node.Branch) a rhombus with dotted outgoing links labelled "if chosen";
// IO nodes are in class io, drawn with a thick border.
func (g *Graph) WriteMermaid(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("flowchart LR\n")
	io := false
	for _, i := range g.order {
		nd := &g.nodes[i]
		open, close := `["`, `"]`
		switch {
		case nd.Branch:
			open, close = `{"`, `"}`
		case nd.Optional:
			open, close = `(["`, `"])`
		}
		class := ""
		if nd.Class == IO {
			class, io = ":::io", true
		}
		bw.WriteString("    n" + strconv.Itoa(int(i)) + open + mermaidEscape(nd.ID) + close + class + "\n")
	}
	for _, i := range g.order {
		link := " --> n"
		if g.nodes[i].Branch {
			link = " -. if chosen .-> n"
		}
		for _, c := range g.Dependents(int(i)) {
			bw.WriteString("    n" + strconv.Itoa(int(i)) + link + strconv.Itoa(int(c)) + "\n")
		}
	}
	if io {
		bw.WriteString("    classDef io stroke-width:3px\n")
	}
	return bw.Flush()
}

func mermaidEscape(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "\n", " ", "\r", "", "<", "#lt;", ">", "#gt;")
	return r.Replace(s)
}

// Fingerprint identifies the graph's shape: a SHA-256 over the node IDs, the
// edges and which nodes are branches (Node.Branch), in the order given to
// New. Two graphs have the same fingerprint exactly when they have the same
// IDs, in the same order, with the same dependencies (in any order) and the
// same branch nodes; run functions and other settings do not count. A graph
// without branch nodes has the fingerprint it had before branches existed.
// Checkpoints use it to refuse resuming a run with a changed graph.
func (g *Graph) Fingerprint() string {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	put := func(v int) { h.Write(buf[:binary.PutUvarint(buf[:], uint64(v))]) }
	put(len(g.nodes))
	for i := range g.nodes {
		put(len(g.nodes[i].ID))
		io.WriteString(h, g.nodes[i].ID)
		deps := slices.Clone(g.Dependencies(i))
		slices.Sort(deps)
		put(len(deps))
		for _, d := range deps {
			put(int(d))
		}
	}
	// The branch nodes follow the nodes, only when there are some.
	var branches []int
	for i := range g.nodes {
		if g.nodes[i].Branch {
			branches = append(branches, i)
		}
	}
	if len(branches) > 0 {
		put(len(branches))
		for _, i := range branches {
			put(i)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
