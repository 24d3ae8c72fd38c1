package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Peer is a worker as its last heartbeat described it.
type Peer struct {
	ID           string   `json:"id"`
	Host         string   `json:"host,omitempty"`
	Capabilities []string `json:"capabilities"`
	// Mode is the worker's operating mode (normal, low_memory, high_temp,
	// low_disk) as its WorkerOptions.Status reports it; empty if unknown.
	Mode string `json:"mode,omitempty"`
	// TemperatureC is the board temperature in °C; 0 means unknown.
	TemperatureC float64 `json:"temperature_c,omitempty"`
	// Slots is how many tasks the worker runs at once; Free how many of
	// them were idle when the heartbeat was sent.
	Slots int `json:"slots"`
	Free  int `json:"free"`
	// Paused is why the worker takes no task (its guard blocks, or it is
	// draining); empty when it takes tasks.
	Paused string `json:"paused,omitempty"`
	// Done counts the tasks it finished since it started.
	Done uint64 `json:"done"`
	// Sent is the worker's clock when it sent the heartbeat.
	Sent time.Time `json:"sent"`
	// Seen is when this process received the heartbeat (its own clock),
	// the time staleness is judged by.
	Seen time.Time `json:"-"`
}

// Serves reports whether the peer serves capability.
func (p *Peer) Serves(capability string) bool { return slices.Contains(p.Capabilities, capability) }

// Capacity is what the live part of the fleet offers for one capability.
type Capacity struct {
	Capability string `json:"capability"`
	Workers    int    `json:"workers"` // live workers serving it
	Ready      int    `json:"ready"`   // of which not paused
	FreeSlots  int    `json:"free_slots"`
	// Reason explains a capacity of zero ready workers: none serve it, or
	// all of them are paused and why.
	Reason string `json:"reason,omitempty"`
}

// FleetOptions configures WatchFleet. The zero value uses the default
// Layout and the real clock.
type FleetOptions struct {
	Layout Layout
	// Now is the clock staleness is judged by; nil means time.Now.
	Now func() time.Time
	// Logger receives the watcher's diagnostics; nil discards them.
	Logger *slog.Logger
}

// Fleet is a live view of the workers of a fleet, kept from their
// heartbeats in the fleet bucket by one watcher goroutine that Close stops.
// A worker not heard from for Layout.StaleAfter is left out of Peers and
// Capacity, and the watcher deletes its entry (stale-peer cleanup): a killed
// worker disappears within StaleAfter plus one pruning period
// (StaleAfter/2). It is safe for concurrent use.
type Fleet struct {
	lay    Layout
	kv     jetstream.KeyValue
	now    func() time.Time
	logger *slog.Logger
	w      jetstream.KeyWatcher
	stop   chan struct{}
	done   chan struct{}
	ready  chan struct{} // closed once the initial values are in
	once   sync.Once

	// mu guards peers.
	mu    sync.Mutex
	peers map[string]*Peer // by KV key
}

// WatchFleet starts watching the fleet bucket of opts.Layout on nc. It
// returns once the current heartbeats are loaded.
func WatchFleet(ctx context.Context, nc *nats.Conn, opts FleetOptions) (*Fleet, error) {
	lay, err := opts.Layout.withDefaults()
	if err != nil {
		return nil, err
	}
	res, err := openResources(ctx, nc, lay)
	if err != nil {
		return nil, err
	}
	return newFleet(ctx, res, opts.Now, opts.Logger)
}

func newFleet(ctx context.Context, res *resources, now func() time.Time, logger *slog.Logger) (*Fleet, error) {
	f := &Fleet{lay: res.lay, kv: res.fleet, now: now, logger: logger,
		stop: make(chan struct{}), done: make(chan struct{}), ready: make(chan struct{}), peers: map[string]*Peer{}}
	if f.now == nil {
		f.now = time.Now
	}
	if f.logger == nil {
		f.logger = slog.New(slog.DiscardHandler)
	}
	w, err := res.fleet.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("remote: watch bucket %s: %w", res.lay.fleetName(), err)
	}
	f.w = w
	go f.loop()
	select {
	case <-f.ready:
		return f, nil
	case <-ctx.Done():
		f.Close()
		return nil, fmt.Errorf("remote: watch bucket %s: %w", res.lay.fleetName(), context.Cause(ctx))
	}
}

