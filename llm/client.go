package llm

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/cemaf-go/cemaf/dag"
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
	if err := checkHeaderValue("Options.APIKey", opts.APIKey, 4096); err != nil {
		return nil, err
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
	mode, err := c.currentMode()
	p := c.ProfileFor(mode)
	rec := Record{Model: p.Model, Mode: mode, Streamed: req.OnToken != nil, IdempotencyKey: idempotencyKey(ctx, req.IdempotencyKey)}
	var resp Response
	if err == nil {
		resp, err = c.chat(ctx, req, p, &rec, start)
	}
	rec.Latency = c.clock.Now().Sub(start)
	if err != nil {
		rec.Err = err.Error()
	}
	c.stats.finish(&rec, err != nil)
	resp.Record = rec
	return resp, err
}

// currentMode reads Options.Mode, turning a panic into a *PanicError.
func (c *Client) currentMode() (mode string, err error) {
	if c.mode == nil {
		return defaultMode, nil
	}
	err = protect("Options.Mode", func() error {
		mode = cmp.Or(c.mode(), defaultMode)
		return nil
	})
	if err != nil {
		return defaultMode, dag.Permanent(err)
	}
	return mode, nil
}

// waitGuard waits on Options.Guard, turning a panic into a *PanicError.
func (c *Client) waitGuard(ctx context.Context) error {
	if c.guard == nil {
		return nil
	}
	if err := protect("Guard.Wait", func() error { return c.guard.Wait(ctx) }); err != nil {
		return fmt.Errorf("llm: %s: waiting for the resource guard: %w", c.shown, err)
	}
	return nil
}

// protect runs fn, turning a panic into a *PanicError.
func protect(where string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Where: where, Value: r, Stack: debug.Stack()}
		}
	}()
	return fn()
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

	// The first wait on the guard comes before the timeout starts: a pause
	// while the device cools down is no reason to fail the call.
	if err := c.waitGuard(ctx); err != nil {
		return Response{}, err
	}
	timeout := cmp.Or(req.Timeout, c.timeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("call timeout of %v reached: %w", timeout, context.DeadlineExceeded))
	defer cancel()
	return c.attempts(ctx, body, req.OnToken, rec)
}
