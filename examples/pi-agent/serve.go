package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/factories"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/paging"
	"github.com/cemaf-go/cemaf/throttle"
)

// serveOptions are the settings of pi-agent serve.
type serveOptions struct {
	addr         string
	slots        int           // runs at once
	queue        int           // runs waiting for a slot (0: answer 429 at once)
	maxBody      int64         // bytes
	runTimeout   time.Duration // per run
	idleTimeout  time.Duration // unload heavy resources after this much idleness
	drainTimeout time.Duration // SIGTERM: how long in-flight runs may finish
	shards, topK int
	chunkSize    int
	docs         fs.FS
	docsLabel    string
	llmURL       string
	llmModel     string
	llmKey       string
	llmTimeout   time.Duration
	storage      string
	applyRlimits bool
	rlimits      throttle.Rlimits
}

func serveCmd(ctx context.Context, args []string, env []string, stdout, stderr io.Writer) error {
	c := newCommon("serve", stderr)
	o := serveOptions{}
	envInt := func(k string, def int) int {
		if v, err := strconv.Atoi(getenv(env, k)); err == nil {
			return v
		}
		return def
	}
	envDur := func(k string, def time.Duration) time.Duration {
		if v, err := time.ParseDuration(getenv(env, k)); err == nil {
			return v
		}
		return def
	}
	docs := c.fs.String("docs", "", "`dir`ectory of text and markdown files (default: the built-in corpus)")
	c.fs.StringVar(&o.addr, "addr", cmp.Or(getenv(env, "CEMAF_SERVE_ADDR"), "127.0.0.1:8080"), "listen `address` (CEMAF_SERVE_ADDR); loopback by default")
	c.fs.IntVar(&o.slots, "slots", envInt("CEMAF_SERVE_SLOTS", max(1, runtime.GOMAXPROCS(0)/2)), "runs at once (CEMAF_SERVE_SLOTS)")
	c.fs.IntVar(&o.queue, "queue", envInt("CEMAF_SERVE_QUEUE", 0), "runs that may wait for a slot; 0 answers 429 at once (CEMAF_SERVE_QUEUE)")
	c.fs.Int64Var(&o.maxBody, "max-body-bytes", int64(envInt("CEMAF_SERVE_MAX_BODY_BYTES", 64<<10)), "largest request body (CEMAF_SERVE_MAX_BODY_BYTES)")
	c.fs.DurationVar(&o.runTimeout, "run-timeout", envDur("CEMAF_SERVE_RUN_TIMEOUT", 2*time.Minute), "timeout of one run (CEMAF_SERVE_RUN_TIMEOUT)")
	c.fs.DurationVar(&o.idleTimeout, "idle-timeout", envDur("CEMAF_SERVE_IDLE_TIMEOUT", 10*time.Minute), "unload the index and LLM connections after this idleness (CEMAF_SERVE_IDLE_TIMEOUT)")
	c.fs.DurationVar(&o.drainTimeout, "drain-timeout", envDur("CEMAF_SERVE_DRAIN_TIMEOUT", 30*time.Second), "on SIGTERM, how long in-flight runs may finish (CEMAF_SERVE_DRAIN_TIMEOUT)")
	c.fs.IntVar(&o.shards, "shards", 4, "parallel index nodes")
	c.fs.IntVar(&o.topK, "top-k", 4, "passages to retrieve")
	c.fs.IntVar(&o.chunkSize, "chunk-size", 900, "chunk size in bytes")
	c.fs.DurationVar(&o.llmTimeout, "llm-timeout", 2*time.Minute, "timeout of one LLM call")
	c.fs.BoolVar(&o.applyRlimits, "rlimits", false, "apply process limits at start: open files, file size, address space")
	nofile := c.fs.Uint64("rlimit-nofile", 1024, "open files limit with --rlimits")
	fsizeMB := c.fs.Uint64("rlimit-fsize-mb", 1024, "largest file in MB with --rlimits")
	asMB := c.fs.Uint64("rlimit-as-mb", 0, "address space limit in MB with --rlimits (0: none; Go reserves address space freely)")
	if err := c.parse(args); err != nil {
		return err
	}
	switch {
	case o.slots < 1 || o.slots > 1024:
		return usageError{fmt.Sprintf("--slots %d: want 1 to 1024", o.slots)}
	case o.queue < 0 || o.queue > 100000:
		return usageError{fmt.Sprintf("--queue %d: want 0 to 100000", o.queue)}
	case o.maxBody < 64 || o.maxBody > 64<<20:
		return usageError{fmt.Sprintf("--max-body-bytes %d: want 64 to 67108864", o.maxBody)}
	case o.runTimeout <= 0 || o.idleTimeout <= 0 || o.drainTimeout <= 0:
		return usageError{"--run-timeout, --idle-timeout and --drain-timeout must be positive"}
	}
	o.rlimits = throttle.Rlimits{OpenFiles: *nofile, FileSizeBytes: *fsizeMB << 20, AddressSpaceSoft: *asMB << 20, AddressSpaceHard: *asMB << 20}
	logger, level, err := c.logger(stderr)
	if err != nil {
		return err
	}
	cfg, storage, err := c.loadStorage(env, stderr)
	if err != nil {
		return err
	}
	o.storage = storage
	if o.docs, o.docsLabel, err = corpus(*docs); err != nil {
		return err
	}
	o.llmURL, o.llmModel, o.llmKey = getenv(env, "CEMAF_LLM_URL"), cmp.Or(getenv(env, "CEMAF_LLM_MODEL"), "local"), getenv(env, "CEMAF_LLM_API_KEY")
	if o.applyRlimits {
		rep := throttle.ApplyRlimits(o.rlimits, logger)
		for _, w := range rep.Warnings() {
			fmt.Fprintln(stderr, "pi-agent serve: rlimit warning:", w)
		}
		var stop func()
		ctx, stop = throttle.NotifyCPULimit(ctx, logger)
		defer stop()
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	s, err := newServer(cfg, o, logger, level, guardOptions(env, storage, logger))
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Fprintf(stderr, "pi-agent serve: listening on http://%s (slots %d, queue %d)\n", ln.Addr(), o.slots, o.queue)
	return s.serve(ctx, ln)
}

// server is the HTTP service. Its goroutines (the HTTP server's and the
// idle janitor) are owned by serve, which returns after they stopped.
type server struct {
	cfg    factories.ResourceConfig
	opts   serveOptions
	logger *slog.Logger
	guard  *factories.ResourceGuard
	exec   *adaptive.Executor
	cpu    *throttle.CPUThrottler
	slots  chan struct{}

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
	llm      *llmClient
	pagerCap int64 // the pager limit the adaptive executor asked for (0: none)
}

// builtIndex is the corpus index in a paged State.
type builtIndex struct {
	pager  *paging.Pager
	unreg  func()
	built  time.Time
	chunks int
	docs   int
}

func newServer(cfg factories.ResourceConfig, o serveOptions, logger *slog.Logger, level *slog.LevelVar, gopts factories.GuardOptions) (*server, error) {
	g, err := factories.CreateResourceGuard(cfg, gopts)
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, opts: o, logger: logger, guard: g, slots: make(chan struct{}, o.slots)}
	s.cpu, err = g.NewCPUThrottler(cfg, logger)
	if err != nil {
		g.Close()
		return nil, err
	}
	s.exec, _, err = factories.CreateAdaptiveExecutor(cfg, factories.AdaptiveDeps{Guard: g, CPU: s.cpu, LogLevel: level, Logger: logger,
		Executor: executor.Options{Observers: []executor.Observer{executor.NewLogObserver(logger)}},
		Adaptive: adaptive.Options{Pager: pagerRef{s}}})
	if err != nil {
		g.Close()
		return nil, err
	}
	return s, nil
}

