package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/cemaf-go/cemaf/remote"
)

// Capabilities of the fleet: what a pi-agent worker serves.
const (
	capIndex = "index" // the index shards of a run
	capLLM   = "llm"   // the answer node
	capServe = "serve" // whole serve requests (pi-agent serve --nats)
)

// natsFlags are the flags of the commands that join a fleet over NATS.
type natsFlags struct {
	url   string
	creds string
	// layout names the fleet's streams; the zero value is remote's
	// default. Tests shorten its times; it has no flag.
	layout remote.Layout
}

// withNATS registers --nats and --nats-creds; what uses says what the
// fleet is for in this command.
func (f *cmdFlags) withNATS(n *natsFlags, uses string) {
	f.fs.StringVar(&n.url, "nats", "", "NATS server `URL` of the fleet (nats://host:4222, comma-separated for a cluster): "+uses)
	f.fs.StringVar(&n.creds, "nats-creds", "", "NATS credentials `file` (.creds) for --nats")
}

// enabled says whether the command joins a fleet.
func (n *natsFlags) enabled() bool { return n.url != "" }

// connect connects to the fleet's server. The error names the URL and
// says what to check.
func (n *natsFlags) connect(ctx context.Context, name string, logger *slog.Logger) (*nats.Conn, error) {
	if strings.TrimSpace(n.url) != n.url {
		return nil, usageError{fmt.Sprintf("--nats %q: the URL has leading or trailing spaces", n.url)}
	}
	nc, err := remote.Connect(ctx, n.url, remote.ConnectOptions{Name: name, CredentialsFile: n.creds, Logger: logger})
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, fmt.Errorf("--nats %s: cannot reach the NATS server (is nats-server -js, or pi-agent hub, running there?): %w", n.url, err)
	}
	return nc, nil
}

// parseCapabilities parses --capabilities: a comma-separated list of
// capabilities among known.
func parseCapabilities(v string, known ...string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(v, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !slices.Contains(known, c) {
			return nil, fmt.Errorf("unknown capability %q", c)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("empty")
	}
	return out, nil
}
