package throttle

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Monitor.Start after Close, and by other blocking
// calls of values that have been closed.
var ErrClosed = errors.New("throttle: closed")

// SampleSource produces samples for a Monitor. *Sampler satisfies it; tests
// use scripted sources to drive a real Monitor under testing/synctest.
//
// Sample is called from the Monitor's goroutine only (and once from Start),
// never concurrently. It returns the sample taken at now; a nil error with
// a nil sample is treated as an error. A sample whose Time is zero gets now.
type SampleSource interface {
	Sample(now time.Time) (*Sample, error)
}

// SnapshotSource is what guards read on the hot path: the latest sample, and
// a channel closed when the next one lands. *Monitor satisfies it.
type SnapshotSource interface {
	// Snapshot returns the latest sample without blocking, locking or
	// doing I/O.
	Snapshot() Snapshot
	// Next returns a channel that is closed when the next sample is
	// published.
	Next() <-chan struct{}
}

// Subscriber delivers each new sample to a callback. *Monitor satisfies it;
// Breaker.Attach and MemoryGuard.Attach use it.
type Subscriber interface {
	Subscribe(fn func(*Sample)) (cancel func())
}

// Snapshot is the latest sample of a Monitor and how old it is.
type Snapshot struct {
	// Sample is the latest published sample, nil before the first one.
	// It must not be modified.
	Sample *Sample
	// Age is the time since Sample.Time when Snapshot was called.
	Age time.Duration
	// Seq numbers published samples from 1; it is 0 before the first.
	Seq uint64
}

// DefaultMaxHistory caps the default MonitorOptions.HistorySize: 131072
// points, about 5 MiB.
const DefaultMaxHistory = 1 << 17

// MonitorOptions configures a Monitor. The zero value samples every 5 s,
// keeps 24 h of history and exports nothing.
type MonitorOptions struct {
	// CheckInterval is the sampling period. Default 5s.
	CheckInterval time.Duration
	// HistorySize is the number of Points kept in the ring buffer (40
	// bytes each; the buffer grows as points arrive). Default: 24h /
	// CheckInterval (17280 at 5 s, about 690 KB), at most
	// DefaultMaxHistory, so that a short interval cannot claim much memory:
	// below about 0.66 s the default keeps less than 24 h.
	HistorySize int
	// MetricsPath, when set, is a JSON Lines file the Monitor appends
	// history Points to every ExportInterval, and once more on Close.
	MetricsPath string
	// ExportInterval is the period of the JSON Lines export. Default 60s.
	ExportInterval time.Duration
	// MaxExportBytes bounds the export files: MetricsPath grows to half of
	// it, is then renamed to MetricsPath + ".1" (replacing the oldest
	// data) and started afresh. Default 4 MiB; at least 4096.
	MaxExportBytes int64
	// Logger receives sampling and export failures. Nil discards them.
	Logger *slog.Logger
}

// Monitor samples a SampleSource at a fixed interval in one background
// goroutine, publishes the latest sample for lock-free readers, notifies
// subscribers, keeps a bounded history, exports it as JSON Lines and serves
// the current values in the Prometheus text format.
//
// Lifetime: NewMonitor starts nothing; Start takes a first sample
// synchronously and starts the goroutine; Close stops it and waits for it.
// All methods are safe for concurrent use. Snapshot and Next never block.
type Monitor struct {
	src         SampleSource
	interval    time.Duration
	exportEvery time.Duration
	metricsPath string
	maxExport   int64
	log         *slog.Logger

	latest atomic.Pointer[Snapshot]       // Age unset; Snapshot fills it
	next   atomic.Pointer[chan struct{}]  // closed on the next publish
	subs   atomic.Pointer[[]subscription] // copy-on-write view of subList
	hist   *history                       // has its own lock
	stats  struct{ samples, failures atomic.Uint64 }
	exp    struct{ errors atomic.Uint64 }

	// mu guards the fields below.
	mu        sync.Mutex
	state     monitorState
	stop      chan struct{}
	done      chan struct{}
	closeErr  error // final export error, set by the goroutine before done
	subSeq    uint64
	subList   []subscription
	lastError string // last sampling error logged, to log each once

	// lastExport is the UnixMilli of the last exported Point. Only the
	// monitor goroutine uses it.
	lastExport int64
}

