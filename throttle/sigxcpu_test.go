//go:build unix

package throttle_test

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/throttle"
)

func TestNotifyCPULimit(t *testing.T) {
	ctx, stop := throttle.NotifyCPULimit(context.Background(), nil)
	defer stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGXCPU); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
	var le *limit.Error
	if err := context.Cause(ctx); !errors.As(err, &le) || le.Kind != limit.CPU || le.Subject != "RLIMIT_CPU" || le.Current <= 0 {
		t.Errorf("cause = %v (%+v), want a CPU limit error", err, le)
	}
	stop()
	stop() // idempotent

	ctx, stop = throttle.NotifyCPULimit(context.Background(), nil)
	stop()
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("after stop: cause %v, want Canceled", err)
	}
}
