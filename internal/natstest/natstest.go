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

// StartJetStream is Start with JetStream enabled, its file store in a
// directory of the test's own (removed when the test ends) unless
// opts.StoreDir names one (a restart on the same store), and its limits
// small and explicit: nats-server otherwise takes 75% of the RAM and of
// the free disk.
func StartJetStream(t testing.TB, opts *natsserver.Options) *natsserver.Server {
	t.Helper()
	if opts == nil {
		opts = &natsserver.Options{}
	}
	opts.JetStream = true
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	if opts.JetStreamMaxMemory == 0 {
		opts.JetStreamMaxMemory = 64 << 20
	}
	if opts.JetStreamMaxStore == 0 {
		opts.JetStreamMaxStore = 256 << 20
	}
	ns := Start(t, opts)
	if !ns.JetStreamEnabled() {
		t.Fatal("nats-server: JetStream not enabled")
	}
	return ns
}
