package factories_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/internal/llmstub"
	"github.com/cemaf-go/cemaf/throttle"
)

// TestLLMStubChild is the stand-in LLM server process of the policy tests:
// a separate process, as llama.cpp's server or Ollama is on a Pi.
func TestLLMStubChild(t *testing.T) {
	mode := os.Getenv("FACTORIES_LLM_STUB")
	if mode == "" {
		t.Skip("helper process of TestOwnLLMDoesNotPause")
	}
	work, _ := time.ParseDuration(os.Getenv("FACTORIES_LLM_STUB_WORK"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(2)
	}
	fmt.Println(ln.Addr().String())
	_ = http.Serve(ln, &llmstub.Handler{Work: work, Burn: mode == "burn"})
	os.Exit(0)
}

// startStub starts a stand-in LLM server process and returns its URL.
func startStub(t *testing.T, mode string, work time.Duration) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLLMStubChild$")
	cmd.Env = append(os.Environ(), "FACTORIES_LLM_STUB="+mode, "FACTORIES_LLM_STUB_WORK="+work.String())
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	return "http://" + strings.TrimSpace(line) + "/v1/chat/completions"
}

func requireProcfs(t *testing.T) {
	t.Helper()
	if os.Getenv("CEMAF_TEST_UNDER_QEMU") != "" {
		t.Skip("measures real CPU use and wall time: meaningless under qemu-user; CI runs it natively")
	}
	if runtime.GOOS != "linux" {
		t.Skip("needs procfs")
	}
	if _, err := os.Stat("/proc/self/net/tcp"); err != nil {
		t.Skip("needs procfs:", err)
	}
}

// policyConfig is the default configuration of this host, sampling five
// times a second so that a short test sees several samples.
func policyConfig(t *testing.T, extra ...string) factories.ResourceConfig {
	t.Helper()
	env := append([]string{
		"CEMAF_RESOURCE_CHECK_INTERVAL_SECONDS=0.2",
		"CEMAF_RESOURCE_PAGER_STORAGE_PATH=" + filepath.Join(t.TempDir(), "pages"),
		"CEMAF_RESOURCE_PAGER_MEMORY_LIMIT_MB=16",
	}, extra...)
	cfg, _, err := factories.Load(factories.LoadOptions{Environ: env})
	require.NoError(t, err)
	return cfg
}

// peaks are the highest CPU shares sampled during a run.
type peaks struct {
	mu              sync.Mutex
	helpers, others float64
}

