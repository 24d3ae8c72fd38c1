package remote

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of the Layout fields.
const (
	DefaultPrefix        = "cemaf"
	DefaultAckWait       = 30 * time.Second
	DefaultMaxDeliver    = 5
	DefaultMaxAckPending = 1024
	DefaultResultTTL     = 24 * time.Hour
	DefaultStaleAfter    = 10 * time.Second
	DefaultDuplicates    = 2 * time.Minute
	DefaultAPITimeout    = 15 * time.Second
)

// Layout names and configures the JetStream resources a fleet shares: the
// task stream, its consumers, the results and fleet key-value buckets and
// the object store for large values. Every coordinator and worker of one
// fleet must use the same Layout: the last one to start sets the server's
// configuration. The zero value means the defaults.
type Layout struct {
	// Prefix starts every subject and names every stream and bucket
	// (upper-cased), so that several fleets can share a server. 1 to 32
	// characters among a-z, 0-9, '_' and '-'. Default "cemaf".
	Prefix string
	// AckWait is how long a worker may hold a task without acknowledging
	// it (workers send in-progress acknowledgements every AckWait/3 while
	// the task runs) before JetStream delivers it again, to another
	// worker. Default 30s.
	AckWait time.Duration
	// MaxDeliver is how many times a task is delivered before it stops
	// with a *DeliveryError. Default 5.
	MaxDeliver int
	// MaxAckPending bounds the tasks of one capability and priority band
	// delivered and not yet acknowledged, over all workers. Default 1024.
	MaxAckPending int
	// ResultTTL is how long results, failure records and large values are
	// kept; it bounds how late an interrupted coordinator can resume and
	// still find what workers finished. Default 24h.
	ResultTTL time.Duration
	// StaleAfter drops a worker from the fleet view when no heartbeat
	// came from it for that long. Default 10s; workers send one every
	// StaleAfter/4.
	StaleAfter time.Duration
	// Duplicates is the window in which a task published twice with the
	// same ID (a resumed coordinator, a publish retried after a
	// reconnect) is stored once. Default 2m.
	Duplicates time.Duration
	// Replicas is the number of copies of every stream in a clustered
	// server (1 to 5). Default 1.
	Replicas int
	// APITimeout bounds each JetStream API request (creating the stream,
	// the buckets and the consumers, reading a stored message) whose
	// context has no deadline of its own. A server writing its store to an
	// SD card that is busy with other writes can take seconds to create a
	// stream. It is the client's own: members of a fleet may differ in it.
	// Default 15s.
	APITimeout time.Duration
	// Domain is the JetStream domain that holds the fleet's streams, for
	// clients connected to a leaf node whose own JetStream has another
	// domain (see docs/scale-out.md). Empty means the server's own.
	Domain string
}

