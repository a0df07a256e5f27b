package client

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// The real binary restarted under its clients, again and again: every
// send is acked (those made while it is down wait and go out after the
// reconnect), and each restart is reported as Joined{Recovered:false} (a
// restart starts a new epoch), never hidden.
func TestBinaryRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and restarts wsd")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	args := []string{"-addr", addr, "-admin-addr", "", "-max-delivery-rate", "0", "-shutdown-timeout", "1s", "-lame-duck-duration", "0"}
	p := wstest.StartBinary(t, args...)
	u := "ws://" + addr + "/"
	a := dial(t, u, Options{Key: "alice", Rooms: []string{"lobby"}})
	b := dial(t, u, Options{Key: "bob", Rooms: []string{"lobby"}})
	rb := record(b)
	const restarts, per = 3, 5
	for r := range restarts + 1 {
		for k := range per {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			ack, err := a.Send(ctx, "lobby", fmt.Sprint(r, "/", k))
			cancel()
			if err != nil {
				t.Fatalf("restart %d send %d: %v", r, k, err)
			}
			if ack.Seq == 0 {
				t.Fatalf("ack %+v", ack)
			}
		}
		if r == restarts {
			break
		}
		// An ack says the message was queued for bob, not that it reached
		// him: a kill before his socket has it loses it to him
		// (recovered:false, the protocol without a store), so the kill
		// waits for the round to reach him.
		waitFor(t, "the round at bob", func() bool { return len(rb.messages("lobby")) == (r+1)*per })
		p.Cmd.Process.Kill()
		p.Wait(5 * time.Second)
		p = wstest.StartBinary(t, args...)
		// The next round once bob is back: what is sent before his rejoin
		// is lost to him (recovered:false), which is the protocol, and
		// would make the count below depend on timing.
		waitFor(t, "bob's reconnect", func() bool { return b.Stats().Connects == uint64(r+2) && b.State() == Connected })
	}
	waitFor(t, "the last round", func() bool {
		ms := rb.messages("lobby")
		return len(ms) > 0 && ms[len(ms)-1].Text == fmt.Sprint(restarts, "/", per-1)
	})
	unrec := 0
	for _, ev := range rb.all() {
		if j, ok := ev.(*Joined); ok && j.Rejoin && !j.Recovered {
			unrec++
		}
	}
	if unrec != restarts || b.Stats().Unrecovered != restarts {
		t.Fatalf("%d unrecovered rejoins reported, stats %+v, want %d", unrec, b.Stats(), restarts)
	}
	if got := len(rb.messages("lobby")); got != (restarts+1)*per {
		t.Fatalf("bob: %d of %d messages, stats %+v", got, (restarts+1)*per, b.Stats())
	}
}
