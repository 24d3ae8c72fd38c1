package main

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// liveness bounds how long a process-level test waits for something that
// must happen; it is not a timing assertion, it turns a hang into a failure.
const liveness = 60 * time.Second

// child is a pi-agent process whose output (stdout and stderr) the test
// reads line by line.
type child struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	all   strings.Builder
	done  chan struct{}
	err   error
}

func startPiAgent(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	cmd := piAgent(t, args...)
	cmd.Env = append(cmd.Env, env...)
	// stdout and stderr, in one pipe.
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = pw, pw
	c := &child{t: t, cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	startChild(t, cmd)
	pw.Close()
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			c.mu.Lock()
			c.all.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.done
	})
	return c
}

// waitFor waits for a stderr line containing s.
func (c *child) waitFor(s string) {
	c.t.Helper()
	timer := time.NewTimer(liveness)
	defer timer.Stop()
	for {
		select {
		case line := <-c.lines:
			if strings.Contains(line, s) {
				return
			}
		case <-c.done:
			c.t.Fatalf("pi-agent exited before printing %q:\n%s", s, c.stderr())
		case <-timer.C:
			c.t.Fatalf("pi-agent did not print %q:\n%s", s, c.stderr())
		}
	}
}

func (c *child) signal(sig os.Signal) {
	c.t.Helper()
	require.NoError(c.t, c.cmd.Process.Signal(sig))
}

// exitCode waits for the process to end and returns its exit code.
func (c *child) exitCode() int {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(liveness):
		c.t.Fatalf("pi-agent did not end:\n%s", c.stderr())
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(c.t, c.err)
	return 0
}

func (c *child) stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all.String()
}

// hangingLLM accepts chat requests and never answers them; entered gets a
// value for each.
func hangingLLM(t *testing.T) (url string, entered chan struct{}) {
	entered = make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		entered <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv.URL, entered
}

func waitEntered(t *testing.T, ch chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(liveness):
		t.Fatal("the LLM endpoint was never called")
	}
}

func TestSignalStopsARunWaitingOnTheLLM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	url, entered := hangingLLM(t)
	storage := t.TempDir()
	c := startPiAgent(t, []string{"CEMAF_LLM_URL=" + url}, "run", "--storage", storage)
	waitEntered(t, entered)
	c.signal(syscall.SIGINT)
	assert.Equal(t, exitError, c.exitCode())
	assert.Contains(t, c.stderr(), "pi-agent: interrupt: stopping (again to quit at once)")
	assert.Contains(t, c.stderr(), "answer     cancelled")
	assert.NotContains(t, c.stderr(), "unreachable")
	assert.Contains(t, c.stderr(), "(resume with: pi-agent run --resume ", "the hint")
	assert.Contains(t, c.stderr(), " --storage "+storage+")", "the hint names the storage directory, which is not the default")
}

// hotPi is a copy of the Raspberry Pi 4 sysfs fixture whose sensor reads
// 90 °C: work pauses.
func hotPi(t *testing.T) string {
	dir := t.TempDir()
	src := "../../thermal/testdata/pi4"
	require.NoError(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o600)
	}))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "class/thermal/thermal_zone0/temp"), []byte("90000\n"), 0o600))
	return dir
}

func TestSignalStopsAPausedRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	env := []string{"CEMAF_RESOURCE_SYSFS_ROOT=" + hotPi(t), "CEMAF_RESOURCE_CHECK_INTERVAL_SECONDS=0.05"}
	c := startPiAgent(t, env, "run", "--storage", t.TempDir())
	c.waitFor("paused: ")
	c.signal(syscall.SIGTERM)
	assert.Equal(t, exitError, c.exitCode())
	assert.Contains(t, c.stderr(), "stopped while paused, after ")
	assert.NotContains(t, c.stderr(), "resumed after", "a run cancelled while paused did not resume")
}

func TestSecondSignalQuitsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	url, entered := hangingLLM(t)
	c := startPiAgent(t, []string{"CEMAF_LLM_URL=" + url}, "serve", "--addr", "127.0.0.1:0", "--storage", t.TempDir(),
		"--drain-timeout", "1h", "--log-level", "info")
	c.waitFor("listening on http://")
	addr := strings.Fields(strings.SplitAfter(c.stderr(), "listening on http://")[1])[0]
	go func() {
		resp, err := http.Post("http://"+addr+"/v1/runs", "application/json", strings.NewReader(`{"question":"held"}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	waitEntered(t, entered)
	c.signal(syscall.SIGTERM)
	c.waitFor("draining")
	c.signal(syscall.SIGTERM)
	assert.Equal(t, 128+int(syscall.SIGTERM), c.exitCode(), "the second signal ends the process, drain or not")
	assert.Contains(t, c.stderr(), "terminated again: quitting")
}

func TestSignalStopsStatusWatch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	c := startPiAgent(t, nil, "status", "--watch", "--interval", "100ms", "--storage", t.TempDir())
	c.waitFor("pi-agent status")
	c.signal(syscall.SIGINT)
	assert.Equal(t, exitOK, c.exitCode())
}
