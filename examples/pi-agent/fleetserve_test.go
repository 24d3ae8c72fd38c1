package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/remote"
)

// startFleetServer starts a serve --nats service named id on the hub at url.
func startFleetServer(t *testing.T, url, id string, mutate func(*serveOptions)) *testServer {
	t.Helper()
	ts := startServer(t, func(o *serveOptions) {
		o.nats, o.workerID, o.slots = natsFlags{url: url}, id, 1
		if mutate != nil {
			mutate(o)
		}
	})
	<-ts.s.fleet.worker.Ready()
	return ts
}

// waitPeers waits until ts's view of the fleet holds n services taking
// requests (the view follows the heartbeats, which arrive asynchronously).
func waitPeers(t *testing.T, ts *testServer, ready int) {
	t.Helper()
	require.Eventually(t, func() bool {
		return ts.s.fleet.coord.Fleet().Capacity(capServe, time.Now()).Ready == ready
	}, 30*time.Second, 5*time.Millisecond, "%d services ready in the view of %s", ready, ts.s.fleet.worker.ID())
}

// fleetResult is the outcome of a request posted from a goroutine of the
// test (which may not call t.FailNow): code 0 and the error in body when
// the request failed.
type fleetResult struct {
	code int
	rr   fleetRunResponse
	body string
}

// postAsync posts question to ts; it does not use t.
func postAsync(ts *testServer, question string) fleetResult {
	resp, err := http.Post(ts.url+"/v1/runs", "application/json", strings.NewReader(fmt.Sprintf(`{"question":%q}`, question)))
	if err != nil {
		return fleetResult{body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := fleetResult{code: resp.StatusCode, body: string(b)}
	if err := json.Unmarshal(b, &r.rr); err != nil {
		r.code, r.body = 0, err.Error()+": "+r.body
	}
	return r
}

func postFleet(t *testing.T, ts *testServer, question string) (int, fleetRunResponse, string) {
	t.Helper()
	code, _, body := post(t, ts.url, fmt.Sprintf(`{"question":%q}`, question))
	var rr fleetRunResponse
	if code == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, &rr), string(body))
	}
	return code, rr, string(body)
}

// TestServeFleetSharesAQueue: two services on one hub share their
// requests: a request accepted by a board whose memory is short is run by
// the other; with both paused the fleet answers 503, naming the fleet.
func TestServeFleetSharesAQueue(t *testing.T) {
	h := startHub(t)
	a := startFleetServer(t, h.ClientURL(), "serve-a", nil)
	b := startFleetServer(t, h.ClientURL(), "serve-b", nil)
	waitPeers(t, a, 2)
	waitPeers(t, b, 2)

	code, rr, body := postFleet(t, a, "How fast do SD cards write?")
	require.Equal(t, http.StatusOK, code, body)
	require.NotNil(t, rr.Answer)
	assert.Contains(t, rr.Answer.Text, "MB/s")
	assert.Equal(t, "sd-card-storage.md", rr.Passages[0].Name)
	assert.Contains(t, []string{"serve-a", "serve-b"}, rr.RanBy)

	// What a fleet does not serve is refused, naming it.
	for _, body := range []string{`{"question":"swap?","stream":true}`, `{"question":"swap?","clarify":true}`} {
		code, _, raw := post(t, a.url, body)
		assert.Equal(t, http.StatusBadRequest, code, body)
		assert.Contains(t, string(raw), `\"stream\" and \"clarify\" are not served by serve --nats`, body)
	}

	resp, err := http.Get(a.url + "/health/detailed")
	require.NoError(t, err)
	var d struct{ Fleet fleetHealth }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&d))
	resp.Body.Close()
	assert.Equal(t, "serve-a", d.Fleet.ID)
	assert.Len(t, d.Fleet.Services, 2)
	assert.Equal(t, 2, d.Fleet.Capacity.Ready)
	assert.Zero(t, d.Fleet.Backlog)

	// A's memory is short: its worker pulls nothing, B runs what A accepts.
	a.setMemory(95)
	waitPeers(t, a, 1)
	for range 3 {
		code, rr, body = postFleet(t, a, "What does under-voltage do?")
		require.Equal(t, http.StatusOK, code, body)
		assert.Equal(t, "serve-b", rr.RanBy)
	}

	// Both short: the fleet takes nothing.
	b.setMemory(95)
	waitPeers(t, a, 0)
	code, hdr, raw := post(t, a.url, `{"question":"swap?"}`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.NotEmpty(t, hdr.Get("Retry-After"))
	assert.Contains(t, string(raw), `the fleet takes no request: all 2 workers serving capability \"serve\" are paused`)
	assert.Contains(t, string(raw), "serve-a: ")

	// B recovers: A's requests go to B again.
	b.setMemory(30)
	waitPeers(t, a, 1)
	code, rr, body = postFleet(t, a, "What does under-voltage do?")
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "serve-b", rr.RanBy)

	// The requests' runs, answered, left no results on the hub.
	records, _ := fleetLeftovers(t, h.ClientURL())
	assert.Empty(t, records)

	require.NoError(t, a.stop())
	require.NoError(t, b.stop())
}