// serve serves on ln until ctx ends, then stops accepting, lets in-flight
// runs finish within the drain timeout, releases everything and returns nil.
func (s *server) serve(ctx context.Context, ln net.Listener) error {
	baseCtx, cancelRuns := context.WithCancel(context.Background())
	defer cancelRuns()
	srv := &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	janitorDone := make(chan struct{})
	stopJanitor := make(chan struct{})
	go s.janitor(stopJanitor, janitorDone)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	s.draining.Store(true)
	s.logger.Info("pi-agent serve: draining", "in_flight", s.inFlight.Load(), "drain_timeout", s.opts.drainTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), s.opts.drainTimeout)
	err := srv.Shutdown(dctx)
	cancel()
	if err != nil {
		s.logger.Warn("pi-agent serve: drain timeout; cancelling the runs still in flight", "in_flight", s.inFlight.Load())
		cancelRuns()
		srv.Close()
	}
	if serveErr == nil {
		serveErr = <-served
	}
	close(stopJanitor)
	<-janitorDone
	s.unload("shutdown")
	s.exec.Close()
	s.guard.Close()
	if errors.Is(serveErr, http.ErrServerClosed) {
		return nil
	}
	return serveErr
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/runs", s.handleRun)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /health/detailed", s.handleDetailed)
	mux.HandleFunc("GET /metrics", s.handleMetrics)
	return mux
}

