package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/remote"
)

// serve --nats: the services of a fleet share one queue of runs. A request
// accepted by any of them becomes a task of capability capServe on the
// fleet's work queue, and every service is also a remote.Worker of that
// capability with --slots slots and its resource guard: a service pulls a
// request only while it has a free slot and its device is not paused, so a
// request accepted by a hot or busy board is run by another one. The
// worker runs the request as a local serve would (server.run) and writes
// the response back; the accepting service answers it. A service killed
// mid-run loses nothing: its request is delivered again to another after
// the fleet's AckWait.
//
// Admission weighs the fleet, not this board: 503 when no live service of
// the fleet takes requests (all paused, or none heard from), 429 when the
// requests in the queue (waiting or running) fill every live service's
// slots plus --queue places.

// State keys of a fleet request's one-node graph.
const (
	keyFleetRequest  = "serve/request"
	keyFleetResponse = "serve/response"
)

// serveFleet is a service's part in the fleet. Its worker's goroutines
// belong to runWorker's caller (server.serve).
type serveFleet struct {
	url    string
	nc     *nats.Conn
	coord  *remote.Coordinator
	worker *remote.Worker
	exec   *executor.Executor
	graph  *dag.Graph
}

// fleetReply is a fleet request's outcome, written by the service that
// ran it.
type fleetReply struct {
	Code     int              `json:"code"`
	Response fleetRunResponse `json:"response"`
}

// fleetRunResponse is a run's answer with the service that ran it.
type fleetRunResponse struct {
	runResponse
	RanBy string `json:"ran_by"`
}

// joinFleet connects the service to the fleet of s.opts.nats, if set.
func (s *server) joinFleet(ctx context.Context) error {
	n := s.opts.nats
	if !n.enabled() {
		return nil
	}
	nc, err := n.connect(ctx, "pi-agent serve", s.logger)
	if err != nil {
		return err
	}
	fl := &serveFleet{url: n.url, nc: nc}
	if err := fl.setUp(ctx, s); err != nil {
		fl.close(s)
		return err
	}
	s.fleet = fl
	return nil
}

func (fl *serveFleet) setUp(ctx context.Context, s *server) error {
	lay := s.opts.nats.layout
	var err error
	if fl.coord, err = remote.NewCoordinator(ctx, fl.nc, remote.CoordinatorOptions{Layout: lay, Logger: s.logger,
		OnWaiting: func(context.Context, string, string) {}}); err != nil {
		return err
	}
	if fl.exec, err = executor.New(executor.Options{Gate: fl.coord}); err != nil {
		return err
	}
	spec := remote.Spec{Capability: capServe, Func: "run", Reads: []string{keyFleetRequest}, Writes: []string{keyFleetResponse}}
	node, err := fl.coord.Node(dag.Node{ID: "serve", Timeout: s.opts.runTimeout}, spec)
	if err != nil {
		return err
	}
	if fl.graph, err = dag.New(node); err != nil {
		return err
	}
	reg := remote.NewRegistry()
	if err := reg.Register(capServe, "run", s.fleetTask); err != nil {
		return err
	}
	fl.worker, err = remote.NewWorker(fl.nc, reg, remote.WorkerOptions{Layout: lay, ID: s.opts.workerID, Slots: s.opts.slots,
		Guard: s.rt.Guard, Status: runtimeStatus(s.rt), DrainTimeout: s.opts.drainTimeout, Logger: s.logger})
	return err
}

// runWorker runs the service's worker until stop is called (or ctx ends);
// wait waits for its drain, then closes the fleet's coordinator and
// connection. Without a fleet both do nothing.
func (s *server) runWorker(ctx context.Context) (stop, wait func()) {
	fl := s.fleet
	if fl == nil {
		return func() {}, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fl.worker.Run(ctx) }()
	return cancel, func() {
		cancel()
		if err := <-done; err != nil {
			s.logger.Warn("pi-agent serve: the fleet's worker stopped", "error", err)
		}
		fl.close(s)
	}
}

func (fl *serveFleet) close(s *server) {
	if fl.coord != nil {
		if err := fl.coord.Close(); err != nil {
			s.logger.Warn("pi-agent serve: closing the fleet's coordinator", "error", err)
		}
	}
	fl.nc.Close()
}

// fleetTask runs a request of the fleet on this service, as a local
// request runs.
func (s *server) fleetTask(ctx context.Context, st dag.State) error {
	req, err := dag.GetJSON[runRequest](st, keyFleetRequest)
	if err != nil {
		return dag.Permanent(fmt.Errorf("fleet request: %w", err))
	}
	if _, rerr := parseRunRequest(mustJSON(req)); rerr != nil {
		return dag.Permanent(fmt.Errorf("fleet request: %s", rerr.msg))
	}
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	resp, code := s.runWith(ctx, serveRun{question: req.Question})
	reply := fleetReply{Code: code, Response: fleetRunResponse{runResponse: resp, RanBy: s.fleet.worker.ID()}}
	return dag.PutJSON(st, keyFleetResponse, reply)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v) // plain fields: cannot fail
	return b
}

// runHandler is POST /v1/runs: the fleet's when the service is in one.
func (s *server) runHandler() http.HandlerFunc {
	if s.fleet != nil {
		return s.handleFleetRun
	}
	return s.handleRun
}

