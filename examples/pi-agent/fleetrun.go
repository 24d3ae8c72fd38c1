package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/remote"
	"github.com/cemaf-go/cemaf/throttle"
)

// joinFleet connects run --nats to the fleet: it returns the coordinator
// whose nodes the graph's index shards and answer become, and adds it to
// gopts' guards, so that the run pauses while the NATS connection is down.
// Why a remote node waits (no live worker serves it, all are paused) goes
// to the progress lines. leave closes the coordinator and the connection.
// Without --nats it returns a nil coordinator.
func (r *runner) joinFleet(ctx context.Context, gopts *factories.GuardOptions, p *progress) (c *remote.Coordinator, leave func(), err error) {
	if !r.f.nats.enabled() {
		return nil, func() {}, nil
	}
	nc, err := r.f.nats.connect(ctx, "pi-agent run", r.logger)
	if err != nil {
		return nil, nil, err
	}
	c, err = remote.NewCoordinator(ctx, nc, remote.CoordinatorOptions{Layout: r.f.nats.layout, Logger: r.logger, MaxValueBytes: fleetMaxValueBytes,
		OnWaiting: func(_ context.Context, node, reason string) { p.waiting(node, reason) }})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	guards := map[string]throttle.Guard{"nats": c}
	for k, g := range gopts.Guards {
		guards[k] = g
	}
	gopts.Guards = guards
	return c, func() {
		if err := c.Close(); err != nil {
			r.logger.Warn("pi-agent run: closing the fleet's coordinator", "error", err)
		}
		nc.Close()
	}, nil
}

// waiting prints why a remote node waits.
func (p *progress) waiting(node, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.quiet {
		fmt.Fprintf(p.w, "        %-10s waiting: %s\n", node, reason)
	}
}

// remoteAnswerTimeout bounds the answer node of run --nats: every LLM
// attempt of --llm-attempts with its --llm-timeout and the backoffs
// between them (--llm-backoff, doubling), as a worker with the same
// settings may take them.
func (f *runFlags) remoteAnswerTimeout() time.Duration {
	return f.llmTimeout*time.Duration(f.llmTries) + f.llmBackoff<<min(f.llmTries, 20)
}

// forgetFleetRun deletes what the fleet recorded for run, which is over
// and will not be resumed, within fleetForgetTimeout. A failure, or a
// connection that is down, only leaves the records on the hub until they
// expire (Layout.ResultTTL), so it is logged, not returned.
func forgetFleetRun(ctx context.Context, c *remote.Coordinator, run string, logger *slog.Logger) {
	if err := c.Check(); err != nil {
		// Not a warning: a service whose hub is away would log one per
		// request it could not run anyway.
		logger.Debug("the fleet's records of the run stay on the hub until they expire", "run", run, "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, fleetForgetTimeout)
	defer cancel()
	st, err := c.Forget(ctx, run)
	if err != nil {
		logger.Warn("the fleet's records of the run stay on the hub until they expire", "run", run, "error", err)
		return
	}
	logger.Debug("forgot the run's records on the fleet", "run", run, "records", st.Records, "values", st.Values, "bytes", st.Bytes)
}

// fleetForgetTimeout bounds forgetFleetRun: a few requests to the hub.
const fleetForgetTimeout = 5 * time.Second
