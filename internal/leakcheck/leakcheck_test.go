package leakcheck

import (
	"testing"
	"time"
)

type recordingTB struct {
	testing.TB
	failed   bool
	cleanups []func()
}

func (r *recordingTB) Helper()               {}
func (r *recordingTB) Cleanup(f func())      { r.cleanups = append(r.cleanups, f) }
func (r *recordingTB) Errorf(string, ...any) { r.failed = true }
func (r *recordingTB) runCleanups() {
	for _, f := range r.cleanups {
		f()
	}
}

func TestDetectsLeakAndPassesWhenClean(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})

	leaky := &recordingTB{TB: t}
	check(leaky, 100*time.Millisecond)
	go func() { <-stop; close(done) }()
	// Run the check while the goroutine is still blocked: it must report it.
	// (The grace period is bounded; the goroutine is released afterwards.)
	leaky.runCleanups()
	if !leaky.failed {
		t.Fatal("leak not detected")
	}
	close(stop)
	<-done

	clean := &recordingTB{TB: t}
	check(clean, 5*time.Second)
	ch := make(chan struct{})
	go func() { close(ch) }()
	<-ch
	clean.runCleanups()
	if clean.failed {
		t.Fatal("false leak reported")
	}
}
