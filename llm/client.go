package llm

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/dag"
	"github.com/cemaf-go/cemaf/executor"
)

// Throttler paces calls and measures what they cost; *throttle.CPUThrottler
// is one. Do runs fn or returns an error without running it.
type Throttler interface {
	Do(ctx context.Context, fn func(ctx context.Context) error) error
}

// Guard blocks while the device is in danger (hot, short of memory or
// disk) and returns when a call may proceed, or an error when ctx ends;
// the guards of packages throttle, thermal and disk are ones.
type Guard interface {
	Wait(ctx context.Context) error
}

// Options configures a Client. The zero value of every field but
// Profile.Model means its default.
type Options struct {
	// APIKey is sent as a bearer token when not empty. It never appears in
	// errors or logs.
	APIKey string
	// Profile is what calls use in every mode that Profiles does not name;
	// its Model is required.
	Profile Profile
	// Profiles holds the profile of each mode that differs, by mode name
	// ("normal", "low_memory", "high_temp", "low_disk"); zero fields take
	// Profile's values. For example a smaller model, shorter answers and
	// one call at a time while the device is hot:
	//
	//	Profiles: map[string]llm.Profile{"high_temp": {Model: "qwen2.5:0.5b", MaxTokens: 128, MaxConcurrent: 1}}
	Profiles map[string]Profile
	// Mode returns the device mode in force, read at the start of each
	// call; nil or "" means "normal". With an adaptive executor:
	//
	//	Mode: func() string { return string(ax.CurrentMode()) }
	Mode func() string
	// MaxAttempts bounds the HTTP requests of one call, retries included.
	// Default 3.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry, doubled before
	// each next one up to MaxBackoff; a Retry-After header replaces it.
	// Defaults 500ms and 10s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// MaxRetryAfter is the longest Retry-After the client waits for: a
	// server asking for more gets no retry and the call fails at once with
	// its *StatusError. Default 60s.
	MaxRetryAfter time.Duration
	// Timeout is the default Request.Timeout: the bound of a call once it
	// has a slot, attempts and waits between them included. Default 5m.
	Timeout time.Duration
	// MaxResponseBytes bounds a whole answer's body and each line of a
	// streamed one. Default 4 MiB.
	MaxResponseBytes int
	// HTTPClient sends the requests. Default: a client of its own with a
	// 5 s dial timeout and up to 4 idle connections per host.
	HTTPClient *http.Client
	// Throttler, when set, runs every attempt (*throttle.CPUThrottler).
	Throttler Throttler
	// Guard, when set, is waited on before every attempt
	// (throttle.CompositeGuard, a thermal guard, ...).
	Guard Guard
	// Clock is the time source of records and of the waits between
	// attempts. Default the time package.
	Clock Clock
	// Logger receives a Debug record per retry. Nil discards.
	Logger *slog.Logger
}

// Client calls one OpenAI-compatible chat-completions endpoint. It starts
// no goroutine of its own (the HTTP client keeps connections, which
// CloseIdleConnections closes) and is safe for concurrent use.
type Client struct {
	endpoint string // the chat-completions URL
	shown    string // endpoint with any password redacted
	apiKey   string
	http     *http.Client

	base     Profile
	profiles map[string]Profile
	slots    map[string]*slots // by model; the map is not changed after New
	mode     func() string

	maxAttempts                               int
	initialBackoff, maxBackoff, maxRetryAfter time.Duration
	timeout                                   time.Duration
	maxBody                                   int
	throttler                                 Throttler
	guard                                     Guard
	clock                                     Clock
	log                                       *slog.Logger

	stats counters
}

