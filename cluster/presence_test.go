package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/internal/wstest"
)

const (
	testInterval = 50 * time.Millisecond
	testGrace    = 2 * time.Second
	testLease    = 600 * time.Millisecond
)

// withPresence gives boxes short presence timings.
func withPresence(c *cluster.Config, s *serverConfig) {
	c.PresenceLease = testLease
	s.Session.PresenceInterval = testInterval
	s.Session.PresenceGrace = testGrace
}

// members is what b's presence has of room.
func members(b *box, room string) string {
	keys, n := b.hub().Presence().Members(room, nil)
	return fmt.Sprintf("%d %v", n, keys)
}

// waitMembers waits until every box has want of room.
func waitMembers(t *testing.T, want, room string, boxes ...*box) {
	t.Helper()
	for _, b := range boxes {
		wstest.Eventually(t, 5*time.Second, b.id+" has "+want, func() bool { return members(b, room) == want })
	}
}

// noLeft fails if any presence frame c reads within d says key left.
func noLeft(t *testing.T, c *wstest.V1, key string, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		e, err := c.Read(time.Until(end))
		if err != nil {
			return
		}
		if e.Type == "presence" && slices.Contains(e.Left, key) {
			t.Fatalf("%s was seen leaving: %s", key, e.Raw)
		}
	}
}

// untilLeft reads c's frames until a presence frame says key left.
func untilLeft(t *testing.T, c *wstest.V1, key string, d time.Duration) wstest.Envelope {
	t.Helper()
	end := time.Now().Add(d)
	for {
		e, err := c.Read(time.Until(end))
		if err != nil {
			t.Fatalf("no presence frame with %s left: %v", key, err)
		}
		if e.Type == "presence" && slices.Contains(e.Left, key) {
			return e
		}
	}
}

// A room's members and count are the union over the boxes, on each box,
// for the admin API and a v1 members answer alike; a box that drains and
// goes keeps its members through the grace, on its own side and then on
// the others', so one that comes back on another box within it never
// leaves, even after the goodbye, and one that does not leaves after the
// grace; a box cut off (crashed) has its members leave within its lease.
func TestPresenceAcrossBoxes(t *testing.T) {
	for name, opts := range map[string][]boxOpt{"unsigned": {withPresence}, "signed": {withPresence, withKeys(key1)}} {
		t.Run(name, func(t *testing.T) {
			_, boxes := startCluster(t, 3, opts...)
			a, b, c := boxes[0], boxes[1], boxes[2]
			alice := wstest.DialV1(t, a.addr(), "specialKey=alice&room=lobby")
			alice.Expect(t, "joined")
			bob := wstest.DialV1(t, b.addr(), "specialKey=bob&room=lobby")
			bob.Expect(t, "joined")
			wstest.Dial(t, b.addr(), "specialKey=carol&room=lobby") // a seed member
			dave := wstest.DialV1(t, c.addr(), "specialKey=dave&room=lobby")
			dave.Expect(t, "joined")
			erin := wstest.DialV1(t, c.addr(), "specialKey=erin&room=lobby") // not back after the drain
			erin.Expect(t, "joined")
			waitMembers(t, "5 [alice bob carol dave erin]", "lobby", a, b, c)
			alice.Members("lobby")
			if m := alice.ExpectUntil(t, "members"); m.Count != 5 || strings.Join(m.Members, ",") != "alice,bob,carol,dave,erin" {
				t.Fatalf("members on a: %s", m.Raw)
			}
			if n := a.br.Stats().PresenceBoxes.Load(); n != 2 {
				t.Fatalf("a follows %d boxes, want 2", n)
			}

			// Box c drains and goes; dave comes back on a after its
			// goodbye, within the grace.
			done := make(chan struct{})
			go func() {
				defer close(done)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				c.srv.Shutdown(ctx)
			}()
			for { // until the 1001
				if _, err := dave.Read(5 * time.Second); err != nil {
					break
				}
			}
			gone := time.Now()
			c.br.Close() // the goodbye, dave and erin in their grace: they stay for it
			// Long enough for a leave to have been shared, within the grace.
			time.Sleep(6 * testInterval)
			dave2 := wstest.DialV1(t, a.addr(), "specialKey=dave&room=lobby")
			dave2.Expect(t, "joined")
			e := untilLeft(t, alice, "erin", testGrace+2*time.Second)
			if took := time.Since(gone); slices.Contains(e.Left, "dave") || took < testGrace-testInterval {
				t.Fatalf("%v after the goodbye (grace %v): %s", took, testGrace, e.Raw)
			}
			waitMembers(t, "4 [alice bob carol dave]", "lobby", a, b)
			noLeft(t, alice, "dave", 10*testInterval)
			noLeft(t, bob, "dave", 0)
			<-done

			// Box b is cut off: its members leave within the lease.
			start := time.Now()
			cluster.Crash(b.br)
			e = untilLeft(t, alice, "bob", 5*time.Second)
			took := time.Since(start)
			if !slices.Contains(e.Left, "carol") || e.Count != 2 {
				t.Fatalf("after b was cut off: %s", e.Raw)
			}
			if took > testLease+4*testInterval+200*time.Millisecond {
				t.Fatalf("b's members left after %v, lease %v", took, testLease)
			}
			t.Logf("b's members left %v after it was cut off (lease %v)", took.Round(time.Millisecond), testLease)
			waitMembers(t, "2 [alice dave]", "lobby", a)
			if n := a.br.Stats().LeasesExpired.Load(); n != 1 {
				t.Fatalf("%d leases expired on a, want 1", n)
			}
		})
	}
}