// llmRun runs calls LLM calls one after the other through the runtime (each
// an I/O-bound node paced by the CPU throttler) and returns the run's
// result, its wall time and the CPU shares sampled meanwhile.
func llmRun(t *testing.T, url string, calls int, env ...string) (*executor.Result, time.Duration, *factories.Runtime, *peaks) {
	t.Helper()
	rt, err := factories.NewRuntime(policyConfig(t, env...), factories.RuntimeOptions{Guard: factories.GuardOptions{HelperEndpoints: []string{url}}})
	require.NoError(t, err)
	t.Cleanup(func() { rt.Close() })
	pk := &peaks{}
	t.Cleanup(rt.Guard.Monitor.Subscribe(func(s *throttle.Sample) {
		pk.mu.Lock()
		defer pk.mu.Unlock()
		pk.helpers, pk.others = max(pk.helpers, s.HelpersCPUPercent), max(pk.others, s.OthersCPUPercent)
	}))
	var nodes []dag.Node
	for i := range calls {
		n := dag.Node{ID: "call-" + strconv.Itoa(i), Class: dag.IO, Run: func(ctx context.Context, s dag.State) error {
			return rt.CPU.Do(ctx, func(ctx context.Context) error {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`)))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			})
		}}
		if i > 0 {
			n.DependsOn = []string{"call-" + strconv.Itoa(i-1)}
		}
		nodes = append(nodes, n)
	}
	g, err := dag.New(nodes...)
	require.NoError(t, err)
	start := time.Now()
	// Other processes may keep the machine so busy that the CPU ladder
	// pauses the run for them, as it should; a run that cannot finish in
	// two minutes says so instead of hanging the package's tests.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := rt.Executor.Run(ctx, g, rt.State())
	if err != nil && ctx.Err() != nil && res != nil && res.Pauses > 0 {
		var tripped []string
		for _, l := range rt.Guard.Breaker.Status().Ladders {
			if l.Trips > 0 {
				tripped = append(tripped, l.Signal)
			}
		}
		if len(tripped) == 1 && tripped[0] == throttle.SignalCPUOthersPercent {
			t.Skipf("the CPU used by other processes paused the run for %v and it did not finish in 2 minutes: too busy to measure", res.Paused)
		}
		t.Fatalf("the run was paused for %v by %v and did not finish", res.Paused, tripped)
	}
	require.NoError(t, err)
	return res, time.Since(start), rt, pk
}

// TestOwnLLMDoesNotPause runs an agent whose LLM server, a separate process
// on 127.0.0.1, keeps every core busy while it answers, with the default
// ladders and nothing declared: the server is found from its listening
// socket and counted as the agent's own work, so the run is not paused,
// and its wall time stays within 1.2× the same run against a server that
// only waits as long.
func TestOwnLLMDoesNotPause(t *testing.T) {
	requireProcfs(t)
	if testing.Short() {
		t.Skip("takes about 10 s")
	}
	const work, calls = 700 * time.Millisecond, 5
	waitURL := startStub(t, "wait", work)
	burnURL := startStub(t, "burn", work)

	waitRes, waitWall, _, wpk := llmRun(t, waitURL, calls)
	burnRes, burnWall, rt, pk := llmRun(t, burnURL, calls)
	// Other processes may load the machine so much that the CPU ladder
	// rightly pauses the agent for them (go test runs packages in
	// parallel). With the busy server counted as the agent's own, that is
	// possible only when others alone use 95 % of the CPUs: then this test
	// cannot tell, and says so.
	for _, p := range []*peaks{wpk, pk} {
		p.mu.Lock()
		others := p.others
		p.mu.Unlock()
		if others > 95 && (waitRes.Pauses > 0 || burnRes.Pauses > 0) {
			t.Skipf("other processes used %.0f%% of the CPUs and paused the run: the machine is too busy for this test", others)
		}
	}
	pk.mu.Lock()
	t.Logf("busy server run: helpers used up to %.0f%% of the CPUs, others up to %.0f%%", pk.helpers, pk.others)
	assert.Greater(t, pk.helpers, 40.0, "the server did keep the CPUs busy, and that counted as the agent's own")
	pk.mu.Unlock()

	smp := rt.Guard.Monitor.Snapshot().Sample
	var found bool
	for _, h := range smp.Helpers {
		found = found || strings.HasPrefix(h.Via, "endpoint ")
	}
	assert.True(t, found, "the LLM server is found from its socket: %+v", smp.Helpers)
	assert.Zero(t, waitRes.Pauses)
	assert.Zero(t, burnRes.Pauses, "the CPU its own LLM uses never pauses the agent")
	ls, _ := rt.Guard.Breaker.Status().Ladder(throttle.SignalCPUOthersPercent)
	assert.Less(t, ls.Trips, 1, "the CPU ladder never tripped")
	ratio := float64(burnWall) / float64(waitWall)
	t.Logf("wall time: waiting server %v, busy server %v (%.2f×); throttler delays %+v", waitWall, burnWall, ratio, rt.CPU.Stats())
	assert.LessOrEqual(t, ratio, 1.2)
}

// TestThrottlerPacesTheHelper: with a lower target the CPU throttler
// delays the calls, because it measures the CPU the LLM server burns, not
// only this process's.
func TestThrottlerPacesTheHelper(t *testing.T) {
	requireProcfs(t)
	if testing.Short() {
		t.Skip("takes up to 10 s")
	}
	url := startStub(t, "burn", 300*time.Millisecond)
	// 5 % of the board over 5 s is 0.5 s of CPU on 2 cores: one call that
	// burns every core for 0.3 s uses most of it, whatever else the
	// machine is doing, so the next ones must wait.
	// The CPU ladder is off: this test is about the throttler, and a busy
	// machine must not pause the run.
	_, wall, rt, _ := llmRun(t, url, 3, "CEMAF_RESOURCE_CPU_TARGET_PERCENT=5", "CEMAF_RESOURCE_CPU_ADAPT=0", "CEMAF_RESOURCE_CPU_THRESHOLD=0")
	st := rt.CPU.Stats()
	t.Logf("3 calls of 0.3 s burning every core, target 5 %%: %v, %+v", wall, st)
	assert.Positive(t, st.Delays, "the server's CPU is paced")
	assert.Positive(t, st.Delayed)
}

// TestUnrelatedHogYields starts stress-ng on every core: the CPU used by
// others climbs the CPU ladder, the agent goes to cpu_contention (one CPU
// node at a time), then pauses, and resumes once the hog is gone.
func TestUnrelatedHogYields(t *testing.T) {
	requireProcfs(t)
	if testing.Short() {
		t.Skip("runs stress-ng for several seconds")
	}
	stress, err := exec.LookPath("stress-ng")
	if err != nil {
		t.Skip("stress-ng is not installed (CI installs it)")
	}
	cfg := policyConfig(t, "CEMAF_RESOURCE_HOLD_SECONDS=1", "CEMAF_RESOURCE_COOLDOWN_SECONDS=1")
	rt, err := factories.NewRuntime(cfg, factories.RuntimeOptions{})
	require.NoError(t, err)
	defer rt.Close()
	modes := make(chan adaptive.Mode, 64)
	rt.Executor.OnModeChange(func(c adaptive.ModeChange) { modes <- c.To })
	paused := make(chan bool, 64)
	rt.Guard.Breaker.OnChange(func(c throttle.Change) {
		if c.Signal == throttle.SignalCPUOthersPercent {
			paused <- c.To == throttle.Pause
		}
	})

	hog := exec.Command(stress, "--cpu", strconv.Itoa(runtime.NumCPU()), "--timeout", "60s", "--quiet")
	require.NoError(t, hog.Start())
	killed := false
	defer func() {
		if !killed {
			_ = hog.Process.Kill()
			_ = hog.Wait()
		}
	}()
	waitFor := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.After(d)
		for !ok() {
			select {
			case <-deadline:
				t.Fatalf("%s did not happen within %v; ladders %+v", what, d, rt.Guard.Breaker.Status().Ladders)
			case <-rt.Guard.Monitor.Next():
			}
		}
	}
	waitFor("cpu_contention", 20*time.Second, func() bool { return rt.Executor.CurrentMode() == adaptive.CPUContention })
	assert.Equal(t, 1, rt.Base.Limits().CPU, "the CPU class narrows to one node")
	waitFor("the pause", 20*time.Second, func() bool { return rt.Guard.Breaker.Paused() })
	require.Error(t, rt.Guard.Check())

	require.NoError(t, hog.Process.Kill())
	_ = hog.Wait()
	killed = true
	waitFor("the resume", 60*time.Second, func() bool { return !rt.Guard.Breaker.Paused() })
}
