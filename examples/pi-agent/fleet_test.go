package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/remote/hub"
)

// startHub starts an embedded NATS server with JetStream on 127.0.0.1, its
// store in a temporary directory; it is closed when the test ends.
func startHub(t *testing.T) *hub.Hub {
	t.Helper()
	h, err := hub.Start(hub.Options{StoreDir: t.TempDir(), Port: hub.RandomPort})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// deadURL is a NATS URL on 127.0.0.1 where nothing listens.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "nats://" + addr
}

// startWorker starts pi-agent worker in a child process and waits until it
// serves.
func startWorker(t *testing.T, url, id, caps string, env ...string) *child {
	t.Helper()
	c := startPiAgent(t, env, "worker", "--nats", url, "--id", id, "--capabilities", caps, "--storage", t.TempDir(), "--slots", "4")
	c.waitFor(id + " serves")
	return c
}

var tasksDone = regexp.MustCompile(`stopped: (\d+) tasks done`)

// stopWorker sends SIGTERM to a worker and returns how many tasks it did.
func stopWorker(t *testing.T, c *child) int {
	t.Helper()
	c.signal(syscall.SIGTERM)
	require.Equal(t, exitOK, c.exitCode(), c.stderr())
	m := tasksDone.FindStringSubmatch(c.stderr())
	require.NotNil(t, m, c.stderr())
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestRunOnTheFleet: run --nats sends its four index shards and its answer
// to two workers (one serves only index) and prints the answer of a local
// run.
func TestRunOnTheFleet(t *testing.T) {
	const q = "What does PMIC-Die read on a Jetson Nano?"
	code, out, errOut := runCLI(t, nil, "run", "--ephemeral", "--json", "--question", q)
	require.Equal(t, exitOK, code, errOut)
	var local runSummary
	require.NoError(t, json.Unmarshal([]byte(out), &local), out)
	require.NotNil(t, local.Answer)

	h := startHub(t)
	indexOnly := startWorker(t, h.ClientURL(), "w-index", "index")
	both := startWorker(t, h.ClientURL(), "w-both", "index,llm")

	code, out, errOut = runCLI(t, nil, "run", "--ephemeral", "--json", "--question", q, "--nats", h.ClientURL())
	require.Equal(t, exitOK, code, errOut)
	var fleet runSummary
	require.NoError(t, json.Unmarshal([]byte(out), &fleet), out)
	require.NotNil(t, fleet.Answer)
	assert.Equal(t, *local.Answer, *fleet.Answer)
	assert.Equal(t, local.CorpusReport, fleet.CorpusReport)

	// Four shards and one answer, all done by the workers; the run, over,
	// left no results or values on the hub.
	done := stopWorker(t, indexOnly) + stopWorker(t, both)
	assert.Equal(t, 5, done)
	records, objects := fleetLeftovers(t, h.ClientURL())
	assert.Empty(t, records, "results of a finished run left on the hub")
	assert.Zero(t, objects, "values of a finished run left on the hub")

	// The same with text output: the same answer lines.
	_, localText, _ := runCLI(t, nil, "run", "--ephemeral", "--question", q)
	both = startWorker(t, h.ClientURL(), "w-both-2", "index,llm")
	code, fleetText, errOut := runCLI(t, nil, "run", "--ephemeral", "--question", q, "--nats", h.ClientURL())
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, localText, fleetText)
	assert.Equal(t, 5, stopWorker(t, both))
}

// fleetLeftovers lists the result records (ok, fail and last keys) in the
// fleet's results bucket and counts the objects in its object store.
func fleetLeftovers(t *testing.T, url string) (records []string, objects int) {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, "CEMAF_RESULTS")
	require.NoError(t, err)
	keys, err := kv.ListKeysFiltered(ctx, "ok.>", "fail.>", "last.>")
	require.NoError(t, err)
	for k := range keys.Keys() {
		records = append(records, k)
	}
	store, err := js.ObjectStore(ctx, "CEMAF_BLOBS")
	require.NoError(t, err)
	infos, err := store.List(ctx)
	if !errors.Is(err, jetstream.ErrNoObjectsFound) {
		require.NoError(t, err)
	}
	return records, len(infos)
}

// TestUnreachableNATS: every command with --nats names the URL when no
// server answers there.
func TestUnreachableNATS(t *testing.T) {
	url := deadURL(t)
	for _, args := range [][]string{
		{"worker", "--nats", url, "--storage", t.TempDir()},
		{"run", "--ephemeral", "--nats", url},
		{"status", "--nats", url, "--storage", t.TempDir()},
	} {
		code, _, errOut := runCLI(t, nil, args...)
		assert.Equal(t, exitError, code, args)
		assert.Contains(t, errOut, "--nats "+url+": cannot reach the NATS server", args)
	}
	code, _, errOut := runCLI(t, nil, "worker", "--storage", t.TempDir())
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--nats URL is required")
	code, _, errOut = runCLI(t, nil, "worker", "--nats", url, "--capabilities", "index,gpu")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `unknown capability "gpu"`)
}

// TestWorkerDrainsOnSIGTERM: a worker told to stop while it answers
// finishes the answer, then exits 0; the run gets the answer.
func TestWorkerDrainsOnSIGTERM(t *testing.T) {
	h := startHub(t)
	llm := newBlockingLLM(t)
	w := startWorker(t, h.ClientURL(), "w-drain", "index,llm", "CEMAF_LLM_URL="+llm.url)
	done := goCLI(context.Background(), nil, "run", "--ephemeral", "--json", "--nats", h.ClientURL())
	<-llm.entered // the worker runs the answer
	w.signal(syscall.SIGTERM)
	w.waitFor("draining") // the log line of the drain
	close(llm.release)
	require.Equal(t, exitOK, w.exitCode(), w.stderr())
	assert.Contains(t, w.stderr(), "w-drain stopped: 5 tasks done, 0 failed, 0 handed back")
	r := <-done
	require.Equal(t, exitOK, r.code, r.errOut)
	var sum runSummary
	require.NoError(t, json.Unmarshal([]byte(r.out), &sum), r.out)
	require.NotNil(t, sum.Answer)
	assert.Equal(t, "held answer [1]", sum.Answer.Text)
}

// waitWriter collects writes and closes found at the first one holding s.
type waitWriter struct {
	mu    sync.Mutex
	b     strings.Builder
	s     string
	found chan struct{}
}

func (w *waitWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if w.found != nil && strings.Contains(w.b.String(), w.s) {
		close(w.found)
		w.found = nil
	}
	return len(p), nil
}

// TestRunSaysWhyItWaits: with no worker in the fleet, run --nats says
// which node waits and why, and stops on its signal.
func TestRunSaysWhyItWaits(t *testing.T) {
	h := startHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errw := &waitWriter{s: `index-0    waiting: no live worker serves capability "index"`, found: make(chan struct{})}
	found := errw.found
	done := make(chan int, 1)
	go func() {
		done <- cli(ctx, []string{"run", "--ephemeral", "--nats", h.ClientURL()}, nil, io.Discard, errw)
	}()
	<-found
	cancel()
	assert.Equal(t, exitError, <-done)
	errw.mu.Lock()
	defer errw.mu.Unlock()
	assert.Contains(t, errw.b.String(), "index-0    cancelled")
}
