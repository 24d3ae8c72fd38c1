// Package hub embeds a NATS server with JetStream in the process, for the
// remote package: in tests (on 127.0.0.1, a random port and a temporary
// store), on the device that is the hub of a small fleet, or on a device
// that is a leaf of a hub and keeps a local queue when the link drops.
//
// # Model
//
// Start configures and starts one server (client port, JetStream file store
// in StoreDir, a connection limit, max payload, optional user/password,
// token, NKeys or TLS, optional leaf-node listener or hub URLs) and returns once it
// accepts clients. The server's goroutines are its own; Close shuts it down
// and waits for them. Data in StoreDir survives a restart: a hub restarted
// on the same directory has the same queued tasks and recorded results.
//
// Loopback is the default: a hub that other devices reach must be given
// Host "0.0.0.0" (or an interface address) and should require credentials or
// TLS.
//
// # Caveats
//
// Embedding the server adds about 10 MB to a stripped arm64 binary (see
// BENCHMARKS.md); programs that only connect to a server need package remote
// alone. LeafPort cannot be RandomPort. Leaf nodes that keep their own queue
// need distinct JetStreamDomain values.
package hub
