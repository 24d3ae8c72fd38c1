package remote

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultURL is the server Connect uses when given none: loopback only.
const DefaultURL = "nats://127.0.0.1:4222"

// ConnectOptions configures Connect. The zero value connects without
// credentials, with a 2s connect timeout, reconnecting forever every 250ms.
// Credentials, NKeys and TLS are those of nats.go; set at most one of
// CredentialsFile, NKeySeedFile, User/Password and Token.
type ConnectOptions struct {
	// Name is the client name shown by the server's monitoring.
	Name string
	// CredentialsFile is a .creds file (user JWT and NKey seed), for
	// servers using decentralised JWT authentication.
	CredentialsFile string
	// NKeySeedFile is a file holding an NKey seed ("SU…"), for servers
	// that list users by NKey.
	NKeySeedFile string
	// User and Password authenticate with a user name and password.
	User, Password string
	// Token authenticates with a token.
	Token string
	// TLS, if set, is the TLS configuration of the connection (server
	// verification, client certificates). CAFile, CertFile and KeyFile
	// are the file-based alternative; either turns TLS on.
	TLS                       *tls.Config
	CAFile, CertFile, KeyFile string
	// ConnectTimeout bounds the first connection attempt. Default 2s.
	ConnectTimeout time.Duration
	// ReconnectWait is the delay between reconnection attempts once
	// connected. Default 250ms.
	ReconnectWait time.Duration
	// MaxReconnects bounds the reconnection attempts after a connection
	// loss; 0 means forever (a run pauses, it does not fail, while the
	// server is away).
	MaxReconnects int
	// Logger receives disconnection and reconnection messages. nil
	// discards them.
	Logger *slog.Logger
}

// Connect connects to the NATS server at url (DefaultURL if empty; a
// comma-separated list for a cluster). It fails, naming the URL, when the
// server cannot be reached or refuses the credentials; it does not retry
// the first connection. The caller owns the returned connection and closes
// it (after closing the Coordinators and Workers that use it).
func Connect(ctx context.Context, url string, opts ConnectOptions) (*nats.Conn, error) {
	url = cmp.Or(url, DefaultURL)
	if opts.ConnectTimeout < 0 || opts.ReconnectWait < 0 || opts.MaxReconnects < 0 {
		return nil, fmt.Errorf("remote: connect to %s: ConnectTimeout, ReconnectWait and MaxReconnects must be ≥ 0", url)
	}
	timeout := cmp.Or(opts.ConnectTimeout, 2*time.Second)
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("remote: connect to %s: %w", url, context.Cause(ctx))
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	no := []nats.Option{
		nats.Name(cmp.Or(opts.Name, "cemaf")),
		nats.Timeout(timeout),
		nats.ReconnectWait(cmp.Or(opts.ReconnectWait, 250*time.Millisecond)),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err == nil {
				return // the connection's owner closed it
			}
			logger.Warn("remote: disconnected from NATS", "url", url, "error", err)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			// Slow consumers drop doorbells and replies, which the
			// pollers make up for.
			logger.Debug("remote: NATS asynchronous error", "subject", subject, "error", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("remote: reconnected to NATS", "url", nc.ConnectedUrlRedacted())
		}),
	}
	if opts.MaxReconnects > 0 {
		no = append(no, nats.MaxReconnects(opts.MaxReconnects))
	}
	auth := 0
	if opts.CredentialsFile != "" {
		auth++
		no = append(no, nats.UserCredentials(opts.CredentialsFile))
	}
	if opts.NKeySeedFile != "" {
		auth++
		o, err := nats.NkeyOptionFromSeed(opts.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("remote: connect to %s: NKey seed file %s: %w", url, opts.NKeySeedFile, err)
		}
		no = append(no, o)
	}
	if opts.User != "" || opts.Password != "" {
		auth++
		no = append(no, nats.UserInfo(opts.User, opts.Password))
	}
	if opts.Token != "" {
		auth++
		no = append(no, nats.Token(opts.Token))
	}
	if auth > 1 {
		return nil, fmt.Errorf("remote: connect to %s: set at most one of CredentialsFile, NKeySeedFile, User/Password and Token", url)
	}
	if opts.TLS != nil {
		no = append(no, nats.Secure(opts.TLS))
	}
	if opts.CAFile != "" {
		no = append(no, nats.RootCAs(opts.CAFile))
	}
	if opts.CertFile != "" || opts.KeyFile != "" {
		no = append(no, nats.ClientCert(opts.CertFile, opts.KeyFile))
	}
	nc, err := nats.Connect(url, no...)
	if err != nil {
		return nil, fmt.Errorf("remote: connect to %s: %w", url, err)
	}
	return nc, nil
}
