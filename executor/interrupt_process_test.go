package executor_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// hitlOutcome is what a TestInterruptChild process reports.
type hitlOutcome struct {
	Err      string            `json:"err"`
	Waiting  bool              `json:"waiting"`
	Restored []string          `json:"restored"`
	State    map[string]string `json:"state"`
}

// TestInterruptChild is the child process of TestInterruptAcrossProcesses;
// it does nothing unless run by it. It runs a graph whose "ask" node waits
// for input, with the answer in CEMAF_HITL_ANSWER if set, and reports the
// outcome as JSON on stdout.
func TestInterruptChild(t *testing.T) {
	dir := os.Getenv("CEMAF_HITL_DIR")
	if dir == "" {
		t.Skip("child of TestInterruptAcrossProcesses")
	}
	store, err := executor.OpenCheckpoints(filepath.Join(dir, "ckpt.db"), executor.CheckpointOptions{Commit: executor.CommitPolicy{MaxNodes: 1}})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	e, _ := executor.New(executor.Options{Checkpoints: store})
	hang := os.Getenv("CEMAF_HITL_HANG") != ""
	put := func(k string) dag.Func {
		return func(_ context.Context, s dag.State) error { return s.Put(k, []byte(k+" done")) }
	}
	g := mustGraph(t,
		dag.Node{ID: "load", Run: put("load")},
		dag.Node{ID: "side", Run: put("side")},
		dag.Node{ID: "ask", DependsOn: []string{"load"}, Run: func(ctx context.Context, s dag.State) error {
			ans, ok := executor.InputFrom(ctx)
			if !ok {
				return executor.Interrupt(ctx, "Index the corpus in /data/docs?")
			}
			if hang {
				fmt.Println("answered")
				<-make(chan struct{}) // killed here, before the node completes
			}
			return s.Put("ask", []byte(ans))
		}},
		dag.Node{ID: "use", DependsOn: []string{"ask"}, Run: func(_ context.Context, s dag.State) error {
			v, err := s.Get("ask")
			if err != nil {
				return err
			}
			return s.Put("use", []byte("used "+string(v)))
		}},
	)
	ro := executor.RunOptions{ID: "hitl"}
	if a, ok := os.LookupEnv("CEMAF_HITL_ANSWER"); ok {
		ro.Answers = map[string]string{"ask": a}
	}
	s := dag.NewMemoryState()
	res, err := e.RunWith(context.Background(), g, s, ro)
	out := hitlOutcome{Waiting: errors.Is(err, executor.ErrInterrupted), State: stateMap(t, s)}
	if err != nil {
		out.Err = err.Error()
	}
	for _, nr := range res.Nodes {
		if nr.Restored {
			out.Restored = append(out.Restored, nr.ID)
		}
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	os.Exit(0)
}

func hitlChild(t *testing.T, dir string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestInterruptChild$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), "CEMAF_HITL_DIR="+dir), env...)
	return cmd
}

func runHitlChild(t *testing.T, dir string, env ...string) hitlOutcome {
	t.Helper()
	out, err := hitlChild(t, dir, env...).Output()
	require.NoError(t, err, "%s", out)
	var o hitlOutcome
	line := strings.TrimSpace(string(out))
	line = line[strings.LastIndexByte(line, '\n')+1:]
	require.NoError(t, json.Unmarshal([]byte(line), &o), "%s", out)
	return o
}

// A run waits for input across a process exit: the first process ends
// with the run recorded as waiting (the question and the node in its
// record); a second process resumes it with the answer and is killed
// before the node completes; a third resumes without an answer and
// finishes with the recorded one, without redoing completed work.
func TestInterruptAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes; skipped with -short")
	}
	dir := t.TempDir()
	first := runHitlChild(t, dir)
	assert.True(t, first.Waiting, "%+v", first)
	assert.Contains(t, first.Err, `node "ask" is waiting for input: "Index the corpus in /data/docs?"`)
	assert.Equal(t, map[string]string{"load": "load done", "side": "side done"}, first.State)

	store, err := executor.OpenCheckpoints(filepath.Join(dir, "ckpt.db"), executor.CheckpointOptions{})
	require.NoError(t, err)
	rec, err := store.Run("hitl")
	require.NoError(t, err)
	assert.Equal(t, "waiting", rec.Status)
	require.Len(t, rec.Questions, 1)
	assert.Equal(t, executor.Question{Node: "ask", Text: "Index the corpus in /data/docs?", Asked: rec.Questions[0].Asked}, rec.Questions[0])
	runs, err := store.Runs()
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, "waiting", runs[0].Status, "a waiting run shows in the list of runs")
	require.NoError(t, store.Close())

	// Resume with the answer; the process dies before "ask" completes.
	cmd := hitlChild(t, dir, "CEMAF_HITL_ANSWER=yes, all of it", "CEMAF_HITL_HANG=1")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "answered" {
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	// Resume without an answer: the recorded one is used.
	last := runHitlChild(t, dir)
	assert.Empty(t, last.Err)
	assert.ElementsMatch(t, []string{"load", "side"}, last.Restored)
	assert.Equal(t, "used yes, all of it", last.State["use"])

	store, err = executor.OpenCheckpoints(filepath.Join(dir, "ckpt.db"), executor.CheckpointOptions{})
	require.NoError(t, err)
	defer store.Close()
	rec, err = store.Run("hitl")
	require.NoError(t, err)
	assert.Equal(t, "succeeded", rec.Status)
	assert.Empty(t, rec.Questions)
}
