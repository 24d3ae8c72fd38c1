//go:build hub

package main

import (
	"context"
	"fmt"
	"io"

	"github.com/cemaf-go/cemaf/remote/hub"
)

func hubCmd(ctx context.Context, args []string, env []string, _, stderr io.Writer) error {
	f := newHubFlags(stderr)
	if err := f.parse(args, env, stderr); err != nil {
		return err
	}
	logger, _, err := f.logger(stderr)
	if err != nil {
		return err
	}
	host, port, err := f.hostPort()
	if err != nil {
		return err
	}
	if port == 0 {
		port = hub.RandomPort
	}
	_, storage, err := f.loadStorage(env, stderr)
	if err != nil {
		return err
	}
	store := f.storeDir(storage)
	h, err := hub.Start(hub.Options{StoreDir: store, Host: host, Port: port, MaxConnections: f.maxConns, LeafPort: f.leafPort, Logger: logger})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "pi-agent hub: NATS with JetStream on %s (store %s)\n", h.ClientURL(), store)
	<-ctx.Done()
	if err := h.Close(); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "pi-agent hub: stopped")
	return nil
}
