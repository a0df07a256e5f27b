package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/internal/memlog"
	"github.com/wsd-chat/wsd/internal/natstest"
	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

// TestLogWithBridge: with a Log and a cluster bridge, room messages travel
// only through the Log (each member gets one copy, in the Log's order),
// a message to every room reaches each room once whichever boxes have it,
// and direct messages still cross the bus.
func TestLogWithBridge(t *testing.T) {
	ns := natstest.Start(t, nil)
	store := memlog.New(memlog.Config{})
	var apps []*server.App
	for i := range 2 {
		box := store.Box()
		t.Cleanup(func() { box.Close() })
		app := testserver.App(t, server.Config{Workers: 2,
			Cluster: &cluster.Config{URL: ns.ClientURL(), BoxID: fmt.Sprintf("box%d", i), ReconnectMin: 20 * time.Millisecond},
			Session: session.Config{Log: box, MaxDeliveryRate: -1}})
		apps = append(apps, app)
	}
	addrA, addrB := apps[0].Server().Addr().String(), apps[1].Server().Addr().String()
	sa := wstest.Dial(t, addrA, "specialKey=sa&room=r")
	sb := wstest.Dial(t, addrB, "specialKey=sb&room=r")
	qb := v1Dial(t, addrB, "specialKey=qb&room=q")
	qb.expect("joined")
	for _, a := range apps {
		if err := a.Bridge().Sync(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		sa.WriteText(fmt.Sprint(i))
	}
	for i := range 20 {
		expectText(t, sa, "sa", fmt.Sprint(i))
		expectText(t, sb, "sb", fmt.Sprint(i))
	}
	quiet(t, sb, "sb") // no second copy over the bus
	if n := len(store.Messages("r")); n != 20 {
		t.Fatalf("the Log holds %d of room r, want 20", n)
	}

	d := apps[0].Server().Hub().PublishAll([]byte("to everyone"))
	if d.Cluster != session.ClusterSent {
		t.Fatalf("PublishAll: %+v", d)
	}
	expectText(t, sa, "sa", "to everyone")
	expectText(t, sb, "sb", "to everyone")
	qb.expect("message", "room", "q", "seq", 1, "text", "to everyone")
	quiet(t, sb, "sb")
	qb.quiet()
	if r, q := len(store.Messages("r")), len(store.Messages("q")); r != 21 || q != 1 {
		t.Fatalf("the Log holds %d of r and %d of q, want 21 and 1", r, q)
	}

	// A direct message to a key on the other box still crosses the bus.
	if d := apps[0].Server().Hub().SendTo("sb", []byte("just you")); d.Cluster != session.ClusterSent {
		t.Fatalf("SendTo: %+v", d)
	}
	expectText(t, sb, "sb", "just you")
}
