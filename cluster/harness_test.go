package cluster_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/internal/natstest"
	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

// box is one wsd with its bridge.
type box struct {
	srv *server.Server
	br  *cluster.Bridge
	id  string
}

func (b *box) addr() string      { return b.srv.Addr().String() }
func (b *box) hub() *session.Hub { return b.srv.Hub() }

func (b *box) sync(t testing.TB) {
	t.Helper()
	if err := b.br.Sync(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

type boxOpt func(*cluster.Config, *server.Config)

// startBox starts an in-process wsd bridged to the NATS at url.
func startBox(t testing.TB, url, id string, opts ...boxOpt) *box {
	t.Helper()
	return startBoxWith(t, url, id, nil, opts...)
}

// startSkewed starts a box whose wall clock runs d ahead.
func startSkewed(t testing.TB, url, id string, d time.Duration, opts ...boxOpt) *box {
	t.Helper()
	return startBoxWith(t, url, id, func(b *cluster.Bridge) { cluster.SkewClock(b, d) }, opts...)
}

// startBoxWith is startBox that calls before on the bridge before Start.
func startBoxWith(t testing.TB, url, id string, before func(*cluster.Bridge), opts ...boxOpt) *box {
	t.Helper()
	// Leases every 20 minutes: tests that count what crosses the bus
	// exactly see none (withPresence shortens it).
	ccfg := cluster.Config{URL: url, BoxID: id, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
		PresenceLease: time.Hour}
	scfg := server.Config{Workers: 2}
	for _, o := range opts {
		o(&ccfg, &scfg)
	}
	br, err := cluster.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(br.Close) // runs after the server's shutdown below
	if before != nil {
		before(br)
	}
	scfg.Session.Bridge = br
	srv := testserver.Start(t, scfg)
	if err := br.Start(srv.Hub()); err != nil {
		t.Fatal(err)
	}
	return &box{srv: srv, br: br, id: id}
}

// startCluster starts one NATS and n boxes.
func startCluster(t testing.TB, n int, opts ...boxOpt) (*natsserver.Server, []*box) {
	t.Helper()
	ns := natstest.Start(t, nil)
	boxes := make([]*box, n)
	for i := range boxes {
		boxes[i] = startBox(t, ns.ClientURL(), fmt.Sprintf("box%d", i), opts...)
	}
	for _, b := range boxes {
		wstest.Eventually(t, 5*time.Second, "bridge connected", b.br.Stats().Connected.Load)
	}
	return ns, boxes
}

// syncAll waits until every box's subscriptions have reached NATS. A
// client reads its 101 just before the hub's join hook runs (both happen
// in one critical section), so give the hooks a moment first.
func syncAll(t testing.TB, boxes []*box) {
	t.Helper()
	time.Sleep(10 * time.Millisecond)
	for _, b := range boxes {
		b.sync(t)
	}
}

// rawNATS connects a plain NATS client, for injecting and watching.
func rawNATS(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// expectText reads one data message and checks its text and frame type.
func expectText(t testing.TB, c *wstest.Client, want string, gzip bool) {
	t.Helper()
	got, op, err := c.ReadMessage(5 * time.Second)
	if err != nil {
		t.Fatalf("want %q: %v", want, err)
	}
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if wantOp := map[bool]ws.OpCode{true: ws.OpBinary, false: ws.OpText}[gzip]; op != wantOp {
		t.Fatalf("%q came as opcode %v, want %v", want, op, wantOp)
	}
}

// expectSilence checks that nothing but pings arrives for d.
func expectSilence(t testing.TB, c *wstest.Client, d time.Duration) {
	t.Helper()
	if got, _, err := c.ReadMessage(d); err == nil {
		t.Fatalf("unexpected message %q", got)
	}
}

type serverConfig = server.Config

type netTCPAddr = net.TCPAddr

// shutdownBox stops a box as cmd/wsd does: drain, then the bridge.
func shutdownBox(t testing.TB, b *box) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.srv.Shutdown(ctx)
	b.br.Close()
}
