package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cemaf-go/cemaf/executor"
)

func graphCmd(args []string, env []string, stdout, stderr io.Writer) error {
	f := newRunFlags(stderr)
	format := f.fs.String("format", "dot", "output `format`: dot or mermaid")
	if err := f.parse(args); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	g, err := buildGraph(agentSpec{Question: f.question, Shards: f.shards, ChunkSize: f.chunkSize, TopK: f.topK, Answerer: extractive{}})
	if err != nil {
		return err
	}
	switch *format {
	case "dot":
		return g.WriteDOT(stdout)
	case "mermaid":
		return g.WriteMermaid(stdout)
	}
	return usageError{fmt.Sprintf("--format %q: want dot or mermaid", *format)}
}

func runsCmd(args []string, env []string, stdout, stderr io.Writer) error {
	c := newCommon("runs", stderr)
	if err := c.parse(args); err != nil {
		return err
	}
	_, storage, err := c.loadStorage(env, stderr)
	if err != nil {
		return err
	}
	path := filepath.Join(storage, "runs.db")
	if _, err := os.Stat(path); err != nil {
		if c.jsonOut {
			return writeJSON(stdout, []executor.RunRecord{})
		}
		fmt.Fprintf(stdout, "no runs yet in %s\n", storage)
		return nil
	}
	cs, err := executor.OpenCheckpoints(path, executor.CheckpointOptions{})
	if err != nil {
		return err
	}
	defer cs.Close()
	runs, err := cs.Runs()
	if err != nil {
		return err
	}
	if c.jsonOut {
		if runs == nil {
			runs = []executor.RunRecord{}
		}
		return writeJSON(stdout, runs)
	}
	if len(runs) == 0 {
		fmt.Fprintf(stdout, "no runs yet in %s\n", storage)
		return nil
	}
	fmt.Fprintf(stdout, "%-26s %-10s %9s  %-20s %s\n", "RUN", "STATUS", "DONE", "UPDATED", "RESUME")
	for _, r := range runs {
		resume := ""
		if !r.Finished() {
			resume = "pi-agent run --resume " + r.ID
		}
		fmt.Fprintf(stdout, "%-26s %-10s %4d/%-4d  %-20s %s\n", r.ID, r.Status, r.Completed, r.Nodes, r.Updated.Local().Format(time.DateTime), resume)
	}
	return nil
}
