package main

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/natstest"
	"github.com/wsd-chat/wsd/internal/wstest"
)

// Three real wsd processes on one NATS: a room's members are the union on
// every box; a box drained with SIGTERM whose member comes back on
// another box within the grace shows no one that member leaving; a box
// killed with SIGKILL has its members leave within -presence-lease.
func TestBinaryPresenceAcrossBoxes(t *testing.T) {
	const lease = time.Second
	ns := natstest.Start(t, nil)
	url := "nats://" + ns.Addr().String()
	start := func(id string) *wstest.Process {
		return wstest.StartBinary(t, "-nats-url", url, "-box-id", id, "-presence-interval", "100ms",
			"-presence-grace", "3s", "-presence-lease", lease.String(), "-drain-delay", "0", "-lame-duck-duration", "0")
	}
	a, b, c := start("a"), start("b"), start("c")
	alice := wstest.DialV1(t, a.Addr, "specialKey=alice&room=lobby")
	alice.Expect(t, "joined")
	bob := wstest.DialV1(t, b.Addr, "specialKey=bob&room=lobby")
	bob.Expect(t, "joined")
	dave := wstest.DialV1(t, c.Addr, "specialKey=dave&room=lobby")
	dave.Expect(t, "joined")
	for _, v := range []*wstest.V1{alice, bob, dave} {
		waitMembersAnswer(t, v, "alice,bob,dave")
	}

	// c drains; dave comes back on a, after what would have been long
	// enough to hear of a leave, but within the grace.
	c.Signal(syscall.SIGTERM)
	for {
		if _, err := dave.Read(5 * time.Second); err != nil {
			break // the 1001
		}
	}
	time.Sleep(500 * time.Millisecond)
	dave2 := wstest.DialV1(t, a.Addr, "specialKey=dave&room=lobby")
	dave2.Expect(t, "joined")
	if code := c.Wait(10 * time.Second); code != 0 {
		t.Fatalf("c exited %d", code)
	}
	for _, v := range []*wstest.V1{alice, bob} {
		presenceNoLeft(t, v, "dave", 1500*time.Millisecond)
	}
	waitMembersAnswer(t, alice, "alice,bob,dave")
	waitMembersAnswer(t, bob, "alice,bob,dave")

	// b is killed: bob leaves within the lease.
	killed := time.Now()
	b.Signal(syscall.SIGKILL)
	for {
		e, err := alice.Read(lease + 2*time.Second)
		if err != nil {
			t.Fatalf("bob did not leave within the lease: %v", err)
		}
		if e.Type == "presence" && slices.Contains(e.Left, "bob") {
			if e.Count != 2 {
				t.Fatalf("after b was killed: %s", e.Raw)
			}
			break
		}
	}
	took := time.Since(killed)
	if took > lease+time.Second {
		t.Fatalf("bob left %v after the kill, lease %v", took, lease)
	}
	t.Logf("bob left %v after the kill (lease %v)", took.Round(time.Millisecond), lease)
	waitMembersAnswer(t, alice, "alice,dave")
	b.Wait(5 * time.Second)
	a.Signal(syscall.SIGTERM)
	if code := a.Wait(10 * time.Second); code != 0 {
		t.Errorf("a exited %d", code)
	}
	if !strings.Contains(a.Log(), "presence lease expired") {
		t.Errorf("a did not log b's lease:\n%s", a.Log())
	}
}

// waitMembersAnswer asks v for the lobby's members until the answer is
// want (keys comma-separated, sorted).
func waitMembersAnswer(t *testing.T, v *wstest.V1, want string) {
	t.Helper()
	var last string
	wstest.Eventually(t, 5*time.Second, "members "+want, func() bool {
		if err := v.Members("lobby"); err != nil {
			t.Fatal(err)
		}
		for {
			e, err := v.Read(2 * time.Second)
			if err != nil {
				t.Fatalf("no members answer: %v", err)
			}
			if e.Type == "members" {
				last = strings.Join(e.Members, ",")
				return last == want && e.Count == len(e.Members)
			}
		}
	})
}

// presenceNoLeft fails if a presence frame v reads within d says key left.
func presenceNoLeft(t *testing.T, v *wstest.V1, key string, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		e, err := v.Read(time.Until(end))
		if err != nil {
			return
		}
		if e.Type == "presence" && slices.Contains(e.Left, key) {
			t.Fatalf("%s was seen leaving: %s", key, e.Raw)
		}
	}
}