func (l Layout) withDefaults() (Layout, error) {
	l.Prefix = cmp.Or(l.Prefix, DefaultPrefix)
	if err := checkPrefix(l.Prefix); err != nil {
		return l, err
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"AckWait", &l.AckWait, DefaultAckWait}, {"ResultTTL", &l.ResultTTL, DefaultResultTTL},
		{"StaleAfter", &l.StaleAfter, DefaultStaleAfter}, {"Duplicates", &l.Duplicates, DefaultDuplicates},
		{"APITimeout", &l.APITimeout, DefaultAPITimeout}} {
		if *d.v < 0 {
			return l, fmt.Errorf("remote: Layout.%s = %v: must be ≥ 0 (0 = %v)", d.name, *d.v, d.def)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if l.Domain != "" {
		if err := checkToken("Layout.Domain", l.Domain); err != nil {
			return l, fmt.Errorf("remote: %w", err)
		}
	}
	if l.AckWait < 10*time.Millisecond {
		return l, fmt.Errorf("remote: Layout.AckWait = %v: must be ≥ 10ms", l.AckWait)
	}
	if l.Duplicates > l.ResultTTL {
		return l, fmt.Errorf("remote: Layout.Duplicates = %v: must be ≤ ResultTTL (%v)", l.Duplicates, l.ResultTTL)
	}
	for _, n := range []struct {
		name    string
		v       *int
		def, hi int
	}{{"MaxDeliver", &l.MaxDeliver, DefaultMaxDeliver, 1000}, {"MaxAckPending", &l.MaxAckPending, DefaultMaxAckPending, 1 << 20},
		{"Replicas", &l.Replicas, 1, 5}} {
		if *n.v < 0 || *n.v > n.hi {
			return l, fmt.Errorf("remote: Layout.%s = %d: must be in [0, %d] (0 = %d)", n.name, *n.v, n.hi, n.def)
		}
		if *n.v == 0 {
			*n.v = n.def
		}
	}
	return l, nil
}

func checkPrefix(p string) error {
	ok := len(p) > 0 && len(p) <= 32
	for i := 0; ok && i < len(p); i++ {
		c := p[i]
		ok = c == '_' || c == '-' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z')
	}
	if !ok {
		return fmt.Errorf("remote: Layout.Prefix = %q: must be 1 to 32 characters among a-z, 0-9, '_' and '-'", p)
	}
	return nil
}

// Names of the resources.
func (l *Layout) streamName() string  { return strings.ToUpper(l.Prefix) + "_TASKS" }
func (l *Layout) resultsName() string { return strings.ToUpper(l.Prefix) + "_RESULTS" }
func (l *Layout) fleetName() string   { return strings.ToUpper(l.Prefix) + "_FLEET" }
func (l *Layout) blobsName() string   { return strings.ToUpper(l.Prefix) + "_BLOBS" }

func (l *Layout) taskSubject(capability string, band int) string {
	return l.Prefix + ".task." + capability + "." + bandNames[band]
}
func (l *Layout) bellSubject(capability string) string   { return l.Prefix + ".bell." + capability }
func (l *Layout) cancelSubject(capability string) string { return l.Prefix + ".cancel." + capability }
func (l *Layout) replySubject(coordinator string) string { return l.Prefix + ".reply." + coordinator }
func consumerName(capability string, band int) string    { return capability + "_" + bandNames[band] }

// maxDeliveriesAdvisory is the subject on which the server announces a task
// that reached MaxDeliver.
func (l *Layout) maxDeliveriesAdvisory() string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + l.streamName() + ".*"
}

// Keys of the results bucket. Run and node IDs are arbitrary strings, so
// they are base64url-encoded into key tokens.
func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func okKey(run, node string) string { return "ok." + enc(run) + "." + enc(node) }
func failKey(run, node string, attempt int) string {
	return "fail." + enc(run) + "." + enc(node) + "." + strconv.Itoa(attempt)
}
func lastKey(run, node string, attempt int) string {
	return "last." + enc(run) + "." + enc(node) + "." + strconv.Itoa(attempt)
}
func badKey(seq uint64) string { return "bad." + strconv.FormatUint(seq, 10) }
func peerKey(id string) string { return "w." + enc(id) }

// randomID returns 16 random hex digits.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func taskID(run, node string, attempt int) string {
	return run + "/" + node + "/" + strconv.Itoa(attempt)
}

// resources are the JetStream handles a coordinator or worker uses.
type resources struct {
	lay        Layout
	nc         *nats.Conn
	js         jetstream.JetStream
	stream     jetstream.Stream
	results    jetstream.KeyValue
	fleet      jetstream.KeyValue
	blobs      jetstream.ObjectStore
	blobStream jetstream.Stream // the object store's stream (deleteObject)
	resStream  jetstream.Stream // the results bucket's stream (Forget)
	maxPayload int64
	url        string // the server connected to at start, credentials redacted
}

