package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/llm"
	"github.com/cemaf-go/cemaf/paging"
	"github.com/cemaf-go/cemaf/throttle"
)

func serveCmd(ctx context.Context, args []string, env []string, stdout, stderr io.Writer) error {
	f := newServeFlags(stderr)
	if err := f.parse(args, env, stderr); err != nil {
		return err
	}
	o := f.o
	logger, level, err := f.logger(stderr)
	if err != nil {
		return err
	}
	cfg, storage, err := f.loadStorage(env, stderr)
	if err != nil {
		return err
	}
	o.storage = storage.Path
	if o.corpus, err = openCorpus(ctx, o.docs); err != nil {
		return err
	}
	o.llmURL, o.llmModel, o.llmKey = getenv(env, "CEMAF_LLM_URL"), cmp.Or(getenv(env, "CEMAF_LLM_MODEL"), "local"), getenv(env, "CEMAF_LLM_API_KEY")
	if o.llmProfiles, err = serveLLMProfiles(env, o.llmModel); err != nil {
		return err
	}
	if f.rlimits {
		rl := throttle.Rlimits{OpenFiles: uint64(f.nofile), FileSizeBytes: uint64(f.fsizeMB) << 20,
			AddressSpaceSoft: uint64(f.asMB) << 20, AddressSpaceHard: uint64(f.asMB) << 20}
		rep := throttle.ApplyRlimits(rl, logger)
		for _, w := range rep.Warnings() {
			fmt.Fprintln(stderr, "pi-agent serve: rlimit warning:", w)
		}
		var stop func()
		ctx, stop = throttle.NotifyCPULimit(ctx, logger)
		defer stop()
	}
	if o.maxConns, err = connLimitFor(o.maxConns, noFileSoft()); err != nil {
		var se *settingError
		if errors.As(err, &se) && f.ss.lookup("max-conns").origin == "env" {
			se.Name, se.Origin = serveEnvPrefix+"MAX_CONNS", "environment"
		}
		return &invalidSettings{errs: []error{err}}
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	s, err := newServer(cfg, o, ln, logger, level, guardOptions(env, storage.Path, logger))
	if err != nil {
		ln.Close()
		return err
	}
	if err := s.joinFleet(ctx); err != nil {
		ln.Close()
		s.rt.Close()
		return err
	}
	fmt.Fprintf(stderr, "pi-agent serve: listening on http://%s (slots %d, queue %d, at most %s)%s\n", ln.Addr(), o.slots, o.queue, plural(o.maxConns, "connection"), s.fleetNote())
	return s.serve(ctx)
}

// errDrainTimeout ends the runs still in flight when the drain timeout
// passes.
var errDrainTimeout = errors.New("the service is shutting down and the drain timeout passed before this run finished")

// server is the HTTP service over one Runtime. Its goroutines (the HTTP
// server's and the idle janitor) are owned by serve, which returns after
// they stopped.
type server struct {
	cfg    factories.ResourceConfig
	opts   serveOptions
	logger *slog.Logger
	rt     *factories.Runtime
	slots  chan struct{}
	conns  *connLimiter // the listener

	bodyReads bodyReads

	queued   atomic.Int64
	inFlight atomic.Int64
	draining atomic.Bool
	lastUsed atomic.Int64 // unix nanoseconds of the last request that ran
	codes    sync.Map     // status code → *atomic.Int64
	runsOK   atomic.Int64
	runsFail atomic.Int64

	// mu guards the heavy resources: the index and the LLM client. A
	// build in progress is shared through building.
	mu       sync.Mutex
	index    *builtIndex
	building chan struct{}
	buildErr error
	llm      *llm.Client
	// llmDropped adds up the counters of the LLM clients idle unloading
	// dropped, so that /metrics' counters do not fall back.
	llmDropped llm.Stats
	// waiting are the runs waiting for input, kept in the storage
	// directory too (serve/waiting).
	waiting *waitingRuns
	// indexLimit is the memory limit the adaptive executor last gave the
	// runtime's pager (0: the configured one); the index pager follows it.
	indexLimit int64

	fleet *serveFleet // nil unless serve --nats
}

// newServer builds the server's Runtime: the resource guard, the CPU and
// disk throttlers, the adaptive executor and a cache-mode pager whose
// namespaces hold the requests' own keys. The corpus index lives in a pager
// of its own, built on the first request and closed after the idle
// timeout: only closing a pager gives all its memory back (its key index
// keeps its size when emptied), and the runtime lives as long as the
// service. That pager follows the budget the adaptive executor gives the
// runtime's, and is registered with the same memory reclaimer.
// It serves on ln, within the connection limit, once serve is called.
func newServer(cfg factories.ResourceConfig, o serveOptions, ln net.Listener, logger *slog.Logger, level *slog.LevelVar, gopts factories.GuardOptions) (*server, error) {
	rt, err := factories.NewRuntime(cfg, factories.RuntimeOptions{
		Guard:    gopts,
		Pager:    paging.Options{StoragePath: filepath.Join(o.storage, "serve", "runs")},
		Executor: executor.Options{Observers: []executor.Observer{executor.NewLogObserver(logger)}},
		LogLevel: level,
		Logger:   logger,
	})
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, opts: o, logger: logger, rt: rt, slots: make(chan struct{}, o.slots), conns: newConnLimiter(ln, o.maxConns)}
	s.waiting = &waitingRuns{}
	if o.storage != "" {
		s.waiting = newWaitingRuns(s.waitingDir(), func(name string, data []byte) error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return rt.Disk.WriteFile(ctx, name, data, 0o600)
		}, logger)
		switch n, err := s.waiting.load(time.Now(), o.idleTimeout); {
		case err != nil:
			logger.Warn("pi-agent serve: runs waiting for input from before this start are not answered", "error", err)
		case n > 0:
			logger.Info("pi-agent serve: runs waiting for input from before this start", "runs", n, "dir", s.waitingDir())
		}
	}
	rt.Executor.OnModeChange(func(c adaptive.ModeChange) { s.setIndexLimit(c.Settings.PagerLimit) })
	return s, nil
}