type monitorState int

const (
	monitorIdle monitorState = iota
	monitorStarting
	monitorRunning
	monitorClosed
)

type subscription struct {
	id uint64
	fn func(*Sample)
}

// NewMonitor validates opts and returns a Monitor over src. It starts no
// goroutine and takes no sample.
func NewMonitor(src SampleSource, opts MonitorOptions) (*Monitor, error) {
	if src == nil {
		return nil, errors.New("throttle: NewMonitor: src is nil: must be a SampleSource")
	}
	if err := positiveDuration("MonitorOptions.CheckInterval", opts.CheckInterval); err != nil {
		return nil, err
	}
	if err := positiveDuration("MonitorOptions.ExportInterval", opts.ExportInterval); err != nil {
		return nil, err
	}
	if opts.CheckInterval == 0 {
		opts.CheckInterval = 5 * time.Second
	}
	if opts.ExportInterval == 0 {
		opts.ExportInterval = time.Minute
	}
	if opts.HistorySize < 0 {
		return nil, fmt.Errorf("throttle: MonitorOptions.HistorySize = %d: must be >= 0", opts.HistorySize)
	}
	if opts.HistorySize == 0 {
		opts.HistorySize = min(max(1, int(24*time.Hour/opts.CheckInterval)), DefaultMaxHistory)
	}
	switch {
	case opts.MaxExportBytes == 0:
		opts.MaxExportBytes = 4 << 20
	case opts.MaxExportBytes < 4096:
		return nil, fmt.Errorf("throttle: MonitorOptions.MaxExportBytes = %d: must be >= 4096 (or 0 for the default)", opts.MaxExportBytes)
	}
	m := &Monitor{
		src:         src,
		interval:    opts.CheckInterval,
		exportEvery: opts.ExportInterval,
		metricsPath: opts.MetricsPath,
		maxExport:   opts.MaxExportBytes,
		log:         loggerOrDiscard(opts.Logger),
		hist:        newHistory(opts.HistorySize),
	}
	ch := make(chan struct{})
	m.next.Store(&ch)
	m.subs.Store(&[]subscription{})
	return m, nil
}

// Start takes a first sample synchronously, so that Snapshot has a value
// when Start returns, then starts the sampling goroutine. It returns the
// first sample's error, if any (the Monitor is then not started and Start
// may be called again), and an error if the Monitor is already started or
// closed (ErrClosed).
func (m *Monitor) Start() error {
	m.mu.Lock()
	switch m.state {
	case monitorClosed:
		m.mu.Unlock()
		return ErrClosed
	case monitorStarting, monitorRunning:
		m.mu.Unlock()
		return errors.New("throttle: Monitor.Start: already started")
	}
	m.state = monitorStarting
	m.mu.Unlock()

	err := m.sampleOnce(time.Now())

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == monitorClosed {
		return ErrClosed
	}
	if err != nil {
		m.state = monitorIdle
		return err
	}
	m.state = monitorRunning
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	go m.run(m.stop, m.done)
	return nil
}

// Close stops the sampling goroutine and waits for it to return; with a
// MetricsPath it first exports the remaining history and returns that
// export's error. Close is idempotent; later calls return nil. Snapshot,
// History and the Prometheus handler keep serving the last values.
func (m *Monitor) Close() error {
	m.mu.Lock()
	prev := m.state
	m.state = monitorClosed
	stop, done := m.stop, m.done
	m.mu.Unlock()
	if prev != monitorRunning {
		return nil
	}
	close(stop)
	<-done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closeErr
}