// TestServeFleetQueueIsBounded: the fleet admits as many requests as its
// services have slots, plus --queue, then answers 429.
func TestServeFleetQueueIsBounded(t *testing.T) {
	h := startHub(t)
	llm := newBlockingLLM(t)
	withLLM := func(o *serveOptions) { o.llmURL, o.queue = llm.url, 1 }
	a := startFleetServer(t, h.ClientURL(), "serve-a", withLLM)
	b := startFleetServer(t, h.ClientURL(), "serve-b", withLLM)
	waitPeers(t, a, 2)

	results := make(chan fleetResult, 3)
	for _, q := range []string{"first", "second"} {
		go func() { results <- postAsync(a, q) }()
	}
	<-llm.entered
	<-llm.entered // both services hold a run
	go func() { results <- postAsync(b, "third") }()
	require.Eventually(t, func() bool {
		n, err := a.s.fleet.coord.Backlog(context.Background(), capServe)
		return err == nil && n == 3
	}, 30*time.Second, 5*time.Millisecond, "the third waits in the fleet's queue")
	code, hdr, raw := post(t, a.url, `{"question":"fourth"}`)
	assert.Equal(t, http.StatusTooManyRequests, code, string(raw))
	assert.Equal(t, "2", hdr.Get("Retry-After"))
	assert.Contains(t, string(raw), "the fleet's 2 run slots and 1 queue place are full")
	close(llm.release)
	for range 3 {
		r := <-results
		assert.Equal(t, http.StatusOK, r.code, r.body)
	}
	require.NoError(t, a.stop())
	require.NoError(t, b.stop())
}

// TestStatusShowsTheFleet: status --nats lists the live workers with their
// capabilities, mode, free slots and when they were last heard from; a
// worker whose last heartbeat is old is left out.
func TestStatusShowsTheFleet(t *testing.T) {
	h := startHub(t)
	w := startWorker(t, h.ClientURL(), "w-status", "index")
	a := startFleetServer(t, h.ClientURL(), "serve-a", nil)

	// A heartbeat sent a minute ago, as a worker killed then left it.
	nc, err := remote.Connect(context.Background(), h.ClientURL(), remote.ConnectOptions{})
	require.NoError(t, err)
	defer nc.Close()
	putHeartbeat(t, nc, remote.Peer{ID: "w-gone", Capabilities: []string{"llm"}, Slots: 8, Free: 8, Sent: time.Now().Add(-time.Minute)})

	code, out, errOut := runCLI(t, nil, "status", "--nats", h.ClientURL(), "--json")
	require.Equal(t, exitOK, code, errOut)
	var r fleetReport
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	var ids []string
	for _, p := range r.Workers {
		ids = append(ids, p.ID)
	}
	assert.Equal(t, []string{"serve-a", "w-status"}, ids)
	ws := r.Workers[1]
	assert.Equal(t, []string{"index"}, ws.Capabilities)
	assert.Equal(t, 4, ws.Slots)
	assert.Equal(t, 4, ws.Free)
	assert.NotEmpty(t, ws.Mode)
	require.Len(t, r.Capacity, 2)
	assert.Equal(t, remote.Capacity{Capability: "index", Workers: 1, Ready: 1, FreeSlots: 4}, r.Capacity[0])

	code, out, errOut = runCLI(t, nil, "status", "--nats", h.ClientURL())
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `w-status\s+\S+\s+index\s+\S+\s+.+\s+4/4\s+0\s+\S+ ago\s+taking tasks`, out)
	assert.Contains(t, out, "serve-a")
	assert.Contains(t, out, "index    1 worker, 1 ready, 4 slots free")
	assert.NotContains(t, out, "w-gone")

	stopWorker(t, w)
	require.NoError(t, a.stop())
	code, out, _ = runCLI(t, nil, "status", "--nats", h.ClientURL())
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "no live worker", "stopped workers remove their heartbeat")
}

// putHeartbeat writes p into the fleet bucket as its worker would.
func putHeartbeat(t *testing.T, nc *nats.Conn, p remote.Peer) {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	kv, err := js.KeyValue(context.Background(), "CEMAF_FLEET")
	require.NoError(t, err)
	b, err := json.Marshal(p)
	require.NoError(t, err)
	_, err = kv.Put(context.Background(), "w."+base64.RawURLEncoding.EncodeToString([]byte(p.ID)), b)
	require.NoError(t, err)
}

// TestServeFleetHandsBackOnDrain: a service that stops while it runs
// another's request hands it back after its drain timeout, and another
// service runs it: the client gets its answer.
func TestServeFleetHandsBackOnDrain(t *testing.T) {
	h := startHub(t)
	llm := newBlockingLLM(t)
	a := startFleetServer(t, h.ClientURL(), "serve-a", func(o *serveOptions) { o.llmURL = llm.url })
	b := startFleetServer(t, h.ClientURL(), "serve-b", func(o *serveOptions) { o.llmURL, o.drainTimeout = llm.url, 100*time.Millisecond })
	a.setMemory(95)
	waitPeers(t, a, 1) // only B takes requests

	done := make(chan fleetResult, 1)
	go func() { done <- postAsync(a, "held") }()
	<-llm.entered // B runs it
	a.setMemory(30)
	waitPeers(t, a, 2)
	require.NoError(t, b.stop()) // B's drain timeout passes: the request goes back
	<-llm.entered                // A runs it
	close(llm.release)
	r := <-done
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, "serve-a", r.rr.RanBy)
	require.NotNil(t, r.rr.Answer)
	assert.Equal(t, "held answer [1]", r.rr.Answer.Text)
	require.NoError(t, a.stop())
}