func (s *server) count(code int) {
	v, _ := s.codes.LoadOrStore(code, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

type apiError struct {
	Error string `json:"error"`
	Limit any    `json:"limit,omitempty"`
}

func (s *server) fail(w http.ResponseWriter, code int, retryAfter time.Duration, msg string, lim *limit.Error) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	}
	s.count(code)
	body := apiError{Error: msg}
	if lim != nil {
		body.Limit = lim
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(body)
}

type runRequest struct {
	Question string `json:"question"`
}

type runResponse struct {
	RunID      string        `json:"run_id"`
	Question   string        `json:"question"`
	Answer     *answer       `json:"answer,omitempty"`
	Error      string        `json:"error,omitempty"`
	Passages   []passageRef  `json:"passages"`
	Nodes      []nodeSummary `json:"nodes"`
	Mode       adaptive.Mode `json:"mode"`
	Pauses     int           `json:"pauses"`
	PausedMS   int64         `json:"paused_ms"`
	DurationMS int64         `json:"duration_ms"`
}

type passageRef struct {
	Name  string  `json:"name"`
	Chunk int     `json:"chunk"`
	Score float64 `json:"score"`
}

type nodeSummary struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Attempts   int    `json:"attempts"`
	DurationMS int64  `json:"duration_ms"`
}

// handleRun admits a run (413, 503, 429, 400 as the case may be), runs it
// and answers with its result.
func (s *server) handleRun(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		s.fail(w, http.StatusServiceUnavailable, 5*time.Second, "shutting down", nil)
		return
	}
	if r.ContentLength > s.opts.maxBody {
		s.fail(w, http.StatusRequestEntityTooLarge, 0, fmt.Sprintf("body of %d bytes is over the limit of %d", r.ContentLength, s.opts.maxBody),
			&limit.Error{Kind: limit.MessageSize, Current: float64(r.ContentLength), Limit: float64(s.opts.maxBody), Unit: "bytes"})
		return
	}
	if lim, retry := s.pressure(); lim != nil {
		s.fail(w, http.StatusServiceUnavailable, retry, lim.Error(), lim)
		return
	}
	release, ok := s.acquire(r.Context())
	if !ok {
		s.fail(w, http.StatusTooManyRequests, s.retryAfterBusy(), fmt.Sprintf("all %d run slots are busy", s.opts.slots),
			&limit.Error{Kind: limit.Queue, Current: float64(s.opts.slots + int(s.queued.Load())), Limit: float64(s.opts.slots + s.opts.queue), Detail: "run slots and queue full"})
		return
	}
	defer release()
	var req runRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.opts.maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.fail(w, http.StatusRequestEntityTooLarge, 0, fmt.Sprintf("body is over the limit of %d bytes", s.opts.maxBody),
				&limit.Error{Kind: limit.MessageSize, Current: float64(s.opts.maxBody + 1), Limit: float64(s.opts.maxBody), Unit: "bytes"})
			return
		}
		s.fail(w, http.StatusBadRequest, 0, "malformed JSON: "+err.Error(), nil)
		return
	}
	req.Question = strings.TrimSpace(req.Question)
	if req.Question == "" {
		s.fail(w, http.StatusBadRequest, 0, `missing "question"`, nil)
		return
	}
	if len(req.Question) > 4096 {
		s.fail(w, http.StatusBadRequest, 0, "question longer than 4096 bytes", nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.runTimeout)
	defer cancel()
	resp, code := s.run(ctx, req.Question)
	s.count(code)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(resp)
}

