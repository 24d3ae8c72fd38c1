package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cemaf-go/cemaf/adaptive"
	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/throttle"
)

// maxQuestionBytes bounds a question.
const maxQuestionBytes = 4096

type apiError struct {
	Error string `json:"error"`
	Limit any    `json:"limit,omitempty"`
}

// fail answers an error; retryAfter > 0 sets Retry-After.
func (s *server) fail(w http.ResponseWriter, code int, retryAfter time.Duration, msg string, lim *limit.Error) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	}
	body := apiError{Error: msg}
	if lim != nil {
		body.Limit = lim
	}
	s.respond(w, code, body)
}

// respond writes a JSON answer within the write timeout.
func (s *server) respond(w http.ResponseWriter, code int, body any) {
	s.count(code)
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.opts.writeTimeout))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(body)
}

type runRequest struct {
	Question string `json:"question"`
	// Stream asks for server-sent events (see streamRun).
	Stream bool `json:"stream,omitempty"`
	// Clarify makes a question no passage matches wait for other words
	// (POST /v1/runs/{id}/input) instead of being answered.
	Clarify bool `json:"clarify,omitempty"`
}

// requestError is a request refused before it runs.
type requestError struct {
	code int
	msg  string
	lim  *limit.Error
}

func (e *requestError) Error() string { return e.msg }

// parseRunRequest decodes a request body: one JSON object with a
// "question" (a non-empty string of at most maxQuestionBytes once
// trimmed), no other field, nothing after it.
func parseRunRequest(body []byte) (runRequest, *requestError) {
	var req runRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, &requestError{code: http.StatusBadRequest, msg: "malformed JSON: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, &requestError{code: http.StatusBadRequest, msg: "malformed JSON: the body holds more than one JSON value"}
	}
	req.Question = strings.TrimSpace(req.Question)
	switch {
	case req.Question == "":
		return req, &requestError{code: http.StatusBadRequest, msg: `missing "question"`}
	case len(req.Question) > maxQuestionBytes:
		return req, &requestError{code: http.StatusBadRequest, msg: fmt.Sprintf("question longer than %d bytes", maxQuestionBytes),
			lim: &limit.Error{Kind: limit.MessageSize, Subject: "question", Current: float64(len(req.Question)), Limit: maxQuestionBytes, Unit: "bytes"}}
	case !utf8.ValidString(req.Question):
		// encoding/json replaces invalid UTF-8 in strings; this is a
		// safeguard.
		return req, &requestError{code: http.StatusBadRequest, msg: "the question is not valid UTF-8"}
	}
	return req, nil
}

// readRunRequest reads and decodes the body of r within the read-body
// timeout and the size limit. It runs before a run slot is taken, so a
// slow client holds only its own connection.
func (s *server) readRunRequest(w http.ResponseWriter, r *http.Request) (runRequest, *requestError) {
	body, rerr := s.readBody(w, r)
	if rerr != nil {
		return runRequest{}, rerr
	}
	return parseRunRequest(body)
}

// readBody reads the body of r within the read-body timeout and the size
// limit.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *requestError) {
	tooLarge := func(current int64) *requestError {
		return &requestError{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("body is over the limit of %d bytes", s.opts.maxBody),
			lim: &limit.Error{Kind: limit.MessageSize, Subject: "body", Current: float64(current), Limit: float64(s.opts.maxBody), Unit: "bytes"}}
	}
	if r.ContentLength > int64(s.opts.maxBody) {
		return nil, tooLarge(r.ContentLength)
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(s.opts.readBodyTimeout))
	unregister := s.bodyReads.add(rc)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.opts.maxBody)))
	unregister()
	if err == nil {
		// Clear the deadline: while the run goes on, the server reads the
		// connection in the background to notice a client that went
		// away, and a deadline passing there would cancel the run. (After
		// an error it stays: the server then discards what is left of
		// the body, and must not wait for it.)
		rc.SetReadDeadline(time.Time{})
	}
	if s.draining.Load() {
		return nil, &requestError{code: http.StatusServiceUnavailable, msg: "shutting down"}
	}
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge(mbe.Limit + 1)
	case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		w.Header().Set("Connection", "close")
		return nil, &requestError{code: http.StatusRequestTimeout, msg: fmt.Sprintf("the body did not arrive within %v", formatDuration(s.opts.readBodyTimeout))}
	case err != nil:
		return nil, &requestError{code: http.StatusBadRequest, msg: "reading the body: " + err.Error()}
	}
	return body, nil
}

// bodyReads are the request bodies being read, so that a drain can cut the
// slow ones short instead of waiting for their read timeout.
type bodyReads struct {
	// mu guards m and cut.
	mu  sync.Mutex
	m   map[*http.ResponseController]struct{}
	cut bool
}

// add registers a body read; the returned func unregisters it. Once cut,
// a new read is cut at once.
func (b *bodyReads) add(rc *http.ResponseController) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		rc.SetReadDeadline(time.Now())
		return func() {}
	}
	if b.m == nil {
		b.m = map[*http.ResponseController]struct{}{}
	}
	b.m[rc] = struct{}{}
	return func() {
		b.mu.Lock()
		delete(b.m, rc)
		b.mu.Unlock()
	}
}

// cutAll ends every body read in progress, and every later one.
func (b *bodyReads) cutAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cut = true
	for rc := range b.m {
		rc.SetReadDeadline(time.Now())
	}
}

