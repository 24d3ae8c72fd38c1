package remote

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Failure is a failed attempt of a remote node as recorded in the results
// bucket: the function's error on a worker (*TaskError) or a task that
// reached MaxDeliver (*DeliveryError).
type Failure struct {
	Run     string
	Node    string
	Attempt int
	Err     error
}

// Failures lists the failures recorded in the fleet's results bucket (they
// expire after Layout.ResultTTL), sorted by run, node and attempt.
func (c *Coordinator) Failures(ctx context.Context) ([]Failure, error) {
	keys, err := c.listKeys(ctx, "fail.>")
	if err != nil {
		return nil, err
	}
	var out []Failure
	for _, k := range keys {
		parts := strings.Split(k, ".")
		if len(parts) != 4 {
			continue
		}
		run, err1 := base64.RawURLEncoding.DecodeString(parts[1])
		node, err2 := base64.RawURLEncoding.DecodeString(parts[2])
		attempt, err3 := strconv.Atoi(parts[3])
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		e, err := c.res.results.Get(ctx, k)
		if err != nil {
			continue // expired meanwhile
		}
		r, err := decodeResult(e.Value())
		if err != nil {
			out = append(out, Failure{Run: string(run), Node: string(node), Attempt: attempt, Err: err})
			continue
		}
		out = append(out, Failure{Run: string(run), Node: string(node), Attempt: attempt, Err: r.toError("", attempt)})
	}
	slices.SortFunc(out, func(a, b Failure) int {
		if c := strings.Compare(a.Run, b.Run); c != 0 {
			return c
		}
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return a.Attempt - b.Attempt
	})
	return out, nil
}

// Rejected lists the malformed task messages workers recorded and
// terminated, sorted by stream sequence.
func (c *Coordinator) Rejected(ctx context.Context) ([]Rejected, error) {
	keys, err := c.listKeys(ctx, "bad.>")
	if err != nil {
		return nil, err
	}
	var out []Rejected
	for _, k := range keys {
		e, err := c.res.results.Get(ctx, k)
		if err != nil {
			continue
		}
		var r Rejected
		if json.Unmarshal(e.Value(), &r) == nil {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Rejected) int { return int(a.Sequence) - int(b.Sequence) })
	return out, nil
}

func (c *Coordinator) listKeys(ctx context.Context, filter string) ([]string, error) {
	l, err := c.res.results.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("remote: list %s in %s: %w", filter, c.res.lay.resultsName(), err)
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	if err := l.Stop(); err != nil && !errors.Is(err, nats.ErrBadSubscription) {
		return nil, fmt.Errorf("remote: list %s in %s: %w", filter, c.res.lay.resultsName(), err)
	}
	return keys, nil
}
