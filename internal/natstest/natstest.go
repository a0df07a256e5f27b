// Package natstest starts an embedded nats-server for tests: the one
// starter cluster's and cmd/wsd's tests share. It is kept apart from
// internal/wstest so that wstest stays free of the NATS server dependency.
package natstest

import (
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// Start starts an embedded nats-server with opts (nil: the defaults) on
// loopback, quiet and without signal handlers, on a free port unless
// opts.Port is set (a restart on a known port), and shuts it down when the
// test ends.
func Start(t testing.TB, opts *natsserver.Options) *natsserver.Server {
	t.Helper()
	if opts == nil {
		opts = &natsserver.Options{}
	}
	opts.Host, opts.NoLog, opts.NoSigs = "127.0.0.1", true, true
	if opts.Port == 0 {
		opts.Port = -1 // nats-server's "pick a free port"
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}