// New returns a client of the endpoint at baseURL: a server's root
// ("http://127.0.0.1:8080"), its "/v1" root, or the full
// ".../chat/completions" URL. It checks opts and fails with an error naming
// the offending field.
func New(baseURL string, opts Options) (*Client, error) {
	endpoint, shown, err := endpointURL(baseURL)
	if err != nil {
		return nil, err
	}
	base, profiles, err := resolveProfiles(opts.Profile, opts.Profiles)
	if err != nil {
		return nil, err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"InitialBackoff", opts.InitialBackoff}, {"MaxBackoff", opts.MaxBackoff},
		{"MaxRetryAfter", opts.MaxRetryAfter}, {"Timeout", opts.Timeout}} {
		if d.v < 0 {
			return nil, fmt.Errorf("llm: Options.%s = %v: must be ≥ 0 (0 for the default)", d.name, d.v)
		}
	}
	if opts.MaxAttempts < 0 || opts.MaxAttempts > 100 {
		return nil, fmt.Errorf("llm: Options.MaxAttempts = %d: must be in [0, 100] (0 for 3)", opts.MaxAttempts)
	}
	if opts.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("llm: Options.MaxResponseBytes = %d: must be ≥ 0 (0 for 4 MiB)", opts.MaxResponseBytes)
	}
	c := &Client{
		endpoint:       endpoint,
		shown:          shown,
		apiKey:         opts.APIKey,
		http:           opts.HTTPClient,
		base:           base,
		profiles:       profiles,
		slots:          map[string]*slots{},
		mode:           opts.Mode,
		maxAttempts:    cmp.Or(opts.MaxAttempts, 3),
		initialBackoff: cmp.Or(opts.InitialBackoff, 500*time.Millisecond),
		maxBackoff:     cmp.Or(opts.MaxBackoff, 10*time.Second),
		maxRetryAfter:  cmp.Or(opts.MaxRetryAfter, time.Minute),
		timeout:        cmp.Or(opts.Timeout, 5*time.Minute),
		maxBody:        cmp.Or(opts.MaxResponseBytes, 4<<20),
		throttler:      opts.Throttler,
		guard:          opts.Guard,
		clock:          opts.Clock,
		log:            opts.Logger,
	}
	if c.http == nil {
		c.http = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for _, p := range profiles {
		if c.slots[p.Model] == nil {
			c.slots[p.Model] = &slots{}
		}
	}
	return c, nil
}

