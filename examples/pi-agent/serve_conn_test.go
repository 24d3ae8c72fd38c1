package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dial opens a raw TCP connection to the test server.
func (ts *testServer) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// connsIn counts the server's connections in state st.
func (ts *testServer) connsIn(st http.ConnState) int {
	l := ts.s.conns
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for c := range l.open {
		if c.state == st {
			n++
		}
	}
	return n
}

// readResponse reads one HTTP response from c, within the liveness bound.
func readResponse(t *testing.T, c net.Conn) (*http.Response, []byte, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(liveness))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// Six clients that send their body slowly do not lock the service: the
// body is read before a run slot is taken.
func TestSlowBodiesDoNotHoldRunSlots(t *testing.T) {
	ts := startServer(t, func(o *serveOptions) { o.slots = 1; o.queue = 0; o.readBodyTimeout = time.Hour })
	for range 6 {
		c := ts.dial(t)
		fmt.Fprintf(c, "POST /v1/runs HTTP/1.1\r\nHost: pi\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"quest")
	}
	require.Eventually(t, func() bool { return ts.connsIn(http.StateActive) == 6 }, liveness, time.Millisecond, "the six handlers are reading their bodies")
	code, _, body := post(t, ts.url, `{"question":"How fast do SD cards write?"}`)
	assert.Equal(t, http.StatusOK, code, "a slot is free for a client that sent its body: %s", body)
	assert.Zero(t, ts.s.inFlight.Load())
	require.NoError(t, ts.stop())
}

func TestSlowBodyTimesOut(t *testing.T) {
	ts := startServer(t, func(o *serveOptions) { o.readBodyTimeout = 50 * time.Millisecond })
	c := ts.dial(t)
	fmt.Fprintf(c, "POST /v1/runs HTTP/1.1\r\nHost: pi\r\nContent-Length: 100\r\n\r\n{\"question\"")
	resp, body, err := readResponse(t, c)
	require.NoError(t, err)
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	assert.Contains(t, string(body), "the body did not arrive within 50ms")
	// And the server closes the connection.
	_, err = c.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
	require.NoError(t, ts.stop())
}

func TestSlowHeadersAndIdleConnectionsAreClosed(t *testing.T) {
	ts := startServer(t, func(o *serveOptions) {
		o.readHeaderTimeout = 50 * time.Millisecond
		o.connIdleTimeout = 50 * time.Millisecond
	})
	slow := ts.dial(t)
	fmt.Fprintf(slow, "POST /v1/runs HTTP/1.1\r\nHost: pi\r\n")
	slow.SetReadDeadline(time.Now().Add(liveness))
	_, err := io.ReadAll(slow)
	assert.NoError(t, err, "the server closed the connection (ReadAll stops at EOF)")

	idle := ts.dial(t)
	fmt.Fprintf(idle, "GET /healthz HTTP/1.1\r\nHost: pi\r\n\r\n")
	resp, _, err := readResponse(t, idle)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	idle.SetReadDeadline(time.Now().Add(liveness))
	_, err = idle.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF, "the idle keep-alive connection is closed after the idle timeout")
	require.NoError(t, ts.stop())
}

