//go:build hub

package main

import (
	"context"
	"io"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cemaf-go/cemaf/remote"
)

// lineWriter sends each write to a channel.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) { w <- string(p); return len(p), nil }

// TestHubCommand: pi-agent hub serves NATS with JetStream until its
// context ends.
func TestHubCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	lines := make(lineWriter, 16)
	done := make(chan int, 1)
	go func() {
		done <- cli(ctx, []string{"hub", "--listen", "127.0.0.1:0", "--storage", t.TempDir()}, nil, io.Discard, lines)
	}()
	url := regexp.MustCompile(`nats://\S+`).FindString(<-lines)
	require.NotEmpty(t, url)
	nc, err := remote.Connect(ctx, url, remote.ConnectOptions{})
	require.NoError(t, err)
	q, err := remote.OpenRunQueue(ctx, nc, remote.RunQueueOptions{})
	require.NoError(t, err, "JetStream is on")
	_, err = q.Depth(ctx)
	require.NoError(t, err)
	nc.Close()
	cancel()
	assert.Equal(t, exitOK, <-done)
	assert.Contains(t, <-lines, "pi-agent hub: stopped")
}
