package hub

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// Defaults of the Options fields.
const (
	DefaultHost           = "127.0.0.1"
	DefaultPort           = 4222
	DefaultMaxConnections = 64
	DefaultMaxPayload     = 1 << 20
	// RandomPort asks for a free port (tests); ClientURL tells which.
	RandomPort = -1
)

// Options configures an embedded server. StoreDir is required; the zero
// value of every other field means its default.
type Options struct {
	// StoreDir is the directory JetStream keeps its streams in (file
	// storage: tasks and results survive a restart). Required.
	StoreDir string
	// Host is the address clients connect to. Default 127.0.0.1
	// (loopback only); "0.0.0.0" listens on every interface.
	Host string
	// Port is the client port. 0 means 4222; RandomPort a free one.
	Port int
	// ServerName names the server in a cluster or leaf topology; empty
	// means a generated one.
	ServerName string
	// MaxConnections bounds the clients the server accepts at once; the
	// next one is refused ("maximum connections exceeded"). Default 64.
	MaxConnections int
	// MaxPayload is the largest message in bytes (values above it travel
	// through the object store). Default 1 MiB; at most 64 MiB.
	MaxPayload int32
	// User and Password, or Token, require clients to authenticate.
	User, Password, Token string
	// NKeys lists the public user NKeys ("U…") allowed to connect; a client
	// proves it holds one by signing the server's challenge with its seed
	// (remote.ConnectOptions.NKeySeedFile).
	NKeys []string
	// TLS, if set, makes clients connect with TLS (and, with ClientCAs
	// and ClientAuth set, verifies their certificates).
	TLS *tls.Config
	// JetStreamDomain isolates this server's JetStream from the one of
	// the hub it connects to as a leaf: each device keeps its own
	// queue. Empty means none.
	JetStreamDomain string
	// MaxStoreBytes bounds JetStream's file storage; 0 means the
	// server's default (a share of the disk).
	MaxStoreBytes int64
	// LeafPort, if not 0, accepts leaf-node connections from devices on
	// that port (1 to 65535): this server is a hub.
	LeafPort int
	// Leaf, if set, lists hub URLs ("nats-leaf://hub:7422") this server
	// connects to as a leaf node, with LeafCredentials (a .creds file)
	// if the hub requires them.
	Leaf            []string
	LeafCredentials string
	// Logger receives the server's log at Info (notices), Warn and
	// Error; nil discards it.
	Logger *slog.Logger
}

// Hub is an embedded NATS server with JetStream. Its goroutines belong to
// the server and end when Close returns.
type Hub struct {
	srv      *server.Server
	host     string
	leafPort int
}

// Start starts an embedded server and waits until it accepts clients. It
// fails, naming the field or the address, on bad options or when the port
// is taken.
func Start(opts Options) (*Hub, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("hub: Options.StoreDir is empty: JetStream needs a directory")
	}
	if opts.MaxConnections < 0 {
		return nil, fmt.Errorf("hub: Options.MaxConnections = %d: must be ≥ 0 (0 = %d)", opts.MaxConnections, DefaultMaxConnections)
	}
	if opts.MaxPayload < 0 || opts.MaxPayload > 64<<20 {
		return nil, fmt.Errorf("hub: Options.MaxPayload = %d: must be in [0, %d] (0 = %d)", opts.MaxPayload, 64<<20, DefaultMaxPayload)
	}
	if opts.Port < RandomPort || opts.Port > 65535 {
		return nil, fmt.Errorf("hub: Options.Port = %d: must be in [-1, 65535]", opts.Port)
	}
	for i, k := range opts.NKeys {
		if !nkeys.IsValidPublicUserKey(k) {
			return nil, fmt.Errorf("hub: Options.NKeys[%d] = %q: not a public user NKey (56 characters starting with U)", i, k)
		}
	}
	so := &server.Options{
		ServerName:            opts.ServerName,
		Host:                  cmp.Or(opts.Host, DefaultHost),
		Port:                  cmp.Or(opts.Port, DefaultPort),
		MaxConn:               cmp.Or(opts.MaxConnections, DefaultMaxConnections),
		MaxPayload:            cmp.Or(opts.MaxPayload, DefaultMaxPayload),
		JetStream:             true,
		StoreDir:              opts.StoreDir,
		JetStreamDomain:       opts.JetStreamDomain,
		JetStreamMaxStore:     opts.MaxStoreBytes,
		Username:              opts.User,
		Password:              opts.Password,
		Authorization:         opts.Token,
		TLSConfig:             opts.TLS,
		NoSigs:                true,
		NoLog:                 opts.Logger == nil,
		DisableShortFirstPing: true,
	}
	for _, k := range opts.NKeys {
		so.Nkeys = append(so.Nkeys, &server.NkeyUser{Nkey: k})
	}
	if so.MaxPayload > 8<<20 {
		so.MaxPending = int64(so.MaxPayload) * 4
	}
	if opts.LeafPort < 0 || opts.LeafPort > 65535 {
		return nil, fmt.Errorf("hub: Options.LeafPort = %d: must be in [0, 65535]", opts.LeafPort)
	}
	if opts.LeafPort != 0 {
		so.LeafNode.Host = so.Host
		so.LeafNode.Port = opts.LeafPort
	}
	for _, u := range opts.Leaf {
		pu, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("hub: Options.Leaf: %q: %w", u, err)
		}
		so.LeafNode.Remotes = append(so.LeafNode.Remotes, &server.RemoteLeafOpts{URLs: []*url.URL{pu}, Credentials: opts.LeafCredentials})
	}
	srv, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("hub: configure server on %s:%d: %w", so.Host, so.Port, err)
	}
	if opts.Logger != nil {
		srv.SetLoggerV2(slogLogger{opts.Logger}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("hub: server on %s:%d not ready within 10s (port taken, or store %s unusable)", so.Host, so.Port, opts.StoreDir)
	}
	return &Hub{srv: srv, host: so.Host, leafPort: opts.LeafPort}, nil
}

// ClientURL returns the URL clients connect to ("nats://127.0.0.1:4222").
func (h *Hub) ClientURL() string { return h.srv.ClientURL() }

// NumClients returns the number of connected clients.
func (h *Hub) NumClients() int { return h.srv.NumClients() }

// LeafURL returns the URL leaf nodes connect to, or "" if LeafPort was 0.
func (h *Hub) LeafURL() string {
	if h.leafPort <= 0 {
		return ""
	}
	return fmt.Sprintf("nats-leaf://%s:%d", h.host, h.leafPort)
}

// Close shuts the server down and waits until it has stopped. JetStream's
// data stays in StoreDir for the next Start. Later calls do nothing.
func (h *Hub) Close() error {
	h.srv.Shutdown()
	h.srv.WaitForShutdown()
	return nil
}

// slogLogger adapts a slog.Logger to the server's logger.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Noticef(format string, v ...any) { s.l.Info("hub: " + fmt.Sprintf(format, v...)) }
func (s slogLogger) Warnf(format string, v ...any)   { s.l.Warn("hub: " + fmt.Sprintf(format, v...)) }
func (s slogLogger) Fatalf(format string, v ...any)  { s.l.Error("hub: " + fmt.Sprintf(format, v...)) }
func (s slogLogger) Errorf(format string, v ...any)  { s.l.Error("hub: " + fmt.Sprintf(format, v...)) }
func (s slogLogger) Debugf(format string, v ...any)  { s.l.Debug("hub: " + fmt.Sprintf(format, v...)) }
func (s slogLogger) Tracef(format string, v ...any)  {}
