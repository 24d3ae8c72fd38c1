//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/throttle"
)

// underQEMU says the tests run under user-mode emulation, where every
// process is slow: the large corpora are skipped.
func underQEMU() bool { return os.Getenv("CEMAF_TEST_UNDER_QEMU") == "1" }

// memoryBound is the peak resident set pi-agent promises for a pager
// budget: twice the budget plus 64 MiB, whatever the corpus.
func memoryBound(budget int64) int64 { return 2*budget + 64<<20 }

const valveQuestion = "When does the greenhouse irrigation valve open?"

// childRun is what one pi-agent run in a child process gave.
type childRun struct {
	summary runSummary
	stderr  string
	state   *os.ProcessState
	maxRSS  int64 // getrusage's peak resident set, bytes: see peak
}

// runChild runs pi-agent with args in a child process (through wrap, when
// given, a command prefix such as one that joins a cgroup; with env added
// to its environment) and returns what it printed and how it ended.
func runChild(t *testing.T, wrap, env []string, args ...string) childRun {
	t.Helper()
	cmd := piAgent(t, args...)
	if len(wrap) > 0 {
		cmd.Args = append(append([]string{}, wrap...), cmd.Args...)
		cmd.Args[len(wrap)] = cmd.Path
		cmd.Path = wrap[0]
	}
	cmd.Env = append(append(cmd.Env, "TMPDIR="+t.TempDir()), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	startChild(t, cmd)
	err := cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	r := childRun{stderr: errOut.String(), state: cmd.ProcessState}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = int64(ru.Maxrss) << 10 // KiB on Linux
	}
	if out.Len() > 0 {
		require.NoError(t, json.Unmarshal(out.Bytes(), &r.summary), "stdout: %.2000s\nstderr: %.2000s", out.String(), r.stderr)
	}
	return r
}

// peak is the child's peak resident set: the VmHWM it reported at the end
// of its run. getrusage's figure is only the fallback for a child that
// printed nothing, because Linux carries the resident set the process had
// before exec into it, and os/exec runs the child in the test process's
// memory until then: once a test has grown this process (an embedded hub
// holding a corpus), every later child would report its size.
func (r childRun) peak() int64 {
	if r.summary.PeakRSSBytes > 0 {
		return r.summary.PeakRSSBytes
	}
	return r.maxRSS
}

// The peak resident set stays within twice the pager's budget plus 64 MiB
// whatever the size of the corpus: documents, chunks and postings stream
// through the paged State. CEMAF_TEST_CORPUS_MB (sizes in MB of 10^6
// bytes, comma-separated) and CEMAF_TEST_PAGER_MB (the budget) change the
// corpora and the budget: BENCHMARKS.md's figures come from them.
func TestPeakRSSDoesNotGrowWithTheCorpus(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory is in every resident set: run without -race")
	}
	budgetMB, sizes := 32, []int{1, 30, 250}
	if v := os.Getenv("CEMAF_TEST_PAGER_MB"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "CEMAF_TEST_PAGER_MB")
		budgetMB = n
	}
	if v := os.Getenv("CEMAF_TEST_CORPUS_MB"); v != "" {
		sizes = nil
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			require.NoError(t, err, "CEMAF_TEST_CORPUS_MB")
			sizes = append(sizes, n)
		}
	}
	for _, mb := range sizes {
		t.Run(strconv.Itoa(mb)+"MB", func(t *testing.T) {
			if mb > 1 && (testing.Short() || underQEMU()) {
				t.Skip("a large corpus: not with -short or under emulation")
			}
			docs := t.TempDir()
			writeCorpus(t, docs, mb*1e6)
			r := runChild(t, nil, nil, "run", "--ephemeral", "--json", "--docs", docs, "--memory-limit-mb", strconv.Itoa(budgetMB),
				"--question", valveQuestion)
			require.True(t, r.state.Success(), "pi-agent: %s\n%s", r.state, r.stderr)
			require.NotNil(t, r.summary.Answer)
			assert.Contains(t, r.summary.Answer.Text, "opens at dawn for exactly twelve minutes")
			bound := memoryBound(int64(budgetMB) << 20)
			assert.LessOrEqual(t, r.peak(), bound, "peak RSS %d MiB over 2 × %d MiB + 64 MiB", r.peak()>>20, budgetMB)
			t.Logf("corpus %d MB, budget %d MiB: peak RSS %d MiB (VmHWM %d MiB), bound %d MiB, state %d MiB, page file %d MiB",
				mb, budgetMB, r.peak()>>20, r.summary.PeakRSSBytes>>20, bound>>20, r.summary.Pager.ValueBytes>>20, r.summary.Pager.FileBytes>>20)
		})
	}
}

