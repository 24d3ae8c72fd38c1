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
// nodes with a double border. Node IDs are quoted and escaped, so any ID is
// valid DOT.
func (g *Graph) WriteDOT(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("digraph cemaf {\n\trankdir=LR;\n\tnode [shape=box, style=rounded];\n")
	for _, i := range g.order {
		nd := &g.nodes[i]
		bw.WriteString("\t")
		bw.WriteString(dotQuote(nd.ID))
		switch {
		case nd.Optional && nd.Class == IO:
			bw.WriteString(" [style=\"rounded,dashed\", peripheries=2]")
		case nd.Optional:
			bw.WriteString(" [style=\"rounded,dashed\"]")
		case nd.Class == IO:
			bw.WriteString(" [peripheries=2]")
		}
		bw.WriteString(";\n")
	}
	for _, i := range g.order {
		for _, c := range g.Dependents(int(i)) {
			bw.WriteString("\t")
			bw.WriteString(dotQuote(g.nodes[i].ID))
			bw.WriteString(" -> ")
			bw.WriteString(dotQuote(g.nodes[c].ID))
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
// so any ID renders; optional nodes have a stadium shape; IO nodes are in
// class io, drawn with a thick border.
func (g *Graph) WriteMermaid(w io.Writer) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("flowchart LR\n")
	io := false
	for _, i := range g.order {
		nd := &g.nodes[i]
		open, close := `["`, `"]`
		if nd.Optional {
			open, close = `(["`, `"])`
		}
		class := ""
		if nd.Class == IO {
			class, io = ":::io", true
		}
		bw.WriteString("    n" + strconv.Itoa(int(i)) + open + mermaidEscape(nd.ID) + close + class + "\n")
	}
	for _, i := range g.order {
		for _, c := range g.Dependents(int(i)) {
			bw.WriteString("    n" + strconv.Itoa(int(i)) + " --> n" + strconv.Itoa(int(c)) + "\n")
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

// Fingerprint identifies the graph's shape: a SHA-256 over the node IDs and
// the edges, in the order given to New. Two graphs have the same fingerprint
// exactly when they have the same IDs, in the same order, with the same
// dependencies (in any order); run functions and settings do not count. Checkpoints use it
// to refuse resuming a run with a changed graph.
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
	return hex.EncodeToString(h.Sum(nil))
}