// takeRunRequest reads the body of a POST /v1/runs, answering it
// instead (false) while the server shuts down or when the body is refused.
func (s *server) takeRunRequest(w http.ResponseWriter, r *http.Request) (runRequest, bool) {
	if s.draining.Load() {
		s.fail(w, http.StatusServiceUnavailable, 5*time.Second, "shutting down", nil)
		return runRequest{}, false
	}
	req, rerr := s.readRunRequest(w, r)
	if rerr != nil {
		s.fail(w, rerr.code, 0, rerr.msg, rerr.lim)
		return runRequest{}, false
	}
	return req, true
}

// handleRun admits a run, runs it and answers with its result. Admission
// goes, in order: shutting down (503), body too large (413), body too slow
// (408), malformed (400), resource pressure (503), every slot and queue
// place busy (429).
func (s *server) handleRun(w http.ResponseWriter, r *http.Request) {
	req, ok := s.takeRunRequest(w, r)
	if !ok {
		return
	}
	s.admitAndRun(w, r, serveRun{question: req.Question, clarify: req.Clarify, stream: req.Stream})
}

// pressure says whether the resource guard refuses new runs, and for how
// long: a signal on its Pause rung (heat, memory, swap, disk, or CPU used by
// others for several samples), or a guard of the application's own. The
// ladders decide, not serve: a single busy CPU sample never refuses.
func (s *server) pressure() (*limit.Error, time.Duration) {
	err := s.rt.Guard.Check()
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
	// Status is "waiting" when the run waits for input (code 202):
	// Waiting holds what it asks; answer with POST /v1/runs/{id}/input.
	Status  string              `json:"status,omitempty"`
	Waiting []executor.Question `json:"waiting,omitempty"`
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
	Error      string `json:"error,omitempty"`
}

// runWith answers sr's question over the (lazily built) index, in a State
// of its own over it (see overlay.go): with sr's answers for a run that
// waited for input, and sr's observer for a streamed one.
func (s *server) runWith(ctx context.Context, sr serveRun) (runResponse, int) {
	s.lastUsed.Store(time.Now().UnixNano())
	defer s.lastUsed.Store(time.Now().UnixNano())
	start := time.Now()
	question := sr.question
	resp := runResponse{RunID: cmp.Or(sr.id, executor.NewRunID(start)), Question: question}
	idx, err := s.ensureIndex(ctx)
	if err != nil {
		s.runsFail.Add(1)
		if code, msg := stoppedCode(ctx, s.opts.runTimeout); code != 0 {
			resp.Error = msg
			return resp, code
		}
		resp.Error = "building the index: " + err.Error()
		return resp, http.StatusInternalServerError
	}
	defer s.releaseIndex(idx)
	ans, err := s.answererFor(sr.stream)
	if err != nil {
		resp.Error = err.Error()
		return resp, http.StatusInternalServerError
	}
	spec := agentSpec{Question: question, Shards: s.opts.shards, TopK: s.opts.topK, Answerer: ans, Clarify: sr.clarify}
	g, err := dag.New(queryNodes(spec, nil)...)
	if err != nil {
		resp.Error = err.Error()
		return resp, http.StatusInternalServerError
	}
	own := newNamespace(s.rt.State(), runNamespace(resp.RunID))
	defer func() {
		if err := own.Clear(); err != nil {
			s.logger.Warn("pi-agent serve: clearing a run's keys", "run", resp.RunID, "error", err)
		}
	}()
	st := newOverlay(idx.pager, own)
	ro := executor.RunOptions{ID: resp.RunID, Answers: sr.answers}
	if sr.observer != nil {
		ro.Observers = []executor.Observer{sr.observer}
	}
	res, runErr := s.rt.Executor.RunWith(ctx, g, st, ro)
	resp.DurationMS = time.Since(start).Milliseconds()
	resp.Mode = s.rt.Executor.CurrentMode()
	if res != nil {
		resp.Pauses, resp.PausedMS = res.Pauses, res.Paused.Milliseconds()
		for _, n := range res.Nodes {
			ns := nodeSummary{ID: n.ID, Status: n.Status.String(), Attempts: n.Attempts, DurationMS: n.Duration().Milliseconds()}
			if n.Err != nil {
				ns.Error = n.Err.Error()
			}
			resp.Nodes = append(resp.Nodes, ns)
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
	if r, err := dag.GetJSON[retrieval](st, keyRetrieval); err == nil {
		resp.Question = r.Question // the words an input gave
	}
	if code, msg := stoppedCode(ctx, s.opts.runTimeout); code != 0 && resp.Answer == nil {
		resp.Error = msg
		s.runsFail.Add(1)
		return resp, code
	}
	if code, ok := s.waitingOrNoAnswer(&resp, res, runErr, question); ok {
		return resp, code
	}
	switch {
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

// stoppedCode is the answer for a run whose context ended: 503 when the
// drain timeout cancelled it, 504 when its own timeout passed; 0 while ctx
// is live (or the client went away: nobody reads the answer).
func stoppedCode(ctx context.Context, timeout time.Duration) (int, string) {
	switch cause := context.Cause(ctx); {
	case cause == nil:
		return 0, ""
	case errors.Is(cause, errDrainTimeout):
		return http.StatusServiceUnavailable, errDrainTimeout.Error()
	case errors.Is(cause, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, fmt.Sprintf("run timed out after %v", formatDuration(timeout))
	}
	return 0, ""
}