// memoryCgroup is a memory cgroup made for a test.
type memoryCgroup struct {
	dir string
	v2  bool
}

// newMemoryCgroup creates a memory cgroup limited to limit bytes, inside
// the test process's own one when it may, else at the root of the
// hierarchy (cgroup v2 at /sys/fs/cgroup when it is mounted there, else
// the v1 memory controller), and removes it when the test ends. It skips
// the test when no cgroup can be created.
func newMemoryCgroup(t *testing.T, limit int64) memoryCgroup {
	t.Helper()
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	name := fmt.Sprintf("pi-agent-test-%d", os.Getpid())
	var tried []string
	try := func(parent, limitFile string, v2 bool) (memoryCgroup, bool) {
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			tried = append(tried, err.Error())
			return memoryCgroup{}, false
		}
		if err := os.WriteFile(filepath.Join(dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
			tried = append(tried, err.Error())
			os.Remove(dir)
			return memoryCgroup{}, false
		}
		t.Cleanup(func() {
			if err := os.Remove(dir); err != nil {
				t.Logf("removing cgroup %s: %v", dir, err)
			}
		})
		return memoryCgroup{dir: dir, v2: v2}, true
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(own)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			const root = "/sys/fs/cgroup"
			if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
				continue // cgroup v2 is not mounted at /sys/fs/cgroup
			}
			// A cgroup holding processes cannot give controllers to
			// children: its own one usually cannot be the parent.
			for _, parent := range []string{filepath.Join(root, parts[2]), root} {
				ctl, _ := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
				if !strings.Contains(string(ctl), "memory") {
					tried = append(tried, parent+": memory controller not enabled for children")
					continue
				}
				if cg, ok := try(parent, "memory.max", true); ok {
					return cg
				}
			}
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			root := "/sys/fs/cgroup/memory"
			for _, parent := range []string{filepath.Join(root, parts[2]), root} {
				if cg, ok := try(parent, "memory.limit_in_bytes", false); ok {
					return cg
				}
			}
		}
	}
	t.Skipf("cannot create a memory cgroup (needs root and a writable cgroup file system): %s", strings.Join(tried, "; "))
	return memoryCgroup{}
}

// join is a command prefix that moves the command into the cgroup before
// it starts.
func (cg memoryCgroup) join() []string {
	return []string{"/bin/sh", "-c", `echo $$ > "$0" && exec "$@"`, filepath.Join(cg.dir, "cgroup.procs")}
}

// oomKills is how many processes of the cgroup the kernel OOM-killed.
func (cg memoryCgroup) oomKills(t *testing.T) int64 {
	t.Helper()
	file, key := "memory.oom_control", "oom_kill"
	if cg.v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(cg.dir, file))
	require.NoError(t, err)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	t.Logf("%s has no %s line (an old kernel)", file, key)
	return 0
}

