package llm

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// retryable reports whether a later attempt may succeed where err failed:
// connection errors, cut streams and statuses 408, 425, 429 and 5xx, while
// ctx lasts.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Temporary()
	}
	var te *TransportError
	return errors.As(err, &te)
}

// retryAfterOf returns the wait a *StatusError in err asked for.
func retryAfterOf(err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

// backoff is the wait after the n-th failed attempt (n ≥ 1): initial
// doubled n-1 times, at most max.
func backoff(n int, initial, max time.Duration) time.Duration {
	d := initial
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// maxRetryAfter bounds what parseRetryAfter returns, so that sums of waits
// cannot overflow.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After value: a number of seconds (decimals
// accepted) or an HTTP date, which gives the time left until then (0 for
// a date past). ok is false for an empty or malformed value, a negative,
// NaN or infinite number. The result is at most 24 h.
func parseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if c := v[0]; c >= '0' && c <= '9' || c == '.' {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(s) || math.IsInf(s, 0) || s < 0 {
			return 0, false
		}
		if s >= maxRetryAfter.Seconds() {
			return maxRetryAfter, true
		}
		return time.Duration(s * float64(time.Second)), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(0, t.Sub(now)), maxRetryAfter), true
}