func (f *Fleet) loop() {
	defer close(f.done)
	prune := time.NewTicker(f.lay.StaleAfter / 2)
	defer prune.Stop()
	initial := true
	for {
		select {
		case <-f.stop:
			return
		case <-prune.C:
			ctx, cancel := context.WithTimeout(context.Background(), f.lay.StaleAfter)
			if _, err := f.Prune(ctx, f.now()); err != nil {
				f.logger.Debug("remote: prune stale peers", "error", err)
			}
			cancel()
		case e, ok := <-f.w.Updates():
			if !ok {
				return
			}
			if e == nil {
				if initial {
					initial = false
					close(f.ready)
				}
				continue
			}
			f.apply(e)
		}
	}
}

func (f *Fleet) apply(e jetstream.KeyValueEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(f.peers, e.Key())
		return
	}
	var p Peer
	if err := json.Unmarshal(e.Value(), &p); err != nil || p.ID == "" {
		f.logger.Warn("remote: ignore a malformed heartbeat", "key", e.Key(), "error", err)
		return
	}
	p.Seen = f.now()
	f.peers[e.Key()] = &p
}

// Peers returns the workers heard from within StaleAfter of now, sorted by
// ID.
func (f *Fleet) Peers(now time.Time) []Peer {
	f.mu.Lock()
	out := make([]Peer, 0, len(f.peers))
	for _, p := range f.peers {
		if now.Sub(p.Seen) <= f.lay.StaleAfter {
			out = append(out, *p)
		}
	}
	f.mu.Unlock()
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Capacity returns what the live workers offer for capability at now.
func (f *Fleet) Capacity(capability string, now time.Time) Capacity {
	c := Capacity{Capability: capability}
	var paused []string
	for _, p := range f.Peers(now) {
		if !p.Serves(capability) {
			continue
		}
		c.Workers++
		if p.Paused != "" {
			paused = append(paused, p.ID+": "+p.Paused)
			continue
		}
		c.Ready++
		c.FreeSlots += p.Free
	}
	switch {
	case c.Workers == 0:
		c.Reason = fmt.Sprintf("no live worker serves capability %q", capability)
	case c.Ready == 0:
		c.Reason = fmt.Sprintf("all %d workers serving capability %q are paused (%s)", c.Workers, capability, strings.Join(paused, "; "))
	}
	return c
}

// Prune deletes from the bucket the heartbeats of workers not heard from
// within StaleAfter of now and returns how many it deleted. The watcher
// calls it every StaleAfter/2.
func (f *Fleet) Prune(ctx context.Context, now time.Time) (int, error) {
	f.mu.Lock()
	var stale []string
	for k, p := range f.peers {
		if now.Sub(p.Seen) > f.lay.StaleAfter {
			stale = append(stale, k)
		}
	}
	f.mu.Unlock()
	var errs []error
	n := 0
	for _, k := range stale {
		if err := f.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			errs = append(errs, fmt.Errorf("remote: delete stale peer %s: %w", k, err))
			continue
		}
		n++
		f.mu.Lock()
		delete(f.peers, k)
		f.mu.Unlock()
	}
	return n, errors.Join(errs...)
}

// Close stops the watcher and waits for it. Later calls do nothing.
func (f *Fleet) Close() error {
	var err error
	f.once.Do(func() {
		close(f.stop)
		err = f.w.Stop()
		<-f.done
	})
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		return fmt.Errorf("remote: stop watching the fleet: %w", err)
	}
	return nil
}