// pressure says whether the resource guard refuses new runs, and for how
// long: a signal on its Pause rung (heat, memory, swap, disk, or CPU used by
// others for several samples), or a guard of the application's own. The
// ladders decide, not serve: a single busy CPU sample never refuses.
func (s *server) pressure() (*limit.Error, time.Duration) {
	err := s.guard.Check()
	if err == nil {
		return nil, 0
	}
	retry := 2 * s.cfg.CheckInterval
	var pe *throttle.PauseError
	if errors.As(err, &pe) {
		retry = max(time.Until(pe.Until), time.Second)
	}
	var lim *limit.Error
	if !errors.As(err, &lim) {
		lim = &limit.Error{Kind: limit.Pressure, Detail: err.Error()}
	}
	return lim, retry
}

func (s *server) retryAfterBusy() time.Duration { return 2 * time.Second }

// acquire takes a run slot, waiting in the bounded queue if configured.
func (s *server) acquire(ctx context.Context) (release func(), ok bool) {
	release = func() { <-s.slots; s.inFlight.Add(-1) }
	select {
	case s.slots <- struct{}{}:
		s.inFlight.Add(1)
		return release, true
	default:
	}
	if s.queued.Add(1) > int64(s.opts.queue) {
		s.queued.Add(-1)
		return nil, false
	}
	defer s.queued.Add(-1)
	select {
	case s.slots <- struct{}{}:
		s.inFlight.Add(1)
		return release, true
	case <-ctx.Done():
		return nil, false
	}
}

// run answers question over the (lazily built) index.
func (s *server) run(ctx context.Context, question string) (runResponse, int) {
	s.lastUsed.Store(time.Now().UnixNano())
	defer s.lastUsed.Store(time.Now().UnixNano())
	start := time.Now()
	resp := runResponse{RunID: executor.NewRunID(start), Question: question}
	idx, err := s.ensureIndex(ctx)
	if err != nil {
		resp.Error = "building the index: " + err.Error()
		s.runsFail.Add(1)
		return resp, http.StatusInternalServerError
	}
	spec := agentSpec{Question: question, Shards: s.opts.shards, TopK: s.opts.topK, Answerer: s.answerer()}
	g, err := dag.New(queryNodes(spec, nil)...)
	if err != nil {
		resp.Error = err.Error()
		return resp, http.StatusInternalServerError
	}
	st := newOverlay(idx.pager)
	res, runErr := s.exec.RunWith(ctx, g, st, executor.RunOptions{ID: resp.RunID})
	resp.DurationMS = time.Since(start).Milliseconds()
	resp.Mode = s.exec.CurrentMode()
	if res != nil {
		resp.Pauses, resp.PausedMS = res.Pauses, res.Paused.Milliseconds()
		for _, n := range res.Nodes {
			resp.Nodes = append(resp.Nodes, nodeSummary{ID: n.ID, Status: n.Status.String(), Attempts: n.Attempts, DurationMS: n.Duration().Milliseconds()})
		}
	}
	if r, err := dag.GetJSON[retrieval](st, keyRetrieval); err == nil {
		for _, h := range r.Hits {
			resp.Passages = append(resp.Passages, passageRef{Name: h.Name, Chunk: h.Chunk, Score: h.Score})
		}
	}
	if a, err := dag.GetJSON[answer](st, keyAnswer); err == nil {
		resp.Answer = &a
	}
	switch {
	case runErr != nil && errors.Is(runErr, context.DeadlineExceeded):
		resp.Error = fmt.Sprintf("run timed out after %v", s.opts.runTimeout)
		s.runsFail.Add(1)
		return resp, http.StatusGatewayTimeout
	case runErr != nil:
		resp.Error = runErr.Error()
		s.runsFail.Add(1)
		return resp, http.StatusInternalServerError
	case resp.Answer == nil:
		if nr, ok := res.Node("answer"); ok && nr.Err != nil {
			resp.Error = nr.Err.Error()
		}
		s.runsFail.Add(1)
		return resp, http.StatusBadGateway
	}
	s.runsOK.Add(1)
	return resp, http.StatusOK
}