// handleFleetRun admits a request for the fleet, queues it and answers
// with the response of the service that ran it. Admission goes, in order:
// shutting down (503), the body's checks (413, 408, 400), no live service
// takes requests (503), the fleet's slots and queue full (429).
func (s *server) handleFleetRun(w http.ResponseWriter, r *http.Request) {
	req, ok := s.takeRunRequest(w, r)
	if !ok {
		return
	}
	if req.Stream || req.Clarify {
		// The fleet's runs answer in one reply, and waiting runs stay with
		// the service that holds them.
		s.fail(w, http.StatusBadRequest, 0, `"stream" and "clarify" are not served by serve --nats; send the request without them`, nil)
		return
	}
	if code, retry, lim := s.fleetAdmission(r.Context()); lim != nil {
		s.fail(w, code, retry, lim.Error(), lim)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.runTimeout)
	defer cancel()
	st := dag.NewMemoryState()
	if err := dag.PutJSON(st, keyFleetRequest, req); err != nil {
		s.fail(w, http.StatusInternalServerError, 0, err.Error(), nil)
		return
	}
	id := executor.NewRunID(time.Now())
	s.queued.Add(1)
	res, runErr := s.fleet.exec.RunWith(ctx, s.fleet.graph, st, executor.RunOptions{ID: id})
	s.queued.Add(-1)
	// A request's run is never resumed.
	forgetFleetRun(context.WithoutCancel(r.Context()), s.fleet.coord, id, s.logger)
	if reply, err := dag.GetJSON[fleetReply](st, keyFleetResponse); err == nil {
		s.respond(w, reply.Code, reply.Response)
		return
	}
	resp := fleetRunResponse{runResponse: runResponse{RunID: id, Question: req.Question}}
	if code, msg := stoppedCode(ctx, s.opts.runTimeout); code != 0 {
		resp.Error = msg
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "5")
		}
		s.respond(w, code, resp)
		return
	}
	resp.Error = "the fleet did not run the request"
	if runErr != nil {
		resp.Error += ": " + runErr.Error()
	} else if nr, ok := res.Node("serve"); ok && nr.Err != nil {
		resp.Error += ": " + nr.Err.Error()
	}
	s.respond(w, http.StatusBadGateway, resp)
}

// fleetAdmission decides whether the fleet takes one more request: the
// live services of the fleet that take requests, their slots, and the
// requests already in the queue.
func (s *server) fleetAdmission(ctx context.Context) (code int, retry time.Duration, lim *limit.Error) {
	fl := s.fleet
	now := time.Now()
	capa := fl.coord.Fleet().Capacity(capServe, now)
	if capa.Ready == 0 {
		return http.StatusServiceUnavailable, 5 * time.Second,
			&limit.Error{Kind: limit.Pressure, Subject: "fleet", Detail: "the fleet takes no request: " + capa.Reason}
	}
	slots := 0
	for _, p := range fl.coord.Fleet().Peers(now) {
		if p.Serves(capServe) && p.Paused == "" {
			slots += p.Slots
		}
	}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	backlog, err := fl.coord.Backlog(bctx, capServe)
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return http.StatusServiceUnavailable, 0, &limit.Error{Kind: limit.Pressure, Subject: "fleet", Detail: "the client went away"}
		}
		return http.StatusServiceUnavailable, 5 * time.Second,
			&limit.Error{Kind: limit.Pressure, Subject: "fleet", Detail: "the fleet's queue cannot be read: " + err.Error()}
	}
	if backlog >= slots+s.opts.queue {
		return http.StatusTooManyRequests, 2 * time.Second, &limit.Error{Kind: limit.Queue, Subject: "fleet",
			Current: float64(backlog + 1), Limit: float64(slots + s.opts.queue),
			Detail: fmt.Sprintf("the fleet's %s and %s are full (%s live)", plural(slots, "run slot"), plural(s.opts.queue, "queue place"), plural(capa.Ready, "service"))}
	}
	return 0, 0, nil
}

// fleetNote is what serve's start line says of the fleet.
func (s *server) fleetNote() string {
	if s.fleet == nil {
		return ""
	}
	return fmt.Sprintf("; in the fleet of %s as %s", s.fleet.url, s.fleet.worker.ID())
}

// fleetHealth is the fleet's part of /health/detailed.
type fleetHealth struct {
	Server   string          `json:"server"`
	ID       string          `json:"id"`
	Services []remote.Peer   `json:"services"`
	Capacity remote.Capacity `json:"capacity"`
	// Backlog is the requests in the fleet's queue, waiting or running;
	// -1 when it cannot be read (BacklogError says why).
	Backlog      int    `json:"backlog"`
	BacklogError string `json:"backlog_error,omitempty"`
}

// fleetHealth reports the fleet's services, their capacity and the queue;
// nil without a fleet.
func (s *server) fleetHealth(ctx context.Context) *fleetHealth {
	fl := s.fleet
	if fl == nil {
		return nil
	}
	now := time.Now()
	h := &fleetHealth{Server: fl.url, ID: fl.worker.ID(), Services: []remote.Peer{}, Capacity: fl.coord.Fleet().Capacity(capServe, now)}
	for _, p := range fl.coord.Fleet().Peers(now) {
		if p.Serves(capServe) {
			h.Services = append(h.Services, p)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	n, err := fl.coord.Backlog(ctx, capServe)
	h.Backlog = n
	if err != nil {
		h.Backlog, h.BacklogError = -1, err.Error()
	}
	return h
}
