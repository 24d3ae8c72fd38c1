package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cemaf-go/cemaf/executor"
	"github.com/cemaf-go/cemaf/limit"
	"github.com/cemaf-go/cemaf/llm"
)

// What serve adds for the LLM, streaming and human input: the shared LLM
// client, answers streamed as server-sent events, and the runs waiting for
// input with POST /v1/runs/{id}/input.

// serveLLMProfiles reads the LLM's mode profiles from the environment
// (CEMAF_LLM_MODEL[_<MODE>], CEMAF_LLM_MAX_TOKENS[_<MODE>],
// CEMAF_LLM_MAX_CONCURRENT[_<MODE>]), reporting every bad variable.
func serveLLMProfiles(env []string, model string) (llmSettings, error) {
	models, err := llmEnv(env)
	if err != nil {
		return llmSettings{}, err
	}
	return llmProfiles(env, cmp.Or(model, defaultLLMModel), models)
}

// llmClientLocked returns the shared LLM client, making it if idle
// unloading dropped it. Called with s.mu held.
func (s *server) llmClientLocked() (*llm.Client, error) {
	if s.llm != nil {
		return s.llm, nil
	}
	ps := s.opts.llmProfiles
	if ps.Profile.Model == "" {
		var err error
		if ps, err = llmProfiles(nil, cmp.Or(s.opts.llmModel, defaultLLMModel), nil); err != nil {
			return nil, err
		}
	}
	c, err := s.rt.NewLLMClient(s.opts.llmURL, llmAnswerOptions(ps, s.opts.llmKey, 3, 500*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("the LLM endpoint (CEMAF_LLM_URL): %w", err)
	}
	s.llm = c
	return c, nil
}

// answererFor returns the answerer of one run: extractive without an LLM
// endpoint, else the shared client, streamed when the request asked.
func (s *server) answererFor(stream bool) (answerer, error) {
	if s.opts.llmURL == "" {
		return extractive{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.llmClientLocked()
	if err != nil {
		return nil, err
	}
	return llmAnswerer{client: c, timeout: s.opts.llmTimeout, stream: stream, observe: s.rt.ObserveLLM}, nil
}

// inputRequest is the body of POST /v1/runs/{id}/input.
type inputRequest struct {
	Input  string `json:"input"`
	Stream bool   `json:"stream"`
}

// handleInput answers a run waiting for input and runs it again, answering
// as POST /v1/runs does (streamed when the body asks). A run that does not
// wait (unknown, already answered, or waiting longer than the idle
// timeout) is 404.
func (s *server) handleInput(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		s.fail(w, http.StatusServiceUnavailable, 5*time.Second, "shutting down", nil)
		return
	}
	body, rerr := s.readBody(w, r)
	if rerr != nil {
		s.fail(w, rerr.code, 0, rerr.msg, rerr.lim)
		return
	}
	var in inputRequest
	if err := decodeStrict(body, &in); err != nil {
		s.fail(w, http.StatusBadRequest, 0, "malformed JSON: "+err.Error(), nil)
		return
	}
	in.Input = strings.TrimSpace(in.Input)
	switch {
	case in.Input == "":
		s.fail(w, http.StatusBadRequest, 0, `missing "input"`, nil)
		return
	case len(in.Input) > maxQuestionBytes:
		s.fail(w, http.StatusBadRequest, 0, fmt.Sprintf("input longer than %d bytes", maxQuestionBytes),
			&limit.Error{Kind: limit.MessageSize, Subject: "input", Current: float64(len(in.Input)), Limit: maxQuestionBytes, Unit: "bytes"})
		return
	}
	id := r.PathValue("id")
	wr, ok := s.waiting.take(id, time.Now(), s.opts.idleTimeout)
	if !ok {
		s.fail(w, http.StatusNotFound, 0, fmt.Sprintf("no run %q is waiting for input (a run waits at most %v)", id, formatDuration(s.opts.idleTimeout)), nil)
		return
	}
	answers := map[string]string{}
	for _, q := range wr.questions {
		answers[q.Node] = in.Input
	}
	if !s.admitAndRun(w, r, serveRun{id: id, question: wr.question, clarify: true, stream: in.Stream, answers: answers}) {
		s.waiting.add(id, wr, s.opts.idleTimeout) // refused before it ran: it still waits
	}
}

// serveRun is one run of serve: a new one, or one answered.
type serveRun struct {
	id       string // "" for a new ID
	question string
	clarify  bool
	stream   bool
	answers  map[string]string
	observer executor.Observer // the SSE stream's, or nil
}

// admitAndRun admits a run (resource pressure, slots), runs it and answers,
// in JSON or, when asked, as server-sent events. It reports false when the
// run was refused before it started.
func (s *server) admitAndRun(w http.ResponseWriter, r *http.Request, sr serveRun) bool {
	if lim, retry := s.pressure(); lim != nil {
		s.fail(w, http.StatusServiceUnavailable, retry, lim.Error(), lim)
		return false
	}
	release, ok := s.acquire(r.Context())
	if !ok {
		s.fail(w, http.StatusTooManyRequests, 2*time.Second, fmt.Sprintf("all %d run slots are busy", s.opts.slots),
			&limit.Error{Kind: limit.Queue, Current: float64(s.opts.slots + int(s.queued.Load())), Limit: float64(s.opts.slots + s.opts.queue), Detail: "run slots and queue full"})
		return false
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.runTimeout)
	defer cancel()
	if sr.stream {
		s.streamRun(ctx, w, sr)
		return true
	}
	resp, code := s.runWith(ctx, sr)
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	s.respond(w, code, resp)
	return true
}

// streamRun runs sr and answers with server-sent events: "token" events
// (data {"text": ...}) as the answer is generated, "restart" when a cut
// stream starts over, "progress" events as nodes end (data {"node",
// "status", "attempt", "error"}), and a final "result" event whose data is
// the JSON answer with its "code" (the status code the JSON answer would
// have had). The status line is 200: it is sent before the run.
func (s *server) streamRun(ctx context.Context, w http.ResponseWriter, sr serveRun) {
	sw := newSSEWriter(w, s.opts.writeTimeout)
	defer sw.close()
	sr.observer = sw
	s.count(http.StatusOK)
	resp, code := s.runWith(ctx, sr)
	sw.finish(sseResult{Code: code, runResponse: resp})
}

// sseResult is the data of the final event of a streamed run.
type sseResult struct {
	Code int `json:"code"`
	runResponse
}

// sseWriter turns a run's events into server-sent events. The observer side
// (OnEvent, on the run's coordinator) only queues them; its own goroutine,
// which close stops and waits for, writes them, each within the write
// timeout, so that a slow client never holds the run up.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	done    chan struct{}

	// mu guards the fields below.
	mu     sync.Mutex
	queue  []sseEvent
	wake   chan struct{} // 1-buffered: events were queued
	ended  bool          // no more events: the writer drains and stops
	broken bool          // a write failed: the client is gone
}

type sseEvent struct {
	name string
	data any
	text *strings.Builder // for a "token" event: coalesced text
}

type sseProgress struct {
	Node    string `json:"node"`
	Status  string `json:"status"`
	Attempt int    `json:"attempt,omitempty"`
	Error   string `json:"error,omitempty"`
}

func newSSEWriter(w http.ResponseWriter, timeout time.Duration) *sseWriter {
	sw := &sseWriter{w: w, rc: http.NewResponseController(w), timeout: timeout, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sw.rc.Flush()
	go sw.loop()
	return sw
}

// OnEvent queues the events a client follows: the answer's tokens, and
// the end of each node.
func (sw *sseWriter) OnEvent(ev executor.Event) {
	var e sseEvent
	switch ev.Kind {
	case executor.NodeOutput:
		switch ev.Chunk.Kind {
		case executor.ChunkToken:
			sw.mu.Lock()
			if n := len(sw.queue); n > 0 && sw.queue[n-1].text != nil {
				sw.queue[n-1].text.WriteString(ev.Chunk.Text) // the writer is behind: one event
				sw.mu.Unlock()
				return
			}
			sw.mu.Unlock()
			e = sseEvent{name: "token", text: &strings.Builder{}}
			e.text.WriteString(ev.Chunk.Text)
		case chunkRestart:
			e = sseEvent{name: "restart", data: map[string]string{"node": ev.Node, "reason": ev.Chunk.Text}}
		default:
			return
		}
	case executor.NodeSucceeded, executor.NodeFailed, executor.NodeSkipped, executor.NodeCancelled, executor.NodeWaiting, executor.NodeRetrying:
		p := sseProgress{Node: ev.Node, Status: ev.Kind.String(), Attempt: ev.Attempt}
		if ev.Kind != executor.NodeRetrying {
			p.Status = ev.Status.String()
		}
		if ev.Err != nil {
			p.Error = ev.Err.Error()
		}
		e = sseEvent{name: "progress", data: p}
	default:
		return
	}
	sw.push(e)
}

func (sw *sseWriter) push(e sseEvent) {
	sw.mu.Lock()
	if !sw.ended && !sw.broken {
		sw.queue = append(sw.queue, e)
	}
	sw.mu.Unlock()
	select {
	case sw.wake <- struct{}{}:
	default:
	}
}

// finish queues the final event and waits until everything was written
// (or a write failed).
func (sw *sseWriter) finish(res sseResult) {
	sw.push(sseEvent{name: "result", data: res})
	sw.close()
}

// close stops the writer once the queue is written, and waits for it.
func (sw *sseWriter) close() {
	sw.mu.Lock()
	sw.ended = true
	sw.mu.Unlock()
	select {
	case sw.wake <- struct{}{}:
	default:
	}
	<-sw.done
}

// loop writes the queued events until close.
func (sw *sseWriter) loop() {
	defer close(sw.done)
	for {
		<-sw.wake
		sw.mu.Lock()
		batch := sw.queue
		sw.queue = nil
		sw.mu.Unlock()
		for _, e := range batch {
			if err := sw.write(e); err != nil {
				sw.mu.Lock()
				sw.broken, sw.queue = true, nil
				sw.mu.Unlock()
				return
			}
		}
		sw.mu.Lock()
		ended, empty := sw.ended, len(sw.queue) == 0
		sw.mu.Unlock()
		if ended && empty {
			return
		}
		if !empty {
			select { // more came while writing
			case sw.wake <- struct{}{}:
			default:
			}
		}
	}
}

// write writes one event and flushes it, within the write timeout.
func (sw *sseWriter) write(e sseEvent) error {
	data := e.data
	if e.text != nil {
		data = map[string]string{"text": e.text.String()}
	}
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	sw.rc.SetWriteDeadline(time.Now().Add(sw.timeout))
	if _, err := fmt.Fprintf(sw.w, "event: %s\ndata: %s\n\n", e.name, b); err != nil {
		return err
	}
	return sw.rc.Flush()
}

// decodeStrict decodes one JSON object into v: no unknown field, nothing
// after it.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("the body holds more than one JSON value")
	}
	return nil
}

// waitingOrNoAnswer answers a run that ended waiting for input (202, and
// the run is kept for its input) or whose answer node failed (502).
func (s *server) waitingOrNoAnswer(resp *runResponse, res *executor.Result, runErr error, question string) (int, bool) {
	if res == nil {
		return 0, false
	}
	if errors.Is(runErr, executor.ErrInterrupted) && len(res.Questions) > 0 {
		resp.Status, resp.Waiting = "waiting", res.Questions
		s.waiting.add(resp.RunID, waitingRun{question: question, questions: res.Questions, since: time.Now()}, s.opts.idleTimeout)
		return http.StatusAccepted, true
	}
	if nr, ok := res.Node("answer"); ok && resp.Answer == nil && nr.Status != executor.Succeeded && nr.Status != executor.Skipped && nr.Err != nil {
		resp.Error = nr.Err.Error()
		s.runsFail.Add(1)
		return http.StatusBadGateway, true
	}
	return 0, false
}