// openResources creates (or updates) the fleet's stream and buckets.
func openResources(ctx context.Context, nc *nats.Conn, lay Layout) (*resources, error) {
	if nc == nil {
		return nil, fmt.Errorf("remote: nil NATS connection")
	}
	var js jetstream.JetStream
	var err error
	timeout := jetstream.WithDefaultTimeout(lay.APITimeout)
	if lay.Domain != "" {
		js, err = jetstream.NewWithDomain(nc, lay.Domain, timeout)
	} else {
		js, err = jetstream.New(nc, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("remote: JetStream on %s: %w", nc.ConnectedUrlRedacted(), err)
	}
	r := &resources{lay: lay, nc: nc, js: js, maxPayload: nc.MaxPayload(), url: nc.ConnectedUrlRedacted()}
	where := func(what, name string, err error) error {
		return fmt.Errorf("remote: create %s %s on %s: %w", what, name, nc.ConnectedUrlRedacted(), err)
	}
	want := jetstream.StreamConfig{
		Name:        lay.streamName(),
		Description: "cemaf remote tasks (work queue)",
		Subjects:    []string{lay.Prefix + ".task.>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    lay.Replicas,
		MaxAge:      lay.ResultTTL,
		Duplicates:  lay.Duplicates,
	}
	// Update only what differs: every worker and coordinator opens these
	// at start, and a needless update races the server's consumer
	// creation.
	if r.stream, err = js.Stream(ctx, want.Name); err == nil {
		have := r.stream.CachedInfo().Config
		if have.MaxAge != want.MaxAge || have.Duplicates != want.Duplicates || have.Replicas != want.Replicas {
			r.stream, err = js.UpdateStream(ctx, want)
		}
	} else if errors.Is(err, jetstream.ErrStreamNotFound) {
		r.stream, err = js.CreateOrUpdateStream(ctx, want)
	}
	if err != nil {
		return nil, where("stream", want.Name, err)
	}
	kv := func(cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
		b, err := js.KeyValue(ctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			b, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		}
		if err != nil {
			return nil, where("key-value bucket", cfg.Bucket, err)
		}
		return b, nil
	}
	if r.results, err = kv(jetstream.KeyValueConfig{
		Bucket: lay.resultsName(), Description: "cemaf remote results, first write wins",
		TTL: lay.ResultTTL, Storage: jetstream.FileStorage, Replicas: lay.Replicas,
	}); err != nil {
		return nil, err
	}
	if r.fleet, err = kv(jetstream.KeyValueConfig{
		Bucket: lay.fleetName(), Description: "cemaf worker heartbeats",
		TTL: 2 * lay.StaleAfter, Storage: jetstream.MemoryStorage, Replicas: lay.Replicas,
	}); err != nil {
		return nil, err
	}
	r.blobs, err = js.ObjectStore(ctx, lay.blobsName())
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		r.blobs, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: lay.blobsName(), Description: "cemaf remote values larger than a message",
			TTL: lay.ResultTTL, Storage: jetstream.FileStorage, Replicas: lay.Replicas,
		})
	}
	if err != nil {
		return nil, where("object store", lay.blobsName(), err)
	}
	if r.blobStream, err = js.Stream(ctx, "OBJ_"+lay.blobsName()); err != nil {
		return nil, where("object store", lay.blobsName(), err)
	}
	if r.resStream, err = js.Stream(ctx, "KV_"+lay.resultsName()); err != nil {
		return nil, where("key-value bucket", lay.resultsName(), err)
	}
	return r, nil
}

// consumer creates (or updates) the durable pull consumer of a capability's
// band. All workers of the capability share it: JetStream hands each task to
// one of them.
func (r *resources) consumer(ctx context.Context, capability string, band int) (jetstream.Consumer, error) {
	name := consumerName(capability, band)
	want := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "cemaf workers of " + capability + ", " + bandNames[band] + " priority",
		FilterSubject: r.lay.taskSubject(capability, band),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       r.lay.AckWait,
		MaxDeliver:    r.lay.MaxDeliver,
		MaxAckPending: r.lay.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      r.lay.Replicas,
	}
	c, err := r.js.Consumer(ctx, r.lay.streamName(), name)
	if err == nil {
		have := c.CachedInfo().Config
		if have.AckWait != want.AckWait || have.MaxDeliver != want.MaxDeliver || have.MaxAckPending != want.MaxAckPending {
			c, err = r.js.CreateOrUpdateConsumer(ctx, r.lay.streamName(), want)
		}
	} else if errors.Is(err, jetstream.ErrConsumerNotFound) {
		c, err = r.js.CreateOrUpdateConsumer(ctx, r.lay.streamName(), want)
	}
	if err != nil {
		return nil, fmt.Errorf("remote: create consumer %s on %s: %w", name, r.nc.ConnectedUrlRedacted(), err)
	}
	return c, nil
}
