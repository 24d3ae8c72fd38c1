package executor_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/paging"
)

// crashGraph is a deterministic 200-node DAG: node i hashes its
// dependencies' values; every 20th node also writes a scratch key that the
// next node deletes.
func crashGraph(t testing.TB, jitter bool) *dag.Graph {
	var nodes []dag.Node
	for i := range 200 {
		var deps []string
		for _, d := range []int{i - 1, i / 3, i - 17} {
			if d >= 0 && d < i && !slices.Contains(deps, "n"+strconv.Itoa(d)) {
				deps = append(deps, "n"+strconv.Itoa(d))
			}
		}
		nodes = append(nodes, dag.Node{ID: "n" + strconv.Itoa(i), DependsOn: deps, Run: func(_ context.Context, s dag.State) error {
			if jitter {
				time.Sleep(time.Duration(rand.IntN(400)) * time.Microsecond)
			}
			h := sha256.New()
			for _, d := range deps {
				v, err := s.Get(d)
				if err != nil {
					return err
				}
				h.Write(v)
			}
			h.Write([]byte(strconv.Itoa(i)))
			if i%20 == 0 {
				if err := s.Put("tmp"+strconv.Itoa(i), []byte("scratch")); err != nil {
					return err
				}
			}
			if i%20 == 1 {
				if err := s.Delete("tmp" + strconv.Itoa(i-1)); err != nil {
					return err
				}
			}
			return s.Put("n"+strconv.Itoa(i), []byte(hex.EncodeToString(h.Sum(nil))))
		}})
	}
	g, err := dag.New(nodes...)
	require.NoError(t, err)
	return g
}

func stateMap(t testing.TB, s dag.State) map[string]string {
	out := map[string]string{}
	for _, k := range s.Keys() {
		v, err := s.Get(k)
		require.NoError(t, err)
		out[k] = string(v)
	}
	return out
}

// TestCrashChild is the child process of TestCrashResume; it does nothing
// unless run by it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("CEMAF_CRASH_DIR")
	if dir == "" {
		t.Skip("child of TestCrashResume")
	}
	store, err := executor.OpenCheckpoints(filepath.Join(dir, "ckpt.db"), executor.CheckpointOptions{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	progress := executor.ObserverFunc(func(ev executor.Event) {
		if ev.Kind == executor.NodeCheckpointed {
			fmt.Println("durable", ev.Node)
		}
	})
	e, _ := executor.New(executor.Options{Checkpoints: store, Limits: executor.Limits{CPU: 3}, Observers: []executor.Observer{progress}})
	var s dag.State = dag.NewMemoryState()
	if os.Getenv("CEMAF_CRASH_PAGER") != "" {
		// The State is a durable pager: the values stay in its own file.
		p, err := paging.Wrap(nil, paging.Options{StoragePath: filepath.Join(dir, "pages"), Mode: paging.ModeDurable, MemoryLimitMB: 1, PageSizeMB: 1.0 / 64})
		if err != nil {
			fmt.Println("pager:", err)
			os.Exit(6)
		}
		defer p.Close()
		s = p
	}
	_, err = e.RunWith(context.Background(), crashGraph(t, true), s, executor.RunOptions{ID: "crash"})
	if errors.Is(err, executor.ErrRunFinished) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Println("run:", err)
		os.Exit(4)
	}
	b, _ := json.Marshal(stateMap(t, s))
	tmp := filepath.Join(dir, "final.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil || os.Rename(tmp, filepath.Join(dir, "final.json")) != nil {
		os.Exit(5)
	}
	os.Exit(0)
}

// TestCrashResume kills a process running a 200-node DAG with SIGKILL at
// random points, 50 times in a row, resuming it each time; the run finishes
// and its final State equals that of an uninterrupted run. It does so with
// the values in the checkpoint store (a memory State) and with the values
// in a durable pager (which the store then does not copy).
func TestCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns 100 processes; skipped with -short")
	}
	t.Run("memory-state", func(t *testing.T) { crashResume(t, nil) })
	t.Run("durable-pager", func(t *testing.T) { crashResume(t, []string{"CEMAF_CRASH_PAGER=1"}) })
}

func crashResume(t *testing.T, extraEnv []string) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	kills := 0
	for attempt := 0; kills < 50; attempt++ {
		require.Less(t, attempt, 500, "the run keeps finishing before it can be killed")
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(append(os.Environ(), extraEnv...), "CEMAF_CRASH_DIR="+dir)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		// Kill after a random number of progress lines (0: at start-up,
		// possibly while the store is being opened).
		want := r.IntN(4)
		sc := bufio.NewScanner(stdout)
		lines := 0
		for lines < want && sc.Scan() {
			if strings.HasPrefix(sc.Text(), "durable ") {
				lines++
			}
		}
		killed := cmd.Process.Signal(syscall.SIGKILL) == nil
		for sc.Scan() {
		}
		err = cmd.Wait()
		require.NotContains(t, stderr.String(), "panic", "child panicked")
		var ee *exec.ExitError
		switch {
		case err == nil:
			// It finished before the kill landed.
		case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled():
			if killed {
				kills++
			}
		default:
			t.Fatalf("child failed: %v\n%s", err, stderr.String())
		}
		if _, err := os.Stat(filepath.Join(dir, "final.json")); err == nil {
			break
		}
	}
	// Let the run finish if the kills left it unfinished.
	for range 3 {
		if _, err := os.Stat(filepath.Join(dir, "final.json")); err == nil {
			break
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(append(os.Environ(), extraEnv...), "CEMAF_CRASH_DIR="+dir)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	t.Logf("%d SIGKILLs", kills)
	require.GreaterOrEqual(t, kills, 50)

	raw, err := os.ReadFile(filepath.Join(dir, "final.json"))
	require.NoError(t, err)
	var got map[string]string
	require.NoError(t, json.Unmarshal(raw, &got))

	want := dag.NewMemoryState()
	e := mustExec(t, executor.Options{})
	_, err = e.Run(context.Background(), crashGraph(t, false), want)
	require.NoError(t, err)
	require.Equal(t, stateMap(t, want), got)
}
