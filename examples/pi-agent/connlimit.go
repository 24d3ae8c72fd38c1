package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cemaf-go/cemaf/limit"
)

// connLimiter is a net.Listener that keeps at most max connections open, so
// that the service never runs out of file descriptors (and /healthz keeps
// answering) however many clients connect and stay. When a connection
// arrives at the limit, the oldest connection that is idle (a keep-alive
// connection between requests, else one that has sent nothing yet) is
// closed to make room; when every connection is busy with a request, the
// new one is refused: it is sent a 503 with a limit error of kind
// "connections" and closed.
//
// The http.Server must report connection states to track (its ConnState
// hook). connLimiter starts no goroutine; it is safe for concurrent use.
type connLimiter struct {
	net.Listener
	max int

	// mu guards open and seq.
	mu   sync.Mutex
	open map[*limitedConn]struct{}
	seq  uint64

	refused atomic.Int64
	evicted atomic.Int64
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, open: map[*limitedConn]struct{}{}}
}

// limitedConn is a connection the limiter counts until it is closed.
type limitedConn struct {
	net.Conn
	l   *connLimiter
	seq uint64 // accept order

	// state is the http.ConnState the server last reported (guarded by
	// l.mu).
	state http.ConnState
}

// Close closes the connection and frees its place. It is idempotent.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	delete(c.l.open, c)
	c.l.mu.Unlock()
	return err
}

// Accept returns the next connection within the limit.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := l.admit(c); lc != nil {
			return lc, nil
		}
		l.refused.Add(1)
		refuseConn(c, l.max)
	}
}

// admit counts c in, closing the oldest idle connection if the limit is
// reached, or returns nil when every open connection is busy.
func (l *connLimiter) admit(c net.Conn) *limitedConn {
	l.mu.Lock()
	if len(l.open) >= l.max {
		victim := l.idlestLocked()
		if victim == nil {
			l.mu.Unlock()
			return nil
		}
		// Free its place now, so that the new connection never waits for
		// the server to notice the close.
		delete(l.open, victim)
		l.mu.Unlock()
		victim.Conn.Close()
		l.evicted.Add(1)
		l.mu.Lock()
	}
	l.seq++
	lc := &limitedConn{Conn: c, l: l, seq: l.seq, state: http.StateNew}
	l.open[lc] = struct{}{}
	l.mu.Unlock()
	return lc
}

// idlestLocked returns the oldest idle keep-alive connection, else the
// oldest connection that has not sent a request yet, else nil. l.mu must
// be held.
func (l *connLimiter) idlestLocked() *limitedConn {
	var idle, fresh *limitedConn
	for c := range l.open {
		switch c.state {
		case http.StateIdle:
			if idle == nil || c.seq < idle.seq {
				idle = c
			}
		case http.StateNew:
			if fresh == nil || c.seq < fresh.seq {
				fresh = c
			}
		}
	}
	if idle != nil {
		return idle
	}
	return fresh
}

// track is the http.Server's ConnState hook.
func (l *connLimiter) track(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lc.state = st
	if st == http.StateClosed || st == http.StateHijacked {
		delete(l.open, lc)
	}
}

// Open returns the number of connections open.
func (l *connLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open)
}

// refuseConn answers a connection over the limit with a 503 and closes it.
// Its send buffer is empty, so the write does not wait; the deadline is a
// safeguard.
func refuseConn(c net.Conn, max int) {
	body, _ := json.Marshal(apiError{Error: fmt.Sprintf("all %d connections are busy with requests", max),
		Limit: &limit.Error{Kind: limit.Connections, Current: float64(max + 1), Limit: float64(max), Detail: "connections open"}})
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s\n", len(body)+1, body)
	c.Close()
}
