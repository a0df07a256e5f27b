package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/wsd-chat/wsd/internal/natstest"
	"github.com/wsd-chat/wsd/internal/wstest"
)

// Two real wsd processes and an embedded NATS with a password: a room
// spans them, a key moves between them, and the password never shows in
// the logs.
func TestBinaryCluster(t *testing.T) {
	const secret = "s3cret-pa55"
	ns := natstest.Start(t, &natsserver.Options{Username: "wsd", Password: secret})
	addr := ns.Addr().String()
	a := wstest.StartBinary(t, "-nats-url", fmt.Sprintf("nats://wsd:%s@%s", secret, addr), "-box-id", "a")
	b := wstest.StartBinary(t, "-nats-url", "nats://"+addr, "-nats-user", "wsd", "-nats-password", secret, "-box-id", "b")
	bad := wstest.StartBinary(t, "-nats-url", "nats://"+addr, "-nats-user", "wsd", "-nats-password", "wrong", "-box-id", "c")

	ca := wstest.Dial(t, a.Addr, "specialKey=alice&room=r")
	cb := wstest.Dial(t, b.Addr, "specialKey=bob&room=r&support_gzip=1")
	cc := wstest.Dial(t, bad.Addr, "specialKey=carol&room=r")
	// No Sync across processes: retry until the subscriptions are in.
	i := 0
	wstest.Eventually(t, 10*time.Second, "a message to cross from a to b", func() bool {
		i++
		ca.WriteText(fmt.Sprintf("hi %d", i))
		got, _, err := ca.ReadMessage(time.Second)
		if err != nil || got != fmt.Sprintf("hi %d", i) {
			t.Fatalf("echo: %q %v", got, err)
		}
		got, _, err = cb.ReadMessage(200 * time.Millisecond)
		if err == nil && !strings.HasPrefix(got, "hi ") {
			t.Fatalf("bob got %q", got)
		}
		return err == nil
	})
	// The box that could not authenticate serves its own clients.
	cc.WriteText("alone")
	if got, _, err := cc.ReadMessage(time.Second); err != nil || got != "alone" {
		t.Fatalf("local chat on the box without NATS: %q %v", got, err)
	}
	// alice connects again on b: the one on a is replaced.
	wstest.Dial(t, b.Addr, "specialKey=alice&room=r")
	if code := ca.ExpectClose(t, 5*time.Second); code != 4001 {
		t.Fatalf("alice on a closed with %d", code)
	}
	for _, p := range []*wstest.Process{a, b, bad} {
		p.Signal(syscall.SIGTERM)
		if code := p.Wait(10 * time.Second); code != 0 {
			t.Errorf("exit %d", code)
		}
		if strings.Contains(p.Log(), secret) || strings.Contains(p.Log(), "wrong") {
			t.Errorf("a NATS password is in the log:\n%s", p.Log())
		}
	}
	if !strings.Contains(a.Log(), "box_id=a") || !strings.Contains(a.Log(), "redacted") {
		t.Errorf("cluster line missing:\n%s", a.Log())
	}
}