func (m *Monitor) run(stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(m.interval)
	defer tick.Stop()
	var exportC <-chan time.Time
	if m.metricsPath != "" {
		et := time.NewTicker(m.exportEvery)
		defer et.Stop()
		exportC = et.C
	}
	for {
		select {
		case <-stop:
			if m.metricsPath != "" {
				err := m.export()
				m.mu.Lock()
				m.closeErr = err
				m.mu.Unlock()
			}
			return
		case now := <-tick.C:
			_ = m.sampleOnce(now)
		case <-exportC:
			_ = m.export()
		}
	}
}

// sampleOnce takes and publishes one sample. It runs on the monitor
// goroutine, or in Start before the goroutine exists.
func (m *Monitor) sampleOnce(now time.Time) error {
	s, err := m.callSource(now)
	if err == nil && s == nil {
		err = errors.New("throttle: SampleSource returned neither a sample nor an error")
	}
	if err != nil {
		m.stats.failures.Add(1)
		m.mu.Lock()
		fresh := err.Error() != m.lastError
		m.lastError = err.Error()
		m.mu.Unlock()
		if fresh {
			m.log.Warn("throttle: monitor: sample failed", "error", err)
		}
		return err
	}
	m.mu.Lock()
	m.lastError = ""
	m.mu.Unlock()
	if s.Time.IsZero() {
		s.Time = now
	}
	m.publish(s)
	return nil
}

func (m *Monitor) callSource(now time.Time) (s *Sample, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, &PanicError{Op: "SampleSource.Sample", Value: r}
		}
	}()
	return m.src.Sample(now)
}

// publish makes s the latest sample, records it in the history, wakes
// Next waiters and calls the subscribers, in that order.
func (m *Monitor) publish(s *Sample) {
	seq := m.stats.samples.Add(1)
	m.latest.Store(&Snapshot{Sample: s, Seq: seq})
	m.hist.add(pointOf(s))
	ch := make(chan struct{})
	close(*m.next.Swap(&ch))
	for _, sub := range *m.subs.Load() {
		m.deliver(sub, s)
	}
}

func (m *Monitor) deliver(sub subscription, s *Sample) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("throttle: monitor: subscriber panicked", "panic", r)
		}
	}()
	sub.fn(s)
}

// Snapshot returns the latest sample and its age. It does one atomic load
// and reads the clock; it never blocks, locks or does I/O. Before the
// first sample it returns the zero Snapshot.
func (m *Monitor) Snapshot() Snapshot {
	p := m.latest.Load()
	if p == nil {
		return Snapshot{}
	}
	snap := *p
	snap.Age = time.Since(snap.Sample.Time)
	return snap
}

// Next returns a channel that is closed when the next sample is published:
// a broadcast for callers that wait for fresh data. Take the channel before
// checking the current Snapshot, so that a sample landing in between is not
// missed. It never blocks.
func (m *Monitor) Next() <-chan struct{} {
	return *m.next.Load()
}

// Subscribe registers fn to be called with every sample published after
// this call, on the monitor goroutine, outside any lock, in registration
// order. fn must not block for long: the next sample waits for it; and it
// must not call Close, which waits for the goroutine fn runs on. A panic in
// fn is recovered and logged. The returned cancel removes fn; it is
// idempotent and may be called from fn itself.
func (m *Monitor) Subscribe(fn func(*Sample)) (cancel func()) {
	m.mu.Lock()
	m.subSeq++
	id := m.subSeq
	m.subList = append(m.subList, subscription{id: id, fn: fn})
	list := slices.Clone(m.subList)
	m.subs.Store(&list)
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		i := slices.IndexFunc(m.subList, func(s subscription) bool { return s.id == id })
		if i < 0 {
			return
		}
		m.subList = slices.Delete(m.subList, i, i+1)
		list := slices.Clone(m.subList)
		m.subs.Store(&list)
	}
}

// History returns a copy of the recorded Points whose time is at or after
// since, oldest first. It locks the history briefly; its cost is linear in
// the number of points returned.
func (m *Monitor) History(since time.Time) []Point {
	return m.hist.since(since.UnixMilli())
}

// Interval returns the sampling period.
func (m *Monitor) Interval() time.Duration { return m.interval }

func positiveDuration(field string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("throttle: %s = %v: must be > 0", field, d)
	}
	return nil
}
