//go:build unix

package throttle

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cemaf-go/cemaf/limit"
)

// NotifyCPULimit returns a copy of parent that is cancelled when the process
// receives SIGXCPU, the kernel's warning that the RLIMIT_CPU soft limit
// (Rlimits.CPUSeconds) is reached; SIGKILL follows at the hard limit. The
// cause (context.Cause) is a *limit.Error of KindCPU, Subject "RLIMIT_CPU",
// in seconds, and the signal is logged (nil logger: discarded). Use the
// context as the root of the work that must shut down cleanly.
//
// It starts one goroutine, which stop ends and waits for; stop also
// unregisters the signal and cancels the context. stop is idempotent. Call
// it from main: signal handling is process-wide.
func NotifyCPULimit(parent context.Context, logger *slog.Logger) (ctx context.Context, stop func()) {
	log := loggerOrDiscard(logger)
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGXCPU)
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-sigs:
			err := &limit.Error{Kind: limit.CPU, Subject: "RLIMIT_CPU", Unit: "s",
				Detail: "SIGXCPU: CPU time soft limit reached; shutting down before the hard limit kills the process"}
			if used, e := ProcessCPUTime(); e == nil {
				err.Current = used.Seconds()
			}
			var rl unix.Rlimit
			if e := unix.Getrlimit(unix.RLIMIT_CPU, &rl); e == nil && rl.Cur != unix.RLIM_INFINITY {
				err.Limit = float64(rl.Cur)
			}
			log.Error("throttle: CPU time limit reached", "signal", "SIGXCPU",
				"cpu_seconds", err.Current, "limit_seconds", err.Limit)
			cancel(err)
		case <-ctx.Done():
		}
	}()
	return ctx, sync.OnceFunc(func() {
		signal.Stop(sigs)
		cancel(nil)
		<-done
	})
}
