package main

import "io"

// hubFlags are the flags of the hub command (hub_on.go, built with -tags
// hub).
type hubFlags struct {
	*cmdFlags
	listen   string
	store    string
	maxConns int
	leafPort int
}

func newHubFlags(stderr io.Writer) *hubFlags {
	f := &hubFlags{cmdFlags: newCmdFlags("hub", "Run the fleet's NATS server with JetStream in this process (pi-agent built with -tags hub): "+
		"workers, runs and services connect to it with --nats nats://HOST:PORT. SIGINT or SIGTERM stops it; queued tasks and results stay in --store.", stderr)}
	f.withStorage()
	f.withLog()
	f.ss.stringVar(&f.listen, "listen", "", "127.0.0.1:4222", "host:port (0.0.0.0 listens on every interface)", checkAddr,
		"client `address`; loopback by default")
	f.fs.StringVar(&f.store, "store", "", "JetStream `dir`ectory (default: nats under the storage directory)")
	f.ss.intVar(&f.maxConns, "max-conns", "", 64, 1, 1<<16, "most clients at once (`n`)")
	f.ss.intVar(&f.leafPort, "leaf-port", "", 0, 0, 65535, "accept leaf-node servers of other devices on this `port` (0: none)")
	return f
}
