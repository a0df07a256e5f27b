// Package testserver starts wsd in-process for tests, on a free loopback
// port, and shuts it down when the test ends (nats-server keeps its
// test.RunServer apart from its in-package helpers the same way). It lives
// apart from wstest because it imports server: wstest imports nothing of
// wsd, so codec, poller and session tests can use it without a cycle.
package testserver

import (
	"context"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/server"
)

// Start runs wsd in-process with cfg (on 127.0.0.1:0 unless cfg.Addr is
// set) and shuts it down when the test ends.
func Start(t testing.TB, cfg server.Config) *server.Server {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	srv, err := server.Start(cfg)
	if err != nil {
		t.Fatalf("start wsd: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv
}
