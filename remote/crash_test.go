package remote_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/remote"
)

// crashNodes is a deterministic DAG of n nodes: node i hashes the values of
// its dependencies (i/3, i-17, i-29) and its index. With work set, each
// node first works for a random 0–20ms and prints "start <node>", so that a
// worker can be killed in the middle of a task.
func crashNodes(n int, work bool) ([]dag.Node, []remote.Spec) {
	var nodes []dag.Node
	var specs []remote.Spec
	for i := range n {
		var deps []string
		for _, d := range []int{i / 3, i - 17, i - 29} {
			if d >= 0 && d < i && !slices.Contains(deps, "n"+strconv.Itoa(d)) {
				deps = append(deps, "n"+strconv.Itoa(d))
			}
		}
		id := "n" + strconv.Itoa(i)
		nodes = append(nodes, dag.Node{ID: id, DependsOn: deps, Run: func(ctx context.Context, s dag.State) error {
			if work {
				fmt.Println("start", id)
				select {
				case <-time.After(time.Duration(rand.IntN(20)) * time.Millisecond):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			h := sha256.New()
			for _, d := range deps {
				v, err := s.Get(d)
				if err != nil {
					return err
				}
				h.Write(v)
			}
			h.Write([]byte(id))
			return s.Put(id, []byte(hex.EncodeToString(h.Sum(nil))))
		}})
		specs = append(specs, remote.Spec{Capability: "hash", Reads: deps, Writes: []string{id}})
	}
	return nodes, specs
}

func crashLayout() remote.Layout {
	l := testLayout()
	l.MaxDeliver = 20
	return l
}

// TestWorkerChild is the worker process of TestWorkersKilled; it does
// nothing unless started by it. It serves until its stdin closes.
func TestWorkerChild(t *testing.T) {
	url := os.Getenv("CEMAF_REMOTE_URL")
	if url == "" {
		t.Skip("child of TestWorkersKilled")
	}
	nc, err := remote.Connect(context.Background(), url, remote.ConnectOptions{ReconnectWait: 20 * time.Millisecond})
	require.NoError(t, err)
	defer nc.Close()
	reg := remote.NewRegistry()
	nodes, specs := crashNodes(500, true)
	for i := range nodes {
		require.NoError(t, reg.RegisterNode(nodes[i], specs[i]))
	}
	w, err := remote.NewWorker(nc, reg, remote.WorkerOptions{Layout: crashLayout(), Slots: 2, PollInterval: 100 * time.Millisecond,
		ID: os.Getenv("CEMAF_WORKER_ID")})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	require.NoError(t, w.Run(ctx))
}

// child is one worker process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when its output is read to the end
}

func startChild(t *testing.T, url, id string, starts chan<- int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CEMAF_REMOTE_URL="+url, "CEMAF_WORKER_ID="+id)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "start ") {
				select {
				case starts <- 1:
				default: // the test is not counting any more
				}
			}
		}
	}()
	return c
}

// TestWorkersKilled runs a 500-node remote graph on 3 worker processes
// and SIGKILLs a worker 20 times at random moments (after a random number
// of task starts), restarting it each time. Every node's output lands in
// the coordinator's State exactly once, and the State equals that of a
// single-device run.
func TestWorkersKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns 23 processes; skipped with -short")
	}
	h := startHub(t, hubOpts())
	nc := connect(t, h.ClientURL())
	c := newCoordinator(t, nc, remote.CoordinatorOptions{Layout: crashLayout()})

	starts := make(chan int, 1024)
	children := make([]*child, 3)
	for i := range children {
		children[i] = startChild(t, h.ClientURL(), "w"+strconv.Itoa(i), starts)
	}
	stopAll := func() {
		for _, ch := range children {
			_ = ch.stdin.Close()
		}
		for _, ch := range children {
			<-ch.done
			_ = ch.cmd.Wait()
		}
	}
	defer stopAll()

	nodes, specs := crashNodes(500, false)
	for i := range nodes {
		var err error
		nodes[i], err = c.Node(nodes[i], specs[i])
		require.NoError(t, err)
	}
	g, err := dag.New(nodes...)
	require.NoError(t, err)
	got := newCountingState()
	runDone := make(chan error, 1)
	var res *executor.Result
	go func() {
		var err error
		res, err = mustExec(t, executor.Options{Gate: c, Limits: executor.Limits{CPU: 32, IO: 32}, NodeTimeout: time.Minute}).Run(context.Background(), g, got)
		runDone <- err
	}()

	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills, seen, next := 0, 0, 1+r.IntN(20)
	var runErr error
loop:
	for {
		select {
		case runErr = <-runDone:
			break loop
		case <-starts:
			seen++
			if kills >= 20 || seen < next {
				continue
			}
			next = seen + 1 + r.IntN(20)
			i := r.IntN(len(children))
			ch := children[i]
			require.NoError(t, ch.cmd.Process.Signal(syscall.SIGKILL))
			<-ch.done
			var ee *exec.ExitError
			if err := ch.cmd.Wait(); !errors.As(err, &ee) {
				t.Fatalf("worker process: want killed, got %v", err)
			}
			kills++
			children[i] = startChild(t, h.ClientURL(), "w"+strconv.Itoa(i)+"-"+strconv.Itoa(kills), starts)
		}
	}
	require.NoError(t, runErr)
	t.Logf("%d SIGKILLs, %d task starts for %d nodes", kills, seen, len(nodes))
	require.Equal(t, 20, kills, "the run finished before 20 kills")
	for _, nr := range res.Nodes {
		require.Equal(t, executor.Succeeded, nr.Status, nr.ID)
	}

	lnodes, _ := crashNodes(500, false)
	lg, err := dag.New(lnodes...)
	require.NoError(t, err)
	want := dag.NewMemoryState()
	_, err = mustExec(t, executor.Options{}).Run(context.Background(), lg, want)
	require.NoError(t, err)
	require.Equal(t, stateMap(t, want), stateMap(t, got.MemoryState))
	for _, n := range lnodes {
		require.Equal(t, 1, got.puts[n.ID], "node %s output written %d times", n.ID, got.puts[n.ID])
	}
}
