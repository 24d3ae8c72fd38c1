//go:build !hub

package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestHubNeedsTheBuildTag: without -tags hub the hub command says how to
// get one.
func TestHubNeedsTheBuildTag(t *testing.T) {
	code, _, errOut := runCLI(t, nil, "hub", "--storage", t.TempDir())
	assert.Equal(t, exitError, code)
	assert.Contains(t, errOut, "built without the NATS server: rebuild it with go build -tags hub")
}
