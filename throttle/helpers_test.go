package throttle_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cemaf-go/cemaf/throttle"
)

// copyTree copies the fixture tree testdata/<name> into a temporary
// directory, so that a test may rewrite files between samples.
func copyTree(t testing.TB, name string) string {
	t.Helper()
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(filepath.Join("testdata", name))); err != nil {
		t.Fatal(err)
	}
	return dst
}

// writeFile replaces the content of root/rel.
func writeFile(t testing.TB, root, rel, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root, rel), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// addCPU rewrites <root>/proc/stat and <root>/proc/self/stat so that, since
// the files' current content, busy system ticks grow by busy, idle ticks by
// idle and the process's ticks by proc.
func addCPU(t testing.TB, root string, busy, idle, proc uint64) {
	t.Helper()
	statPath := filepath.Join(root, "proc", "stat")
	b, err := os.ReadFile(statPath)
	if err != nil {
		t.Fatal(err)
	}
	first, rest, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(first)
	// cpu user nice system idle ...
	f[1] = addStr(t, f[1], busy)
	f[4] = addStr(t, f[4], idle)
	writeFile(t, root, "proc/stat", strings.Join(f, " ")+"\n"+rest)

	selfPath := filepath.Join(root, "proc", "self", "stat")
	b, err = os.ReadFile(selfPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	g := strings.Fields(s[i+1:])
	g[11] = addStr(t, g[11], proc) // utime is field 14, the 12th after ')'
	writeFile(t, root, "proc/self/stat", s[:i+1]+" "+strings.Join(g, " ")+"\n")
}

func addStr(t testing.TB, s string, d uint64) string {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(v+d, 10)
}

// scriptedSource is a SampleSource returning samples computed from the
// sample time by fn.
type scriptedSource struct {
	fn    func(now time.Time) (*throttle.Sample, error)
	calls atomic.Int64
}

func (s *scriptedSource) Sample(now time.Time) (*throttle.Sample, error) {
	s.calls.Add(1)
	return s.fn(now)
}

// sampleAt returns a sample at time at with the given CPU and memory
// percentages.
func sampleAt(at time.Time, cpu, mem float64) *throttle.Sample {
	return &throttle.Sample{Time: at, CPUPercent: cpu, MemoryUsedPercent: mem, MemoryTotalBytes: 4 << 30, ProcessRSSBytes: 1 << 20}
}
