package wstest

import (
	"context"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/server"
)

// StartServer runs wsd in-process on a free loopback port (like NATS's
// RunServer) and shuts it down when the test ends.
func StartServer(t testing.TB, cfg server.Config) *server.Server {
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
