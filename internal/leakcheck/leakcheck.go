// Package leakcheck fails a test when it leaves goroutines behind.
//
// Check records the goroutines running when it is called and, in t.Cleanup,
// reports any goroutine that started since and is still running. Goroutines
// that are on their way out get a bounded grace period in which the checker
// yields the processor (it never sleeps on a timer).
package leakcheck

import (
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Check registers a cleanup on t that fails the test if goroutines started
// after this call are still alive when the test ends. Call it first in a test
// so that it runs after every other cleanup.
func Check(t testing.TB) {
	t.Helper()
	check(t, 5*time.Second)
}

func check(t testing.TB, grace time.Duration) {
	before := goroutineIDs()
	t.Cleanup(func() {
		deadline := time.Now().Add(grace)
		for {
			leaked := leakedSince(before)
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("leakcheck: %d goroutine(s) leaked:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			runtime.Gosched()
		}
	})
}

func stacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

func goroutineIDs() []string {
	var ids []string
	for _, s := range stacks() {
		ids = append(ids, goroutineID(s))
	}
	return ids
}

func goroutineID(stack string) string {
	// "goroutine 123 [running]:"
	f := strings.Fields(stack)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

var ignored = []string{
	"testing.(*T).Run",
	"testing.tRunner",
	"testing.runTests",
	"testing.(*M).",
	"runtime.goexit",
	"os/signal.signal_recv",
	"os/signal.loop",
	"runtime.ensureSigM",
	"created by runtime.gc",
	"runtime.MHeap_Scavenger",
	"internal/leakcheck.stacks",
}

func leakedSince(before []string) []string {
	var leaked []string
	for _, s := range stacks() {
		id := goroutineID(s)
		if slices.Contains(before, id) || isIgnored(s) {
			continue
		}
		leaked = append(leaked, s)
	}
	return leaked
}

func isIgnored(stack string) bool {
	lines := strings.SplitN(stack, "\n", 3)
	if len(lines) >= 2 {
		top := lines[1]
		for _, p := range ignored {
			if strings.Contains(top, p) {
				return true
			}
		}
	}
	// The goroutine that runs the test itself and the cleanup.
	return strings.Contains(stack, "internal/leakcheck.Check.func1") ||
		strings.Contains(stack, "testing.tRunner") && strings.Contains(stack, "testing.(*T).Run")
}