// A box that hears of another box's change it cannot place (a gap, or a
// box it never heard of in the room) asks that box for its whole set, and
// takes it; a box that never renews its lease has its members dropped.
func TestPresenceAsksAndExpires(t *testing.T) {
	ns, boxes := startCluster(t, 1, withPresence)
	a := boxes[0]
	alice := wstest.DialV1(t, a.addr(), "specialKey=alice&room=lobby")
	alice.Expect(t, "joined")
	syncAll(t, boxes)
	nc := rawNATS(t, ns.ClientURL())
	asks, err := nc.SubscribeSync("wsd.presence.lobby")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	pub := func(seq uint64, text []byte) {
		m := cluster.Message{Kind: cluster.KindPresence, BoxID: "ghost", Seq: seq, Target: "lobby", Text: text}
		if err := nc.Publish("wsd.presence.lobby", m.Append(nil)); err != nil {
			t.Fatal(err)
		}
	}
	pub(5, cluster.PresenceText(false, true, 1, []string{"g1"}, nil))
	for {
		msg, err := asks.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal("no ask for ghost's whole set")
		}
		if msg.Data[1] == byte(cluster.KindPresenceAsk) && strings.HasSuffix(string(msg.Data), "ghost") {
			break
		}
	}
	if got := members(a, "lobby"); got != "1 [alice]" {
		t.Fatalf("a change out of sequence was applied: %s", got)
	}
	pub(6, cluster.PresenceText(true, true, 2, []string{"g1", "g2"}, nil))
	waitMembers(t, "3 [alice g1 g2]", "lobby", a)
	pub(7, cluster.PresenceText(false, true, 1, nil, []string{"g2"}))
	waitMembers(t, "2 [alice g1]", "lobby", a)
	// ghost never renews its lease.
	untilLeft(t, alice, "g1", 5*time.Second)
	if n := a.br.Stats().LeasesExpired.Load(); n != 1 {
		t.Fatalf("%d leases expired, want 1", n)
	}
}

// Presence messages that are malformed, invalid, unsigned on a box with
// bus keys, or on the wrong subject, change nothing and are counted.
func TestPresenceRefusesBadMessages(t *testing.T) {
	ns, boxes := startCluster(t, 1, withPresence, withKeys(key1))
	a := boxes[0]
	alice := wstest.DialV1(t, a.addr(), "specialKey=alice&room=lobby")
	alice.Expect(t, "joined")
	syncAll(t, boxes)
	nc := rawNATS(t, ns.ClientURL())
	msg := func(kind byte, target string, text []byte) []byte {
		m := cluster.Message{Kind: 1, BoxID: "ghost", Seq: 1, Target: target, Text: text}
		b := m.Append(nil)
		b[1] = kind
		return b
	}
	good := cluster.PresenceText(true, true, 1, []string{"g1"}, nil)
	cases := []struct {
		name, subject string
		data          []byte
	}{
		{"unsigned", "wsd.presence.lobby", msg(byte(cluster.KindPresence), "lobby", good)},
		{"bad mac", "wsd.presence.lobby", append(msg(byte(cluster.KindPresence), "lobby", good), make([]byte, 16)...)},
		{"truncated", "wsd.presence.lobby", cluster.Sign(key1, "wsd.presence.lobby", msg(byte(cluster.KindPresence), "lobby", good[:3]))},
		{"empty key", "wsd.presence.lobby", cluster.Sign(key1, "wsd.presence.lobby", msg(byte(cluster.KindPresence), "lobby", cluster.PresenceText(true, true, 1, []string{""}, nil)))},
		{"wrong subject", "wsd.boxes", cluster.Sign(key1, "wsd.boxes", msg(byte(cluster.KindPresence), "lobby", good))},
		{"bad lease", "wsd.boxes", cluster.Sign(key1, "wsd.boxes", msg(byte(cluster.KindLease), "", []byte{0}))},
	}
	for _, c := range cases {
		if c.name == "bad mac" {
			c.data[2] |= 2 // flagMAC
		}
		before := a.br.Stats().PresenceDropped.Load()
		if err := nc.Publish(c.subject, c.data); err != nil {
			t.Fatal(err)
		}
		wstest.Eventually(t, 5*time.Second, c.name+" counted", func() bool {
			return a.br.Stats().PresenceDropped.Load() == before+1
		})
		if got := members(a, "lobby"); got != "1 [alice]" {
			t.Fatalf("%s changed the members: %s", c.name, got)
		}
	}
	// The well-formed, signed one is taken.
	if err := nc.Publish("wsd.presence.lobby", cluster.Sign(key1, "wsd.presence.lobby", msg(byte(cluster.KindPresence), "lobby", good))); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, "2 [alice g1]", "lobby", a)
}

