package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cemaf-go/cemaf/internal/llmstub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is the stand-in LLM server behind a recorder that fails the first
// failTools requests offering tools with 503 and Retry-After, as an
// overloaded server does, and holds the first two requests without tools
// until both have arrived: the summaries must run at once.
type server struct {
	stub      llmstub.Handler
	failTools int
	both      chan struct{} // closed when the second summary arrives

	mu        sync.Mutex
	reqs      []seen
	summaries int
}

type seen struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Tools    []any  `json:"tools"`
	Messages []struct {
		Role string `json:"role"`
	} `json:"messages"`
	status int
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req seen
	_ = json.Unmarshal(body, &req)
	req.status = http.StatusOK
	s.mu.Lock()
	if len(req.Tools) > 0 && s.failTools > 0 {
		s.failTools--
		req.status = http.StatusServiceUnavailable
	}
	wait := len(req.Tools) == 0 && s.summaries < 2
	if wait {
		if s.summaries++; s.summaries == 2 {
			close(s.both)
		}
	}
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	if wait {
		select {
		case <-s.both:
		case <-r.Context().Done():
			return
		}
	}
	if req.status != http.StatusOK {
		w.Header().Set("Retry-After", "0.01")
		http.Error(w, "overloaded", req.status)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.stub.ServeHTTP(w, r)
}

// writes records each Write: the observer writes each token once.
type writes struct {
	mu  sync.Mutex
	all []string
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all = append(w.all, string(p))
	return len(p), nil
}

func (w *writes) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.all, "")
}

// tokensOf returns the pieces written after each "[node] " prefix of node,
// in order.
func (w *writes) tokensOf(node string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	in := false
	for _, p := range w.all {
		if strings.HasPrefix(p, "\n") { // a node's prefix, or the end of the stream
			in = p == "\n["+node+"] "
			continue
		}
		if in {
			out = append(out, p)
		}
	}
	return out
}

// environ is a Raspberry Pi 4's: its sysfs and a procfs fixture in place
// of this machine's, so that nothing the host does pauses or adapts the
// run.
func environ(t *testing.T) []string {
	t.Helper()
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		require.NoError(t, err)
		return a
	}
	return []string{
		"CEMAF_RESOURCE_SYSFS_ROOT=" + abs("../../thermal/testdata/pi4"),
		"CEMAF_RESOURCE_PROCFS_ROOT=" + abs("../../throttle/testdata/cgroupv2/proc"),
		"CEMAF_RESOURCE_CGROUP_ROOT=" + abs("../../throttle/testdata/cgroupv2/sys/fs/cgroup"),
		"CEMAF_RESOURCE_PAGER_STORAGE_PATH=" + filepath.Join(t.TempDir(), "pages"),
	}
}

func TestDigestEndToEnd(t *testing.T) {
	words := []string{"Fans ", "spin ", "up ", "past ", "seventy ", "degrees."}
	for _, tc := range []struct {
		name      string
		docB      string
		tool      bool
		wantChose string
	}{
		{name: "speaks of heat: the tool runs", docB: "The board's temperature reached 78 °C at noon.", tool: true, wantChose: "check-device"},
		{name: "no heat: written directly", docB: "The SD card holds 32 GB.", wantChose: "write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a, b, out := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt"), filepath.Join(dir, "digest.md")
			require.NoError(t, os.WriteFile(a, []byte("A Raspberry Pi 4 has four cores."), 0o644))
			require.NoError(t, os.WriteFile(b, []byte(tc.docB), 0o644))
			srv := &server{stub: llmstub.Handler{Answer: strings.Join(words, "")}, failTools: 3, both: make(chan struct{})}
			ts := httptest.NewServer(srv)
			defer ts.Close()

			// A bound on the run, so that summaries made one after the
			// other fail the test instead of hanging it.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var stdout writes
			err := run(ctx, []string{"-llm", ts.URL, "-out", out, a, b}, environ(t), &stdout)
			require.NoError(t, err, "output:\n%s", stdout.String())
			text := stdout.String()
			t.Log(text)

			// Both summaries streamed, word by word, in order.
			for _, node := range []string{"summarize-0", "summarize-1"} {
				assert.Equal(t, words, stdout.tokensOf(node), "the tokens of %s, one write each, in order", node)
			}
			assert.Regexp(t, regexp.MustCompile(`(?m)^merge\s+succeeded\s+attempts=1 `+tc.wantChose+`$`), text, "the branch's choice")

			got, err := os.ReadFile(out)
			require.NoError(t, err)
			digest := string(got)
			assert.Contains(t, digest, "## "+a+"\n\n"+strings.Join(words, ""))
			assert.Contains(t, digest, "## "+b+"\n\n"+strings.Join(words, ""))
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Len(t, entries, 3, "the atomic write leaves no temporary file")

			srv.mu.Lock()
			defer srv.mu.Unlock()
			var withTools []seen
			for _, r := range srv.reqs {
				assert.Equal(t, "qwen2.5:3b", r.Model, "a cool device: the normal model")
				assert.True(t, r.Stream, "every call streams")
				if len(r.Tools) > 0 {
					withTools = append(withTools, r)
				}
			}
			if !tc.tool {
				assert.Regexp(t, `(?m)^check-device\s+skipped`, text)
				assert.NotContains(t, digest, "## device")
				assert.Empty(t, withTools)
				assert.Len(t, srv.reqs, 2, "two summaries")
				return
			}
			// The tool node: three 503s (one node attempt of three HTTP
			// attempts), then the node's retry: a tool call, then the answer.
			assert.Regexp(t, `(?m)^check-device\s+succeeded\s+attempts=2`, text)
			require.Len(t, withTools, 5)
			for i, r := range withTools {
				assert.Equal(t, map[bool]int{true: http.StatusServiceUnavailable, false: http.StatusOK}[i < 3], r.status, "request %d", i)
			}
			last := withTools[4].Messages
			assert.Equal(t, "tool", last[len(last)-1].Role, "the tool's result went back to the model")
			assert.Contains(t, digest, "## device\n\nThe tool device_status said: ")
			assert.Contains(t, digest, `"temperature_c":48.686`, "the tool read the board's temperature")
			assert.Contains(t, digest, `"mode":"normal"`)
			assert.Equal(t, []string{"The ", "tool ", "device_status "}, stdout.tokensOf("check-device")[:3], "the final answer streamed too")
		})
	}
}

func TestDigestRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.txt")
	require.NoError(t, os.WriteFile(big, make([]byte, 1<<20+1), 0o644))
	ts := httptest.NewServer(&server{both: make(chan struct{})})
	defer ts.Close()
	var stdout writes
	err := run(context.Background(), []string{"-llm", ts.URL, "-out", filepath.Join(dir, "d.md"), big, dir}, environ(t), &stdout)
	require.Error(t, err)
	assert.Contains(t, err.Error(), big+": want a regular file of at most 1 MiB")
	assert.Regexp(t, `(?m)^read\s+failed\s+attempts=1`, stdout.String(), "not retried")
	assert.NoFileExists(t, filepath.Join(dir, "d.md"))

	err = run(context.Background(), []string{"only-one.txt"}, environ(t), &stdout)
	assert.ErrorContains(t, err, "usage: digest")
}
