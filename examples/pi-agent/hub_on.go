//go:build hub

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"

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

// hostPort splits --listen; port 0 means a free port.
func (f *hubFlags) hostPort() (string, int, error) {
	host, port, err := net.SplitHostPort(f.listen)
	if err != nil {
		return "", 0, usageError{fmt.Sprintf("--listen %q: %v", f.listen, err)}
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, usageError{fmt.Sprintf("--listen %q: %v", f.listen, errors.Unwrap(err))}
	}
	return host, n, nil
}

// storeDir is --store, or nats under the storage directory.
func (f *hubFlags) storeDir(storage storageDir) string {
	if f.store != "" {
		return f.store
	}
	return filepath.Join(storage.Path, "nats")
}
