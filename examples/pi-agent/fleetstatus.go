package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cemaf-go/cemaf/remote"
)

// fleetReport is what pi-agent status --nats prints: the live workers of
// the fleet and what they offer per capability.
type fleetReport struct {
	Time     time.Time         `json:"time"`
	Server   string            `json:"server"`
	Workers  []fleetPeer       `json:"workers"`
	Capacity []remote.Capacity `json:"capacity"`
}

type fleetPeer struct {
	remote.Peer
	// LastHeardMS is how long ago the worker sent its last heartbeat, by
	// this device's clock against the worker's.
	LastHeardMS int64 `json:"last_heard_ms"`
}

// fleetStatus prints the fleet of f.nats once, or every interval with
// watch until ctx ends.
func fleetStatus(ctx context.Context, f *statusFlags, stdout, stderr io.Writer) error {
	logger, _, err := f.logger(stderr)
	if err != nil {
		return err
	}
	nc, err := f.nats.connect(ctx, "pi-agent status", logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	fl, err := remote.WatchFleet(ctx, nc, remote.FleetOptions{Layout: f.nats.layout, Logger: logger})
	if err != nil {
		return fmt.Errorf("--nats %s: %w", f.nats.url, err)
	}
	defer fl.Close()
	staleAfter := cmp.Or(f.nats.layout.StaleAfter, remote.DefaultStaleAfter)
	tick := time.NewTicker(f.interval)
	defer tick.Stop()
	for {
		r := collectFleet(fl, time.Now(), staleAfter, f.nats.url)
		if f.jsonOut {
			if err := writeJSON(stdout, r); err != nil {
				return err
			}
		} else {
			printFleet(stdout, r)
		}
		if !f.watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// collectFleet reads the fleet at now. A worker whose last heartbeat was
// sent more than staleAfter ago is left out: the heartbeats loaded when
// the view starts are all fresh to it, and a worker killed moments before
// would otherwise be listed (the bucket keeps it for 2 × staleAfter).
func collectFleet(fl *remote.Fleet, now time.Time, staleAfter time.Duration, server string) fleetReport {
	r := fleetReport{Time: now, Server: server, Workers: []fleetPeer{}}
	caps := map[string]bool{}
	for _, p := range fl.Peers(now) {
		heard := now.Sub(p.Sent)
		if heard > staleAfter {
			continue
		}
		r.Workers = append(r.Workers, fleetPeer{Peer: p, LastHeardMS: max(heard, 0).Milliseconds()})
		for _, c := range p.Capabilities {
			caps[c] = true
		}
	}
	for _, c := range slices.Sorted(maps.Keys(caps)) {
		r.Capacity = append(r.Capacity, fl.Capacity(c, now))
	}
	return r
}

func printFleet(w io.Writer, r fleetReport) {
	fmt.Fprintf(w, "pi-agent fleet  %s  %s\n\n", r.Time.Format(time.DateTime), r.Server)
	if len(r.Workers) == 0 {
		fmt.Fprintln(w, "no live worker (start one with: pi-agent worker --nats "+r.Server+")")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tHOST\tCAPABILITIES\tMODE\tTEMP\tFREE/SLOTS\tDONE\tLAST HEARD\tSTATE\t")
	for _, p := range r.Workers {
		temp := "n/a"
		if p.TemperatureC != 0 {
			temp = fmt.Sprintf("%.1f °C", p.TemperatureC)
		}
		state := "taking tasks"
		if p.Paused != "" {
			state = "paused: " + p.Paused
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%s ago\t%s\t\n", p.ID, p.Host, strings.Join(p.Capabilities, ","), cmp.Or(p.Mode, "?"),
			temp, p.Free, p.Slots, p.Done, formatDuration((time.Duration(p.LastHeardMS) * time.Millisecond).Round(100*time.Millisecond)), state)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, c := range r.Capacity {
		fmt.Fprintf(w, "%-8s %s, %d ready, %s free", c.Capability, plural(c.Workers, "worker"), c.Ready, plural(c.FreeSlots, "slot"))
		if c.Reason != "" {
			fmt.Fprintf(w, " (%s)", c.Reason)
		}
		fmt.Fprintln(w)
	}
}
