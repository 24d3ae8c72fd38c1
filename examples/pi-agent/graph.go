package main

import (
	"fmt"
	"io"
)

// graphFlags are the flags of the graph command: only what changes the
// graph.
type graphFlags struct {
	*cmdFlags
	format string
	shards int
}

func newGraphFlags(stderr io.Writer) *graphFlags {
	f := &graphFlags{cmdFlags: newCmdFlags("graph", "Print the agent's DAG as Graphviz DOT (pi-agent graph | dot -Tsvg > agent.svg) or Mermaid.", stderr)}
	f.ss.stringVar(&f.format, "format", "", "dot", "dot or mermaid", func(v string) error {
		if v != "dot" && v != "mermaid" {
			return fmt.Errorf("unknown format")
		}
		return nil
	}, "output `format`: dot or mermaid")
	f.withShards(&f.shards)
	return f
}

func graphCmd(args []string, env []string, stdout, stderr io.Writer) error {
	f := newGraphFlags(stderr)
	if err := f.parse(args, env, stderr); err != nil {
		return err
	}
	g, err := buildGraph(agentSpec{Question: defaultQuestion, Shards: f.shards, ChunkSize: 900, TopK: 4, Answerer: extractive{}})
	if err != nil {
		return err
	}
	if f.format == "mermaid" {
		return g.WriteMermaid(stdout)
	}
	return g.WriteDOT(stdout)
}