// endpointURL returns the chat-completions URL of base, and that URL for
// messages (any password redacted).
func endpointURL(base string) (endpoint, shown string, err error) {
	u, err := url.Parse(strings.TrimSpace(base))
	if err != nil {
		return "", "", fmt.Errorf("llm: base URL: must be http:// or https:// with a host: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", "", fmt.Errorf("llm: base URL %q: must be http:// or https:// with a host", u.Redacted())
	}
	p := strings.TrimRight(u.Path, "/")
	switch {
	case strings.HasSuffix(p, "/chat/completions"):
	case strings.HasSuffix(p, "/v1"):
		p += "/chat/completions"
	default:
		p += "/v1/chat/completions"
	}
	u.Path, u.RawPath = p, ""
	return u.String(), u.Redacted(), nil
}

// URL returns the chat-completions URL the client calls, any password
// redacted.
func (c *Client) URL() string { return c.shown }

// ProfileFor returns the profile calls use in mode (the base profile for a
// mode Options.Profiles does not name), defaults applied.
func (c *Client) ProfileFor(mode string) Profile {
	if p, ok := c.profiles[mode]; ok {
		return p
	}
	return c.base
}

// Stats returns the client's counters. It does not block.
func (c *Client) Stats() Stats { return c.stats.snapshot() }

// CloseIdleConnections closes the connections the client keeps open
// between calls (and their goroutines), as when the device unloads idle
// resources. Later calls open new ones.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Chat makes one chat-completions call with the profile of the mode in
// force: it waits for a slot of the profile's model (by req.Priority), then
// sends the request, through Options.Guard and Options.Throttler, retrying
// connection errors, cut streams and statuses 408, 425, 429 and 5xx with
// backoff or as Retry-After asks, with the same Idempotency-Key every time.
// With req.OnToken set the answer is streamed.
//
// It blocks until the answer is complete, ctx ends or the call's timeout
// passes. The Response's Record is filled in on failure too. Errors are
// *StatusError, *TransportError, *ResponseError or *PanicError (matchable
// with errors.As), a request Chat refuses, or ctx's; those that no retry
// can mend (a bad request, a 400, a malformed answer) are wrapped with
// dag.Permanent so that an executor node does not retry them either.
func (c *Client) Chat(ctx context.Context, req Request) (Response, error) {
	start := c.clock.Now()
	c.stats.calls.Add(1)
	mode := defaultMode
	if c.mode != nil {
		mode = cmp.Or(c.mode(), defaultMode)
	}
	p := c.ProfileFor(mode)
	rec := Record{Model: p.Model, Mode: mode, Streamed: req.OnToken != nil, IdempotencyKey: idempotencyKey(ctx, req.IdempotencyKey)}
	resp, err := c.chat(ctx, req, p, &rec, start)
	rec.Latency = c.clock.Now().Sub(start)
	if err != nil {
		rec.Err = err.Error()
	}
	c.stats.finish(&rec, err != nil)
	resp.Record = rec
	return resp, err
}

func (c *Client) chat(ctx context.Context, req Request, p Profile, rec *Record, start time.Time) (Response, error) {
	if err := validateRequest(req); err != nil {
		return Response{}, dag.Permanent(err)
	}
	maxTokens := p.MaxTokens
	if req.MaxTokens > 0 && (maxTokens == 0 || req.MaxTokens < maxTokens) {
		maxTokens = req.MaxTokens
	}
	temp := p.Temperature
	if req.Temperature != nil {
		temp = req.Temperature
	}
	body, err := encodeRequest(p.Model, req.Messages, req.Tools, maxTokens, temp, req.OnToken != nil)
	if err != nil {
		return Response{}, dag.Permanent(fmt.Errorf("llm: encoding the request: %w", err))
	}

	sl := c.slots[p.Model]
	queued := false
	err = sl.acquire(ctx, req.Priority, p.MaxConcurrent, func() { queued = true; c.stats.waiting.Add(1) })
	if queued {
		c.stats.waiting.Add(-1)
	}
	rec.Queued = c.clock.Now().Sub(start)
	if err != nil {
		return Response{}, fmt.Errorf("llm: waiting for a slot of model %q: %w", p.Model, err)
	}
	c.stats.inFlight.Add(1)
	defer func() {
		c.stats.inFlight.Add(-1)
		sl.release()
	}()

	timeout := cmp.Or(req.Timeout, c.timeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("call timeout of %v reached: %w", timeout, context.DeadlineExceeded))
	defer cancel()
	return c.attempts(ctx, body, req.OnToken, rec)
}

func validateRequest(req Request) error {
	if len(req.Messages) == 0 {
		return errors.New("llm: Request.Messages is empty")
	}
	for i, m := range req.Messages {
		switch m.Role {
		case RoleSystem, RoleUser, RoleAssistant, RoleTool:
		default:
			return fmt.Errorf("llm: Request.Messages[%d].Role = %q: must be system, user, assistant or tool", i, m.Role)
		}
	}
	switch {
	case req.MaxTokens < 0:
		return fmt.Errorf("llm: Request.MaxTokens = %d: must be ≥ 0", req.MaxTokens)
	case req.Timeout < 0:
		return fmt.Errorf("llm: Request.Timeout = %v: must be ≥ 0 (0 for the client's)", req.Timeout)
	}
	if req.Temperature != nil {
		return checkTemperature("Request.Temperature", *req.Temperature)
	}
	return nil
}

// idempotencyKey is the call's key: given, the executor node's, or random.
func idempotencyKey(ctx context.Context, given string) string {
	if given != "" {
		return given
	}
	if info, ok := executor.NodeInfoFrom(ctx); ok {
		return info.IdempotencyKey()
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "llm-" + hex.EncodeToString(b[:])
}

// attempts sends the request until an attempt succeeds, one fails for
// good, or the attempts, the time or ctx run out.
func (c *Client) attempts(ctx context.Context, body []byte, onToken func(Token), rec *Record) (Response, error) {
	for n := 1; ; n++ {
		if c.guard != nil {
			if err := c.guard.Wait(ctx); err != nil {
				return Response{}, fmt.Errorf("llm: %s: waiting for the resource guard: %w", c.shown, err)
			}
		}
		var (
			res Response
			ran bool
		)
		fn := func(ctx context.Context) error {
			ran = true
			rec.Attempts = n
			c.stats.attempts.Add(1)
			if n > 1 {
				c.stats.retries.Add(1)
			}
			var err error
			res, err = c.once(ctx, n, body, onToken, rec)
			return err
		}
		var err error
		if c.throttler != nil {
			err = c.throttler.Do(ctx, fn)
		} else {
			err = fn(ctx)
		}
		switch {
		case err == nil:
			return res, nil
		case !ran:
			return Response{}, fmt.Errorf("llm: %s: throttler: %w", c.shown, err)
		case !retryable(ctx, err):
			if ctx.Err() == nil {
				err = dag.Permanent(err)
			}
			return Response{}, attemptsNote(err, n)
		case n >= c.maxAttempts:
			return Response{}, attemptsNote(err, n)
		}
		wait := backoff(n, c.initialBackoff, c.maxBackoff)
		if ra := retryAfterOf(err); ra > 0 {
			if ra > c.maxRetryAfter {
				return Response{}, fmt.Errorf("%w (after %d attempt(s); not retried: the server asks to wait %v, more than MaxRetryAfter %v)", err, n, ra, c.maxRetryAfter)
			}
			wait = ra
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return Response{}, fmt.Errorf("%w (after %d attempt(s); the next one, in %v, would pass the deadline)", err, n, wait)
		}
		c.log.Debug("llm: retrying", "url", c.shown, "attempt", n+1, "wait", wait, "error", err)
		if serr := c.clock.Sleep(ctx, wait); serr != nil {
			return Response{}, fmt.Errorf("llm: %s: waiting %v to retry: %w (last attempt: %v)", c.shown, wait, serr, err)
		}
	}
}

// attemptsNote adds the number of attempts to a final error when there
// were retries.
func attemptsNote(err error, n int) error {
	if n == 1 {
		return err
	}
	return fmt.Errorf("%w (after %d attempts)", err, n)
}

// once sends one attempt and reads its answer.
func (c *Client) once(ctx context.Context, attempt int, body []byte, onToken func(Token), rec *Record) (Response, error) {
	t0 := c.clock.Now()
	// reqCtx lets a finished stream's last bytes be drained with a bound.
	reqCtx, cancelReq := context.WithCancel(ctx)
	defer cancelReq()
	hreq, err := http.NewRequestWithContext(reqCtx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return Response{}, &ResponseError{URL: c.shown, Err: err}
	}
	stream := onToken != nil
	hreq.Header.Set("Content-Type", "application/json")
	if stream {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	if c.apiKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	hreq.Header.Set("Idempotency-Key", rec.IdempotencyKey)
	hresp, err := c.http.Do(hreq)
	if err != nil {
		return Response{}, c.transportError(ctx, err)
	}
	defer hresp.Body.Close()
	if hresp.StatusCode < 200 || hresp.StatusCode > 299 {
		return Response{}, c.statusError(hresp)
	}
	var out streamResult
	if stream && !strings.HasPrefix(hresp.Header.Get("Content-Type"), "application/json") {
		out, err = c.readStream(ctx, hresp.Body, attempt, onToken, t0)
		if err == nil {
			drain(hresp.Body, cancelReq)
		}
	} else {
		out, err = c.readWhole(ctx, hresp.Body)
		if err == nil && stream && out.content != "" {
			// The server answered in one piece: one token.
			out.pieces = 1
			err = emit(onToken, Token{Text: out.content, Attempt: attempt})
		}
		out.ttft = c.clock.Now().Sub(t0)
	}
	if err != nil {
		return Response{}, err
	}
	c.stats.streamed.Add(uint64(out.pieces))
	rec.ServedModel = out.model
	rec.TimeToFirstToken = out.ttft
	if out.usage != nil {
		rec.Usage = Usage{PromptTokens: out.usage.PromptTokens, CompletionTokens: out.usage.CompletionTokens, TotalTokens: out.usage.TotalTokens}
		if rec.Usage.TotalTokens == 0 {
			rec.Usage.TotalTokens = rec.Usage.PromptTokens + rec.Usage.CompletionTokens
		}
	} else {
		args := 0
		for _, tc := range out.calls {
			args += len(tc.Arguments) + len(tc.Name)
		}
		in, outTok := (len(body)+3)/4, (len(out.content)+args+3)/4
		rec.Usage = Usage{PromptTokens: in, CompletionTokens: outTok, TotalTokens: in + outTok, Estimated: true}
	}
	return Response{
		Message:      Message{Role: RoleAssistant, Content: out.content, ToolCalls: out.calls},
		FinishReason: out.finish,
	}, nil
}

// drainBound bounds the wait for the end of a finished stream's body.
const drainBound = 50 * time.Millisecond

// drain reads what is left of a finished stream (the end of the chunked
// body, after [DONE]), so that the connection can serve the next call; a
// server that holds the stream open after [DONE] gets drainBound, then
// the request is cancelled and the connection closed.
func drain(body io.Reader, cancel context.CancelFunc) {
	t := time.AfterFunc(drainBound, cancel)
	_, _ = io.CopyN(io.Discard, body, 4<<10)
	t.Stop()
}

// transportError wraps a failure to send or read, with ctx's cause when ctx
// ended.
func (c *Client) transportError(ctx context.Context, err error) *TransportError {
	if ctx.Err() != nil {
		return &TransportError{URL: c.shown, Err: context.Cause(ctx)}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its message repeats the URL
	}
	return &TransportError{URL: c.shown, Err: err}
}

// statusError reads an excerpt of a failed answer.
func (c *Client) statusError(resp *http.Response) *StatusError {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // the rest is dropped with the connection
	e := &StatusError{URL: c.shown, Status: resp.StatusCode, Body: c.excerpt(string(raw))}
	if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), c.clock.Now()); ok {
		e.RetryAfter = d
	}
	return e
}

// excerpt returns at most excerptLen bytes of s, trimmed, without the API
// key.
func (c *Client) excerpt(s string) string {
	if c.apiKey != "" {
		s = strings.ReplaceAll(s, c.apiKey, "[redacted]")
	}
	s = strings.TrimSpace(s)
	if len(s) > excerptLen {
		s = strings.ToValidUTF8(s[:excerptLen], "") + "…"
	}
	return s
}
