package cluster_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/internal/natstest"
	"github.com/wsd-chat/wsd/internal/wstest"
)

// The NATS configuration docs/cluster-security.md shows keeps a shared
// NATS's other users off wsd's subjects: boxes with the wsd user chat; a
// user of the same account without the permission can neither publish
// nor subscribe there; a user of another account reaches nothing.
func TestNATSPermissions(t *testing.T) {
	opts, err := natsserver.ProcessConfigFile("testdata/nats-permissions.conf")
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t, opts)
	url := fmt.Sprintf("nats://%s", ns.Addr().String())
	asWSD := func(c *cluster.Config, _ *serverConfig) { c.User, c.Password = "wsd", "wsd-secret" }
	a := startBox(t, url, "a", asWSD)
	b := startBox(t, url, "b", asWSD)
	boxes := []*box{a, b}
	for _, bx := range boxes {
		wstest.Eventually(t, 5*time.Second, "connected", bx.br.Stats().Connected.Load)
	}
	ca := wstest.Dial(t, a.addr(), "specialKey=x&room=lobby")
	cb := wstest.Dial(t, b.addr(), "specialKey=y&room=lobby")
	syncAll(t, boxes)
	ca.WriteText("hello")
	expectText(t, ca, "hello", false)
	expectText(t, cb, "hello", false)

	forged := (&cluster.Message{Kind: cluster.KindRoom, BoxID: "evil", Target: "lobby", Text: []byte("forged")}).Append(nil)
	for _, user := range []struct{ name, password string }{{"app", "app-secret"}, {"other", "other-secret"}} {
		errs := make(chan error, 4)
		nc, err := nats.Connect(url, nats.UserInfo(user.name, user.password), nats.NoEcho(),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		if err != nil {
			t.Fatalf("%s: %v", user.name, err)
		}
		t.Cleanup(nc.Close)
		sub, err := nc.SubscribeSync("wsd.>")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish("wsd.room.lobby", forged); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
		if user.name == "app" {
			// Refused by the server: one violation for the subscription,
			// one for the publish.
			for i := 0; i < 2; i++ {
				select {
				case err := <-errs:
					if !errors.Is(err, nats.ErrPermissionViolation) {
						t.Errorf("app: %v, want a permissions violation", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("app: %d permission violations, want 2", i)
				}
			}
		}
		ca.WriteText("from " + user.name)
		if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
			t.Errorf("%s read wsd's traffic: %q on %s", user.name, m.Data, m.Subject)
		}
		expectText(t, ca, "from "+user.name, false)
		expectText(t, cb, "from "+user.name, false) // not "forged"
	}
	// Presence (leases, member changes) comes on top of the room's messages.
	if r := b.br.Stats().Received.Load() - b.br.Stats().PresenceReceived.Load(); r != 3 {
		t.Errorf("box b received %d room messages, want a's 3", r)
	}
}
