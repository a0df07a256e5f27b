// Package testserver starts wsd in-process for tests, on a free loopback
// port, with the same assembler the binary runs (server.New, App.Start),
// and shuts it down when the test ends (nats-server keeps its
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
// set) and shuts it down when the test ends. cfg's admin server, page,
// TLS files and cluster are off unless the test sets them; App returns
// the whole process when a test needs them.
func Start(t testing.TB, cfg server.Config) *server.Server {
	t.Helper()
	return App(t, cfg).Server()
}

// App is Start returning the whole process.
func App(t testing.TB, cfg server.Config) *server.App {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	app, err := server.New(cfg)
	if err != nil {
		t.Fatalf("build wsd: %v", err)
	}
	if err := app.Start(); err != nil {
		t.Fatalf("start wsd: %v", err)
	}
	t.Cleanup(func() {
		// A drain without delay or spread: what Shutdown did before, with
		// time for the peers' close frames.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		app.Server().Shutdown(ctx)
		app.Close()
	})
	return app
}
