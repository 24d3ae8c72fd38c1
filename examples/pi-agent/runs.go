package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/cemaf-go/cemaf/executor"
)

// runsFlags are the flags of the runs command.
type runsFlags struct{ *cmdFlags }

func newRunsFlags(stderr io.Writer) *runsFlags {
	f := &runsFlags{newCmdFlags("runs", "List the unfinished and recent runs of the storage directory, with the command that resumes each unfinished one.", stderr)}
	f.withStorage()
	f.withJSON()
	return f
}

func runsCmd(args []string, env []string, stdout, stderr io.Writer) error {
	f := newRunsFlags(stderr)
	if err := f.parse(args, env, stderr); err != nil {
		return err
	}
	_, storage, err := f.loadStorage(env, stderr)
	if err != nil {
		return err
	}
	runs, err := listRuns(storage)
	if err != nil {
		return err
	}
	if f.jsonOut {
		if runs == nil {
			runs = []executor.RunRecord{}
		}
		return writeJSON(stdout, runs)
	}
	if len(runs) == 0 {
		fmt.Fprintf(stdout, "no runs yet in %s\n", storage.Path)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTATUS\tDONE\tUPDATED\tQUESTION\tRESUME")
	for _, r := range runs {
		resume := ""
		if !r.Finished() {
			resume = resumeCommand(r.ID, storage)
		}
		if isWaiting(r) {
			resume = inputCommand(r.ID, storage)
		}
		q := collapseSpace(r.Inputs[inQuestion])
		if len(q) > 40 {
			q = truncateRunes(q, 39) + "…"
		}
		if q == "" {
			q = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\n", r.ID, r.Status, r.Completed, r.Nodes, r.Updated.Local().Format("2006-01-02 15:04:05"), q, resume)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printQuestions(stdout, runs)
}

// listRuns returns the runs of the storage directory's checkpoint file
// (none when there is no file yet).
func listRuns(storage storageDir) ([]executor.RunRecord, error) {
	path := filepath.Join(storage.Path, "runs.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	cs, err := executor.OpenCheckpoints(path, executor.CheckpointOptions{})
	if err != nil {
		return nil, checkpointHint(err, storage)
	}
	defer cs.Close()
	return cs.Runs()
}
