package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/executor"
)

// runCLI runs the command line in-process with a clean environment.
func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli(context.Background(), args, env, &out, &errb)
	return code, out.String(), errb.String()
}

// cliResult is what a command line run in the background gave.
type cliResult struct {
	code        int
	out, errOut string
}

// goCLI runs the command line in-process on a goroutine of its own, with
// a clean environment; its result arrives on the channel.
func goCLI(ctx context.Context, env []string, args ...string) <-chan cliResult {
	done := make(chan cliResult, 1)
	go func() {
		var out, errb bytes.Buffer
		code := cli(ctx, args, env, &out, &errb)
		done <- cliResult{code, out.String(), errb.String()}
	}()
	return done
}

func TestDefaultRun(t *testing.T) {
	storage := t.TempDir()
	code, out, errOut := runCLI(t, nil, "--storage", storage)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "Q: What does cemaf do when the device runs hot or short of memory?")
	assert.Contains(t, out, "cemaf-overview.md")
	assert.Contains(t, out, "(extractive)")
	assert.Contains(t, errOut, "[10/10]")
	// On a busy test machine other processes may well put the agent in
	// cpu_contention; nothing else should move it.
	assert.Regexp(t, `mode: (normal|cpu_contention) throughout|mode normal -> cpu_contention`, errOut)
	assert.Contains(t, errOut, "pager:")
	assert.Contains(t, errOut, "peak memory (RSS):")
	reports, _ := filepath.Glob(filepath.Join(storage, "reports", "*.md"))
	require.Len(t, reports, 1, "the report is kept")
	report, _ := os.ReadFile(reports[0])
	assert.Contains(t, string(report), "## Passages")
	_, err := os.Stat(filepath.Join(storage, "runs.db"))
	assert.NoError(t, err, "the checkpoint file is kept")

	code, out, _ = runCLI(t, nil, "runs", "--storage", storage)
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "succeeded")
	assert.Contains(t, out, "10/10")
}

func TestRunJSONAndEphemeral(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "run", "--ephemeral", "--json", "--question", "What does PMIC-Die read on a Jetson Nano?")
	require.Equal(t, exitOK, code, errOut)
	var s runSummary
	require.NoError(t, json.Unmarshal([]byte(out), &s), out)
	require.NotNil(t, s.Answer)
	assert.Contains(t, s.Answer.Text, "100")
	assert.Contains(t, strings.Join(s.Answer.Sources, " "), "jetson-thermal.md")
	assert.Len(t, s.Nodes, 10)
	for _, n := range s.Nodes {
		assert.Equal(t, executor.Succeeded, n.Status, n.ID)
	}
	assert.Empty(t, s.Storage, "nothing kept with --ephemeral")
	assert.Empty(t, s.ReportPath)
	assert.NotContains(t, errOut, "[10/10]", "--json keeps stderr quiet")
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"run", "--bogus"}, exitUsage, "flag provided but not defined: -bogus"},
		{[]string{"run", "extra-arg"}, exitUsage, `unexpected argument "extra-arg"`},
		{[]string{"run", "--shards", "0"}, exitUsage, `--shards = "0" from the command line: out of range; accepted: an integer in [1, 64]`},
		{[]string{"graph", "--format", "svg"}, exitUsage, `--format = "svg" from the command line: unknown format; accepted: dot or mermaid`},
		{[]string{"graph", "--json"}, exitUsage, "flag provided but not defined: -json"},
		{[]string{"runs", "--shards", "2"}, exitUsage, "flag provided but not defined: -shards"},
		{[]string{"run", "--log-level", "loud"}, exitUsage, `--log-level "loud"`},
		{[]string{"serve", "--slots", "0"}, exitUsage, `--slots = "0" from the command line: out of range; accepted: an integer in [1, 1024]`},
		{[]string{"run", "--ephemeral", "--resume", "x"}, exitUsage, "--resume and --ephemeral exclude each other"},
		{[]string{"run", "--docs", "/nonexistent/docs"}, exitError, "--docs /nonexistent/docs: no such directory"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := runCLI(t, nil, tt.args...)
			assert.Equal(t, tt.code, code)
			assert.Contains(t, errOut, tt.want)
		})
	}
	code, out, _ := runCLI(t, nil, "help")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "pi-agent status")
	for _, c := range commands {
		assert.Contains(t, out, "Usage: pi-agent "+c.name+" [flags]", "help lists the flags of every command")
	}
	assert.Contains(t, out, "-max-conns n")
	assert.Contains(t, out, "-question question")

	// Each command's -h prints its own flags, and only those.
	code, _, errOut := runCLI(t, nil, "graph", "-h")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, errOut, "Usage: pi-agent graph [flags]")
	assert.Contains(t, errOut, "-format format")
	assert.NotContains(t, errOut, "-question")
	assert.NotContains(t, errOut, "-json")
	code, out, _ = runCLI(t, nil, "help", "runs")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "Usage: pi-agent runs [flags]")
	assert.NotContains(t, out, "Usage: pi-agent run [flags]")
}