// At the connection limit, the oldest idle connection makes room for a new
// one; when every connection is busy, the new one is refused with a 503.
func TestConnectionLimit(t *testing.T) {
	ts := startServer(t, func(o *serveOptions) { o.maxConns = 4; o.readBodyTimeout = time.Hour })
	var idle []net.Conn
	for range 4 {
		c := ts.dial(t)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: pi\r\n\r\n")
		resp, _, err := readResponse(t, c)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		idle = append(idle, c)
	}
	require.Eventually(t, func() bool { return ts.connsIn(http.StateIdle) == 4 }, liveness, time.Millisecond)
	resp, err := http.Get(ts.url + "/healthz")
	require.NoError(t, err, "a fifth connection gets in")
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, 1, ts.s.conns.evicted.Load())
	idle[0].SetReadDeadline(time.Now().Add(liveness))
	_, err = idle[0].Read(make([]byte, 1))
	assert.Error(t, err, "the oldest idle connection was closed to make room")
	http.DefaultClient.CloseIdleConnections()

	// Four connections busy sending their bodies: a new one is refused.
	for _, c := range idle {
		c.Close()
	}
	require.Eventually(t, func() bool { return ts.s.conns.Open() == 0 }, liveness, time.Millisecond)
	for range 4 {
		c := ts.dial(t)
		fmt.Fprintf(c, "POST /v1/runs HTTP/1.1\r\nHost: pi\r\nContent-Length: 100\r\n\r\n{")
	}
	require.Eventually(t, func() bool { return ts.connsIn(http.StateActive) == 4 }, liveness, time.Millisecond)
	c := ts.dial(t)
	resp, body, err := readResponse(t, c)
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	var ae struct {
		Error string `json:"error"`
		Limit struct {
			Kind  string  `json:"kind"`
			Limit float64 `json:"limit"`
		} `json:"limit"`
	}
	require.NoError(t, json.Unmarshal(body, &ae), "%s", body)
	assert.Equal(t, "connections", ae.Limit.Kind)
	assert.EqualValues(t, 4, ae.Limit.Limit)
	assert.EqualValues(t, 1, ts.s.conns.refused.Load())
	require.NoError(t, ts.stop())
}

// With the open-files limit lowered to 256 (in a child process), 600 idle
// keep-alive connections never make the service unreachable: the
// connection limit keeps the descriptors within the limit, /healthz
// answers, and the idle connections are closed after the idle timeout.
func TestIdleConnectionsPastTheDescriptorLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process and opens 600 connections")
	}
	var rl syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl))
	if rl.Cur < 800 {
		t.Skipf("the test process may open only %d files", rl.Cur)
	}
	c := startPiAgent(t, nil, "serve", "--addr", "127.0.0.1:0", "--storage", t.TempDir(),
		"--rlimits", "--rlimit-nofile", "256", "--conn-idle-timeout", "5s")
	c.waitFor("listening on http://")
	assert.Contains(t, c.stderr(), "at most 128 connections", "half the open-files limit")
	addr := strings.Fields(strings.SplitAfter(c.stderr(), "listening on http://")[1])[0]

	var held []net.Conn
	defer func() {
		for _, h := range held {
			h.Close()
		}
	}()
	for range 600 {
		h, err := net.Dial("tcp", addr)
		require.NoError(t, err, "the kernel accepts the connection into the backlog")
		held = append(held, h)
		fmt.Fprintf(h, "GET /healthz HTTP/1.1\r\nHost: pi\r\n\r\n")
		// Read the answer; a connection evicted before its request was
		// read gets none.
		readResponse(t, h)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "/healthz answers")

	resp, err = client.Get("http://" + addr + "/health/detailed")
	require.NoError(t, err)
	var d struct {
		Connections map[string]int64 `json:"connections"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&d))
	resp.Body.Close()
	t.Logf("connections: %v", d.Connections)
	assert.LessOrEqual(t, d.Connections["open"], int64(128))
	assert.Positive(t, d.Connections["evicted"])
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.cmd.Process.Pid))
	require.NoError(t, err)
	assert.Less(t, len(fds), 256, "descriptors stay below the limit")
	assert.NotContains(t, c.stderr(), "too many open files")

	// The connections still open are closed after the idle timeout.
	for _, h := range held {
		h.SetReadDeadline(time.Now().Add(liveness))
		_, err := io.ReadAll(h)
		if err != nil {
			assert.NotErrorIs(t, err, os.ErrDeadlineExceeded, "an idle connection stayed open")
		}
	}
	c.signal(syscall.SIGTERM)
	assert.Equal(t, exitOK, c.exitCode())
}