// In a memory cgroup of 200 MiB, a 250 MB corpus is indexed and searched:
// the defaults come from the cgroup's limit (pager budget 200 MiB / 8), the
// run finishes, never OOM-killed, and changes mode only as the ladders
// say. With the process-memory ladder's adapt level at 30 MB (which the
// run passes), it goes to low_memory, its pager's budget lowered, and still
// finishes.
func TestRunInA200MiBMemoryCgroup(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory is in every resident set: run without -race")
	}
	if testing.Short() || underQEMU() {
		t.Skip("a 250 MB corpus: not with -short or under emulation")
	}
	const limit = 200 << 20
	cg := newMemoryCgroup(t, limit)
	docs := t.TempDir()
	writeCorpus(t, docs, 250<<20)
	for _, tc := range []struct {
		name      string
		env       []string
		lowMemory bool
	}{
		{name: "default ladders"},
		{name: "soft limit 30 MB", env: []string{"CEMAF_RESOURCE_MEMORY_SOFT_LIMIT_MB=30"}, lowMemory: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kills := cg.oomKills(t)
			r := runChild(t, cg.join(), tc.env, "run", "--ephemeral", "--json", "--docs", docs, "--question", valveQuestion)
			if ws, ok := r.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Fatalf("pi-agent was killed by %v (OOM kills in the cgroup: %d)\n%s", ws.Signal(), cg.oomKills(t)-kills, r.stderr)
			}
			assert.Equal(t, kills, cg.oomKills(t), "OOM kills in the cgroup")
			require.True(t, r.state.Success(), "pi-agent: %s\n%s", r.state, r.stderr)
			checkCgroupRun(t, r, limit, tc.lowMemory)
			t.Logf("cgroup %s: peak RSS %d MiB (bound %d MiB)", cg.dir, r.peak()>>20, memoryBound(limit/8)>>20)
		})
	}
}

// checkCgroupRun checks a run in a cgroup of limit bytes: it answered,
// took its pager budget from the limit, stayed within the memory bound,
// and changed mode as the ladders say (to low_memory, halving the budget,
// when lowMemory).
func checkCgroupRun(t *testing.T, r childRun, limit int64, lowMemory bool) {
	t.Helper()
	s := r.summary
	require.NotNil(t, s.Answer, r.stderr)
	assert.Contains(t, s.Answer.Text, "opens at dawn for exactly twelve minutes")

	// The effective memory is the cgroup's limit: the pager's budget is an
	// eighth of it, which low_memory lowers and every other mode keeps.
	budget := limit / 8
	if s.FinalMode != adaptive.LowMemory {
		assert.Equal(t, budget, s.Pager.MemoryLimitBytes, "pager budget derived from the cgroup limit")
	}
	assert.LessOrEqual(t, r.peak(), memoryBound(budget), "peak RSS %d MiB", r.peak()>>20)

	// Every mode change follows a ladder: low_memory only on a memory
	// signal, and a pause only on a rung that pauses.
	paused, low := false, false
	for _, mc := range s.ModeChanges {
		t.Logf("mode %s -> %s: %s (pager budget %d MiB)", mc.From, mc.To, mc.Reason, mc.Settings.PagerLimit>>20)
		for _, a := range mc.Active {
			if a.Mode == adaptive.LowMemory {
				assert.Contains(t, []string{throttle.SignalMemoryPercent, throttle.SignalProcessMemoryMB, throttle.SignalSwapPercent}, a.Signal, "low_memory on %s", a.Signal)
				assert.Less(t, mc.Settings.PagerLimit, budget, "low_memory lowers the pager's budget")
				low = true
			}
			paused = paused || a.Rung == throttle.Pause
		}
	}
	if s.Pauses > 0 {
		assert.True(t, paused, "the run paused with no ladder at a pause rung: %+v", s.ModeChanges)
	}
	if lowMemory {
		assert.True(t, low, "the memory ladder's adapt level was passed: low_memory")
	}
	t.Logf("budget %d MiB, %d mode changes, final mode %s, %d pauses (%d ms), took %d ms",
		budget>>20, len(s.ModeChanges), s.FinalMode, s.Pauses, s.PausedMS, s.DurationMS)
}