// waitingDir is where the runs waiting for input are kept.
func (s *server) waitingDir() string { return filepath.Join(s.opts.storage, "serve", "waiting") }

// serve serves until ctx ends, then stops accepting and lets in-flight
// runs finish within the drain timeout. Runs still in flight after it are
// cancelled, and their requests answered 503. It then releases everything
// and returns nil.
func (s *server) serve(ctx context.Context) error {
	baseCtx, cancelRuns := context.WithCancelCause(context.Background())
	defer cancelRuns(nil)
	srv := &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: s.opts.readHeaderTimeout,
		IdleTimeout:       s.opts.connIdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ConnState:         s.conns.track,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(s.conns) }()
	janitorDone := make(chan struct{})
	stopJanitor := make(chan struct{})
	go s.janitor(stopJanitor, janitorDone)
	stopFleet, waitFleet := s.runWorker(ctx)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	s.draining.Store(true)
	// Take no more of the fleet's requests; those running finish.
	stopFleet()
	s.bodyReads.cutAll() // a client still sending its body will not run
	s.logger.Info("pi-agent serve: draining", "in_flight", s.inFlight.Load(), "drain_timeout", s.opts.drainTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), s.opts.drainTimeout)
	err := srv.Shutdown(dctx)
	cancel()
	if err != nil {
		s.logger.Warn("pi-agent serve: drain timeout; cancelling the runs still in flight", "in_flight", s.inFlight.Load())
		cancelRuns(errDrainTimeout)
		// The cancelled runs end promptly and their handlers answer 503;
		// give them a moment to write it before closing what remains.
		gctx, cancel := context.WithTimeout(context.Background(), min(5*time.Second, s.opts.drainTimeout)+s.opts.writeTimeout)
		if srv.Shutdown(gctx) != nil {
			srv.Close()
		}
		cancel()
	}
	if serveErr == nil {
		serveErr = <-served
	}
	waitFleet() // its runs use the index and the runtime
	close(stopJanitor)
	<-janitorDone
	s.unload("shutdown")
	if err := s.rt.Close(); err != nil {
		s.logger.Warn("pi-agent serve: closing the runtime", "error", err)
	}
	// The runs' namespaces were cleared as each ended: the page file holds
	// nothing a later serve needs.
	os.RemoveAll(filepath.Join(s.opts.storage, "serve", "runs"))
	if errors.Is(serveErr, http.ErrServerClosed) {
		return nil
	}
	return serveErr
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/runs", s.runHandler())
	mux.HandleFunc("POST /v1/runs/{id}/input", s.handleInput)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /health/detailed", s.handleDetailed)
	mux.HandleFunc("GET /metrics", s.handleMetrics)
	return mux
}

func (s *server) count(code int) {
	v, _ := s.codes.LoadOrStore(code, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}
