package paging_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/cemaf-go/cemaf/paging"
	"go.uber.org/goleak"
)

// words is the vocabulary of the synthetic agent context.
var words = []string{
	"the", "agent", "tool", "result", "message", "user", "assistant", "system", "context", "memory",
	"document", "chunk", "summary", "temperature", "sensor", "reading", "device", "raspberry", "pi", "jetson",
	"of", "and", "to", "in", "is", "for", "with", "on", "that", "this", "it", "as", "was", "at", "by",
	"request", "response", "error", "retry", "timeout", "node", "graph", "state", "value", "key",
	"report", "analysis", "weather", "forecast", "battery", "voltage", "current", "status", "ok", "failed",
	"please", "could", "you", "check", "latest", "file", "directory", "network", "packet", "latency",
	"model", "token", "prompt", "completion", "embedding", "vector", "search", "query", "index", "score",
	"january", "february", "march", "monday", "tuesday", "morning", "evening", "kitchen", "garden", "camera",
}

// corpus returns n bytes of text that looks like an agent's context: JSON
// message records with prose, numbers and identifiers. It compresses about
// as well as real chat logs do with LZ4 (ratio 2-3), not like zeros.
func corpus(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, 0, n+256)
	roles := []string{"user", "assistant", "tool", "system"}
	for id := 0; len(b) < n; id++ {
		b = append(b, `{"id":`...)
		b = strconv.AppendInt(b, int64(id)+int64(seed)*1000003, 10)
		b = append(b, `,"role":"`...)
		b = append(b, roles[r.IntN(len(roles))]...)
		b = append(b, `","ts":`...)
		b = strconv.AppendInt(b, 1700000000+r.Int64N(90000000), 10)
		b = append(b, `,"content":"`...)
		for w := 8 + r.IntN(60); w > 0; w-- {
			switch r.IntN(12) {
			case 0:
				b = strconv.AppendFloat(b, r.Float64()*100, 'f', 2, 64)
			case 1:
				b = strconv.AppendUint(b, r.Uint64()>>40, 16)
			default:
				b = append(b, words[r.IntN(len(words))]...)
			}
			b = append(b, ' ')
		}
		b = append(b, "\"}\n"...)
	}
	return b[:n]
}

// randomBytes returns n incompressible bytes.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// open wraps a MemoryState-less pager for a test and closes it at cleanup
// (after checking the bookkeeping invariants).
func open(t testing.TB, opts paging.Options) *paging.Pager {
	t.Helper()
	if opts.StoragePath == "" {
		opts.StoragePath = t.TempDir()
	}
	p, err := paging.Wrap(nil, opts)
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	t.Cleanup(func() {
		if err := p.CheckInvariants(); err != nil {
			t.Errorf("invariants: %v", err)
		}
		if err := p.Close(); err != nil && !errors.Is(err, paging.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// leakCheck fails t if goroutines started after the call are still running
// when t ends (its cleanup is registered first, so it runs last). Tests
// whose pagers start goroutines call it first; TestMain checks the whole
// package run as well.
func leakCheck(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

func key(i int) string { return fmt.Sprintf("key-%05d", i) }
