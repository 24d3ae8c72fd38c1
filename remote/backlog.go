package remote

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Backlog returns how many tasks of capability are in the task stream, in
// every band: those waiting for a worker and those a worker holds and has
// not answered yet (a work queue removes a task when it is acknowledged).
// A service's admission compares it with the slots of the live workers
// serving the capability (Fleet.Peers) before it adds a task: unlike the
// heartbeats' free slots, it is exact at the time of the call. A worker
// has its acknowledgement confirmed before it replies, so a node whose
// result came back no longer counts; one whose result was read from the
// results bucket instead (after a lost reply) may count for a moment more.
func (c *Coordinator) Backlog(ctx context.Context, capability string) (int, error) {
	if err := checkToken("capability", capability); err != nil {
		return 0, fmt.Errorf("remote: backlog: %w", err)
	}
	filter := c.res.lay.Prefix + ".task." + capability + ".>"
	info, err := c.res.stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, fmt.Errorf("remote: backlog of %q in %s on %s: %w", capability, c.res.lay.streamName(), c.res.url, err)
	}
	n := uint64(0)
	for _, k := range info.State.Subjects {
		n += k
	}
	return int(n), nil
}