// A room whose last member here is in its presence grace is still
// followed: the box answers asks with that member, shares its leaving
// when the grace is over, and only then stops following the room.
func TestPresenceLingersThroughGrace(t *testing.T) {
	ns, boxes := startCluster(t, 1, func(c *cluster.Config, s *serverConfig) {
		withPresence(c, s)
		s.Session.PresenceGrace = 500 * time.Millisecond
	})
	a := boxes[0]
	alice := wstest.DialV1(t, a.addr(), "specialKey=alice&room=lobby")
	alice.Expect(t, "joined")
	syncAll(t, boxes)
	nc := rawNATS(t, ns.ClientURL())
	sub, err := nc.SubscribeSync("wsd.presence.lobby")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	alice.Conn.Close()
	wstest.Eventually(t, 5*time.Second, "alice gone", func() bool { return a.hub().Stats().Open.Load() == 0 })
	ask := cluster.Message{Kind: cluster.KindPresenceAsk, BoxID: "other", Seq: 1, Target: "lobby", Text: []byte(cluster.PresenceID(a.br))}
	if err := nc.Publish("wsd.presence.lobby", ask.Append(nil)); err != nil {
		t.Fatal(err)
	}
	// The answer: a whole set with alice; then, after the grace, her leaving.
	var seen []string
	for len(seen) < 2 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("after %q: %v", seen, err)
		}
		// alice's join may be shared after the subscription: skip it.
		if p := cluster.ReadPresence(m.Data); m.Data[1] == byte(cluster.KindPresence) && (len(seen) > 0 || p[0] == '=') {
			seen = append(seen, p)
		}
	}
	if got := strings.Join(seen, ", "); got != "=[alice] 1, +[] -[alice] 0" {
		t.Fatalf("box0 said %s", got)
	}
	wstest.Eventually(t, 5*time.Second, "the room unfollowed", func() bool {
		return a.br.Stats().PresenceSubscriptions.Load() == 0
	})
}

// A box restarted under the same box id is a new box to presence: the
// members of the one before leave with its lease, the new one's stay.
func TestPresenceRestartSameBoxID(t *testing.T) {
	ns, boxes := startCluster(t, 1, withPresence)
	a := boxes[0]
	alice := wstest.DialV1(t, a.addr(), "specialKey=alice&room=lobby")
	alice.Expect(t, "joined")
	x := startBox(t, ns.ClientURL(), "x", withPresence)
	wstest.Eventually(t, 5*time.Second, "x connected", x.br.Stats().Connected.Load)
	wstest.DialV1(t, x.addr(), "specialKey=old&room=lobby").Expect(t, "joined")
	waitMembers(t, "2 [alice old]", "lobby", a)
	cluster.Crash(x.br)
	x2 := startBox(t, ns.ClientURL(), "x", withPresence)
	wstest.Eventually(t, 5*time.Second, "x again connected", x2.br.Stats().Connected.Load)
	wstest.DialV1(t, x2.addr(), "specialKey=new&room=lobby").Expect(t, "joined")
	e := untilLeft(t, alice, "old", 5*time.Second)
	if slices.Contains(e.Left, "new") {
		t.Fatalf("the new box's member left: %s", e.Raw)
	}
	waitMembers(t, "2 [alice new]", "lobby", a)
}

// A join storm on one box crosses as at most one presence message per
// interval, and past -presence-list-max keys as a count: the other box
// counts them all and lists what it can.
func TestPresenceStormCoalesced(t *testing.T) {
	_, boxes := startCluster(t, 2, withPresence)
	a, b := boxes[0], boxes[1]
	bob := wstest.DialV1(t, b.addr(), "specialKey=bob&room=lobby")
	bob.Expect(t, "joined")
	syncAll(t, boxes)
	const n = 150 // over the default list max, 100
	sentBefore := a.br.Stats().PresenceSent.Load()
	start := time.Now()
	for i := 0; i < n; i++ {
		wstest.Dial(t, a.addr(), fmt.Sprintf("specialKey=k%d&room=lobby", i))
	}
	wstest.Eventually(t, 10*time.Second, "b counts them all", func() bool {
		return b.hub().Presence().Count("lobby") == n+1
	})
	took := time.Since(start)
	sent := a.br.Stats().PresenceSent.Load() - sentBefore
	if most := uint64(took/testInterval) + 2; sent > most {
		t.Fatalf("%d joins in %v crossed as %d presence messages, want at most %d", n, took, sent, most)
	}
	keys, count := b.hub().Presence().Members("lobby", nil)
	if count != n+1 || !slices.Contains(keys, "bob") {
		t.Fatalf("b lists %d keys of %d, bob among them: %v", len(keys), count, slices.Contains(keys, "bob"))
	}
	t.Logf("%d joins in %v: %d presence messages", n, took.Round(time.Millisecond), sent)
}
