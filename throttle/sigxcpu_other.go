//go:build !unix

package throttle

import (
	"context"
	"log/slog"
)

// NotifyCPULimit returns a cancellable copy of parent: there is no SIGXCPU
// on this platform, so only stop (or parent) cancels it. The no-op is
// logged at debug level.
func NotifyCPULimit(parent context.Context, logger *slog.Logger) (ctx context.Context, stop func()) {
	loggerOrDiscard(logger).Debug("throttle: SIGXCPU is not supported on this platform; NotifyCPULimit is a no-op")
	ctx, cancel := context.WithCancel(parent)
	return ctx, cancel
}