func TestBadEnvironmentIsReported(t *testing.T) {
	code, _, errOut := runCLI(t, []string{"CEMAF_RESOURCE_CPU_THRESHOLD=lots", "CEMAF_RESOURCE_CPU_PARALEL=2"}, "run", "--ephemeral")
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, `CEMAF_RESOURCE_CPU_THRESHOLD = "lots" from environment: not a number`)
	assert.Contains(t, errOut, "did you mean CEMAF_RESOURCE_CPU_PARALLEL?")
}

func TestDocsWithoutText(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "photo.jpg"), []byte{0xff, 0xd8, 0xff}, 0o600))
	code, _, errOut := runCLI(t, nil, "run", "--ephemeral", "--docs", dir)
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "holds no text or markdown files")
}

func TestOwnDocs(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "greenhouse.txt"), []byte("The greenhouse sensor logs humidity every ten minutes.\n\nIrrigation starts when the soil moisture drops below thirty percent."), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "binary.md"), []byte("not\x00text"), 0o600))
	code, out, errOut := runCLI(t, nil, "run", "--ephemeral", "--docs", dir, "--question", "When does irrigation start?")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "soil moisture drops below thirty percent")
	assert.Contains(t, out, "sub/greenhouse.txt")
}

func TestGraphCommand(t *testing.T) {
	code, out, _ := runCLI(t, nil, "graph", "--format", "mermaid", "--shards", "2")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, "flowchart LR")
	assert.Contains(t, out, `["answer"]`, "the answer node is not optional: a run without an answer failed")
	code, out, _ = runCLI(t, nil, "graph")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, `"chunk" -> "index-3";`)
	if dot, err := exec.LookPath("dot"); err == nil {
		cmd := exec.Command(dot, "-Tsvg")
		cmd.Stdin = strings.NewReader(out)
		svg, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", svg)
		assert.Contains(t, string(svg), "<svg")
	}
}

func TestStatusOnPi4Fixture(t *testing.T) {
	sysfs, err := filepath.Abs("../../thermal/testdata/pi4")
	require.NoError(t, err)
	env := []string{"CEMAF_RESOURCE_SYSFS_ROOT=" + sysfs}
	code, out, errOut := runCLI(t, env, "status", "--storage", t.TempDir())
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "cpu-thermal")
	assert.Regexp(t, `\* thermal_zone0\s+cpu-thermal`, out, "the chosen sensor is marked")
	assert.Contains(t, out, "work     running")
	assert.Regexp(t, `temperature_c\s+48.7 °C\s+normal\s+70.0 °C\s+80.0 °C`, out, "the ladder from the Pi's board table")
	assert.Contains(t, out, "31.3 °C below the pause level")
	assert.Regexp(t, `mode     (normal|cpu_contention)`, out, "a busy test machine may show CPU contention")

	code, out, _ = runCLI(t, env, "status", "--json", "--storage", t.TempDir())
	require.Equal(t, exitOK, code)
	var r statusReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	require.NotNil(t, r.Thermal)
	assert.Equal(t, "raspberry-pi", r.Thermal.Board)
	require.NotNil(t, r.Sample)
	assert.Positive(t, r.Sample.MemoryTotalBytes)
}

func TestStatusWatchStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int)
	w := &notifyWriter{w: &out, wrote: make(chan struct{}, 16)}
	go func() {
		done <- cli(ctx, []string{"status", "--watch", "--interval", "100ms", "--storage", t.TempDir()}, nil, w, &errb)
	}()
	<-w.wrote // the first report
	<-w.wrote // a refresh
	cancel()
	assert.Equal(t, exitOK, <-done)
	assert.GreaterOrEqual(t, strings.Count(out.String(), "pi-agent status"), 2)
}

type notifyWriter struct {
	w     *bytes.Buffer
	wrote chan struct{}
}

func (n *notifyWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("mode ")) {
		defer func() {
			select {
			case n.wrote <- struct{}{}:
			default:
			}
		}()
	}
	return n.w.Write(p)
}

func TestConfigCommand(t *testing.T) {
	sysfs, err := filepath.Abs("../../thermal/testdata/jetson-orin")
	require.NoError(t, err)
	code, out, _ := runCLI(t, []string{"CEMAF_RESOURCE_CPU_THRESHOLD=90", "CEMAF_RESOURCE_SYSFS_ROOT=" + sysfs}, "config", "--cpu-parallel", "3", "--memory-threshold", "70")
	require.Equal(t, exitOK, code)
	assert.Regexp(t, `CEMAF_RESOURCE_CPU_THRESHOLD\s+90\s+env`, out)
	assert.Regexp(t, `CEMAF_RESOURCE_CPU_PARALLEL\s+3\s+flag`, out)
	assert.Regexp(t, `temperature_c\s+90 °C\s+board: passive trip point of cpu-thermal \(95 °C\) − 5\s+94 °C\s+board: hot trip point`, out, "every rung says where it came from")
	assert.Regexp(t, `memory_percent\s+65 %\s+default: lowered below CEMAF_RESOURCE_MEMORY_THRESHOLD\s+70 %\s+flag`, out)
}

// config shows every effective value, the derived ones included.
func TestConfigShowsEffectiveValues(t *testing.T) {
	storage := t.TempDir()
	code, out, errOut := runCLI(t, []string{"CEMAF_RESOURCE_SYSFS_ROOT=/host/sys", "CEMAF_SERVE_SLOTS=3", "CEMAF_LLM_URL=http://127.0.0.1:8081"},
		"config", "--storage", storage)
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `storage directory\s+`+regexp.QuoteMeta(storage)+`\s+flag`, out)
	assert.Regexp(t, `cgroup root\s+/host/sys/fs/cgroup\s+default: CEMAF_RESOURCE_SYSFS_ROOT/fs/cgroup`, out)
	assert.Regexp(t, `page size\s+256.0 KiB\s+default: the pager's`, out)
	assert.Regexp(t, `LLM endpoint\s+http://127.0.0.1:8081/v1/chat/completions\s+CEMAF_LLM_URL`, out)
	assert.Regexp(t, `serve --slots\s+3\s+env: CEMAF_SERVE_SLOTS`, out)
	assert.Regexp(t, `serve --max-conns\s+\d+\s+host: half the open-files limit`, out)

	code, out, _ = runCLI(t, []string{"CEMAF_RESOURCE_PAGER_PAGE_SIZE_MB=1"}, "config", "--json", "--storage", storage)
	require.Equal(t, exitOK, code)
	var rep configReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.Equal(t, "1", rep.Variables["CEMAF_RESOURCE_PAGER_PAGE_SIZE_MB"].Value)
	found := false
	for _, e := range rep.Effective {
		if e.Name == "page size" {
			found = true
			assert.Equal(t, "1.0 MiB", e.Value)
		}
	}
	assert.True(t, found)
}