func (s *server) answerer() answerer {
	if s.opts.llmURL == "" {
		return extractive{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.llm == nil {
		s.llm = &llmClient{url: endpointURL(s.opts.llmURL), model: s.opts.llmModel, apiKey: s.opts.llmKey, timeout: s.opts.llmTimeout,
			retry: llmRetry(3, 500*time.Millisecond), cpu: s.cpu}
	}
	return s.llm
}

// ensureIndex returns the built index, building it once if needed;
// concurrent callers share one build.
func (s *server) ensureIndex(ctx context.Context) (*builtIndex, error) {
	for {
		s.mu.Lock()
		if s.index != nil {
			idx := s.index
			s.mu.Unlock()
			return idx, nil
		}
		if s.building != nil {
			ch := s.building
			s.mu.Unlock()
			select {
			case <-ch:
				s.mu.Lock()
				err := s.buildErr
				s.mu.Unlock()
				if err != nil {
					return nil, err
				}
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ch := make(chan struct{})
		s.building = ch
		s.mu.Unlock()
		idx, err := s.buildIndex(ctx)
		s.mu.Lock()
		s.index, s.buildErr, s.building = idx, err, nil
		s.mu.Unlock()
		close(ch)
		if err != nil {
			return nil, err
		}
		return idx, nil
	}
}

func (s *server) buildIndex(ctx context.Context) (*builtIndex, error) {
	start := time.Now()
	pager, err := factories.CreateContextPager(s.cfg, nil, paging.Options{StoragePath: filepath.Join(s.opts.storage, "serve-pages"), Logger: s.logger})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.pagerCap > 0 {
		pager.SetMemoryLimit(s.pagerCap)
	}
	s.mu.Unlock()
	spec := agentSpec{Docs: s.opts.docs, DocsLabel: s.opts.docsLabel, Shards: s.opts.shards, ChunkSize: s.opts.chunkSize}
	nodes, _ := indexNodes(spec)
	g, err := dag.New(nodes...)
	if err == nil {
		_, err = s.exec.RunWith(ctx, g, pager, executor.RunOptions{ID: "index-" + executor.NewRunID(start)})
	}
	if err != nil {
		pager.Close()
		return nil, err
	}
	idx := &builtIndex{pager: pager, built: time.Now(), unreg: s.guard.Reclaimer.Register(pager, 0)}
	idx.chunks, _ = dag.GetJSON[int](pager, keyChunks)
	if docs, err := dag.GetJSON[[]docMeta](pager, keyDocs); err == nil {
		idx.docs = len(docs)
	}
	s.logger.Info("pi-agent serve: index built", "docs", idx.docs, "chunks", idx.chunks, "took", time.Since(start))
	return idx, nil
}

// janitor unloads the heavy resources after the idle timeout.
func (s *server) janitor(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(max(s.opts.idleTimeout/4, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			s.unloadIfIdle(now)
		}
	}
}

// unloadIfIdle releases the index and the LLM client's connections when no
// run is in flight and the last one ended at least the idle timeout ago.
func (s *server) unloadIfIdle(now time.Time) bool {
	last := s.lastUsed.Load()
	if s.inFlight.Load() > 0 || s.queued.Load() > 0 || last == 0 || now.Sub(time.Unix(0, last)) < s.opts.idleTimeout {
		return false
	}
	return s.unload("idle")
}

func (s *server) unload(why string) bool {
	s.mu.Lock()
	idx, llm := s.index, s.llm
	s.index, s.llm = nil, nil
	s.mu.Unlock()
	if llm != nil {
		llm.Unload()
	}
	if idx == nil {
		return llm != nil
	}
	idx.unreg()
	if err := idx.pager.Close(); err != nil {
		s.logger.Warn("pi-agent serve: closing the index pager", "error", err)
	}
	os.RemoveAll(filepath.Join(s.opts.storage, "serve-pages"))
	// Give the memory back to the device now, not at the next GC cycle.
	debug.FreeOSMemory()
	s.logger.Info("pi-agent serve: unloaded the index and LLM connections", "reason", why)
	return true
}

func (s *server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":"draining"}`+"\n")
		return
	}
	io.WriteString(w, `{"status":"ok"}`+"\n")
}

type detailed struct {
	Status      string                              `json:"status"`
	Time        time.Time                           `json:"time"`
	CPU         map[string]any                      `json:"cpu"`
	Memory      map[string]any                      `json:"memory"`
	Swap        map[string]any                      `json:"swap"`
	Temperature map[string]any                      `json:"temperature"`
	Mode        adaptive.Status                     `json:"mode"`
	Ladders     throttle.BreakerStatus              `json:"ladders"`
	Concurrency map[string]int64                    `json:"concurrency"`
	Index       map[string]any                      `json:"index"`
	LLM         map[string]any                      `json:"llm"`
	Pager       *paging.Stats                       `json:"pager,omitempty"`
	Config      map[string]factories.EffectiveValue `json:"config"`
	Serve       map[string]any                      `json:"serve"`
}

func (s *server) handleDetailed(w http.ResponseWriter, r *http.Request) {
	d := detailed{Status: "ok", Time: time.Now(), Config: s.cfg.Effective(), Mode: s.exec.Status()}
	if s.draining.Load() {
		d.Status = "draining"
	}
	if smp := s.guard.Monitor.Snapshot().Sample; smp != nil {
		d.Memory = map[string]any{"percent": smp.MemoryUsedPercent, "available_mb": smp.MemoryAvailableBytes >> 20,
			"total_mb": smp.MemoryTotalBytes >> 20, "process_rss_mb": smp.ProcessRSSBytes >> 20}
		d.Swap = map[string]any{"percent": smp.SwapUsedPercent, "total_mb": smp.SwapTotalBytes >> 20}
		d.CPU = map[string]any{"percent": smp.CPUPercent, "process_percent": smp.ProcessCPUPercent, "helpers_percent": smp.HelpersCPUPercent,
			"others_percent": smp.OthersCPUPercent, "helpers": smp.Helpers}
		if lim, _ := s.pressure(); lim != nil {
			d.Status = "degraded"
		}
	}
	if tm := s.guard.Thermal; tm != nil {
		st := tm.Status()
		d.Temperature = map[string]any{"celsius": st.TempC, "sensor": st.Sensor, "adapt_c": st.Levels.AdaptC, "pause_c": st.Levels.PauseC, "below_pause_c": st.BelowPauseC}
	} else {
		d.Temperature = map[string]any{"available": false}
	}
	d.Ladders = s.guard.Breaker.Status()
	used := s.inFlight.Load()
	d.Concurrency = map[string]int64{"slots": int64(s.opts.slots), "in_use": used, "free": int64(s.opts.slots) - used, "queue": int64(s.opts.queue), "queued": s.queued.Load()}
	s.mu.Lock()
	idx, llm := s.index, s.llm
	s.mu.Unlock()
	d.Index = map[string]any{"loaded": idx != nil, "corpus": s.opts.docsLabel, "idle_timeout": s.opts.idleTimeout.String()}
	if idx != nil {
		d.Index["docs"], d.Index["chunks"], d.Index["built_at"] = idx.docs, idx.chunks, idx.built
		ps := idx.pager.Stats()
		d.Pager = &ps
	}
	d.LLM = map[string]any{"configured": s.opts.llmURL != "", "loaded": llm != nil && llm.Loaded()}
	if s.opts.llmURL != "" {
		d.LLM["url"] = endpointURL(s.opts.llmURL)
	}
	d.Serve = map[string]any{"max_body_bytes": s.opts.maxBody, "run_timeout": s.opts.runTimeout.String(), "drain_timeout": s.opts.drainTimeout.String()}
	w.Header().Set("Content-Type", "application/json")
	writeJSON(w, d)
}

func (s *server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.guard.Monitor.WritePrometheus(w)
	s.guard.Breaker.WritePrometheus(w)
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
	}
	fmt.Fprintf(w, "# HELP cemaf_http_requests_total Run requests answered, by status code.\n# TYPE cemaf_http_requests_total counter\n")
	s.codes.Range(func(k, v any) bool {
		fmt.Fprintf(w, "cemaf_http_requests_total{code=\"%d\"} %d\n", k.(int), v.(*atomic.Int64).Load())
		return true
	})
	fmt.Fprintf(w, "# HELP cemaf_runs_total Runs finished, by outcome.\n# TYPE cemaf_runs_total counter\ncemaf_runs_total{outcome=\"ok\"} %d\ncemaf_runs_total{outcome=\"failed\"} %d\n", s.runsOK.Load(), s.runsFail.Load())
	gauge("cemaf_run_slots", "Run slots.", float64(s.opts.slots))
	gauge("cemaf_runs_in_flight", "Runs holding a slot.", float64(s.inFlight.Load()))
	gauge("cemaf_runs_queued", "Runs waiting for a slot.", float64(s.queued.Load()))
	fmt.Fprintf(w, "# HELP cemaf_mode Current adaptive mode (1 for the mode in effect).\n# TYPE cemaf_mode gauge\n")
	cur := s.exec.CurrentMode()
	for _, m := range append([]adaptive.Mode{adaptive.Normal}, adaptive.DefaultPriority()...) {
		v := 0
		if m == cur {
			v = 1
		}
		fmt.Fprintf(w, "cemaf_mode{mode=%q} %d\n", m, v)
	}
	s.mu.Lock()
	idx := s.index
	s.mu.Unlock()
	loaded := 0.0
	if idx != nil {
		loaded = 1
		ps := idx.pager.Stats()
		gauge("cemaf_pager_bytes_in_memory", "Value bytes resident in RAM.", float64(ps.BytesInMemory))
		gauge("cemaf_pager_pages_on_disk", "Pages in the page file.", float64(ps.PagesOnDisk))
		gauge("cemaf_pager_hit_rate", "Page hit rate.", ps.HitRate)
	}
	gauge("cemaf_index_loaded", "Whether the corpus index is loaded.", loaded)
}

// pagerRef lets the adaptive executor shrink whichever index pager is
// loaded; with none loaded it remembers the limit for the next build.
type pagerRef struct{ s *server }

func (p pagerRef) MemoryLimit() int64 {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if p.s.index != nil {
		return p.s.index.pager.MemoryLimit()
	}
	return int64(p.s.cfg.PagerMemoryLimitMB * (1 << 20))
}

func (p pagerRef) SetMemoryLimit(b int64) error {
	p.s.mu.Lock()
	idx := p.s.index
	if b >= int64(p.s.cfg.PagerMemoryLimitMB*(1<<20)) {
		p.s.pagerCap = 0
	} else {
		p.s.pagerCap = b
	}
	p.s.mu.Unlock()
	if idx != nil {
		return idx.pager.SetMemoryLimit(b)
	}
	return nil
}
