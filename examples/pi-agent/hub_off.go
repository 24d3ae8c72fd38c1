//go:build !hub

package main

import (
	"context"
	"errors"
	"io"
)

func hubCmd(_ context.Context, args []string, env []string, _, stderr io.Writer) error {
	f := newHubFlags(stderr)
	if err := f.parse(args, env, stderr); err != nil {
		return err
	}
	return errors.New("this pi-agent is built without the NATS server: rebuild it with go build -tags hub, or run nats-server -js on the hub device")
}
