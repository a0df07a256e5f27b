package cluster_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/internal/wstest"
)

var (
	key1 = []byte(strings.Repeat("k1", 16))
	key2 = []byte(strings.Repeat("k2", 16))
)

func withKeys(keys ...[]byte) boxOpt {
	return func(c *cluster.Config, _ *serverConfig) { c.BusKeys = keys }
}

// With bus keys a NATS client without them can neither kick a key, pose
// as a box nor broadcast: its messages are dropped and counted, signed or
// not, and the boxes' own messages still cross.
func TestBusAuthenticated(t *testing.T) {
	ns, boxes := startCluster(t, 2, withKeys(key1))
	holder := wstest.Dial(t, boxes[0].addr(), "specialKey=victim&room=lobby")
	other := wstest.Dial(t, boxes[1].addr(), "specialKey=o&room=lobby")
	syncAll(t, boxes)
	nc := rawNATS(t, ns.ClientURL())
	now := uint64(time.Now().UnixNano())
	claim := cluster.Message{Kind: cluster.KindClaim, BoxID: "box1", Target: "victim", Stamp: now + 1000}
	room := cluster.Message{Kind: cluster.KindRoom, BoxID: "box1", Target: "lobby", Text: []byte("posing as box1")}
	all := cluster.Message{Kind: cluster.KindAll, BoxID: "box1", Text: []byte("to everyone")}
	injected := []struct {
		subject string
		data    []byte
		reason  int
	}{
		{"wsd.key." + cluster.KeyToken("victim"), claim.Append(nil), cluster.DropUnsigned},
		{"wsd.room.lobby", room.Append(nil), cluster.DropUnsigned},
		{"wsd.all", all.Append(nil), cluster.DropUnsigned},
		// Signed with a key the boxes do not hold.
		{"wsd.key." + cluster.KeyToken("victim"), cluster.Sign(key2, "wsd.key."+cluster.KeyToken("victim"), claim.Append(nil)), cluster.DropBadMAC},
		{"wsd.room.lobby", cluster.Sign(key2, "wsd.room.lobby", room.Append(nil)), cluster.DropBadMAC},
		// Signed with the right key for another subject.
		{"wsd.room.lobby", cluster.Sign(key1, "wsd.room.other", room.Append(nil)), cluster.DropBadMAC},
		// A signed message with one byte changed.
		{"wsd.room.lobby", flip(cluster.Sign(key1, "wsd.room.lobby", room.Append(nil)), 30), cluster.DropBadMAC},
	}
	want := map[int]uint64{}
	for _, m := range injected {
		if err := nc.Publish(m.subject, m.data); err != nil {
			t.Fatal(err)
		}
		want[m.reason]++
	}
	nc.Flush()
	// box0 hears the key, room and all subjects; box1 room and all.
	wstest.Eventually(t, 5*time.Second, "forgeries counted", func() bool {
		s := boxes[0].br.Stats()
		return s.Dropped(cluster.DropUnsigned) == want[cluster.DropUnsigned] && s.Dropped(cluster.DropBadMAC) == want[cluster.DropBadMAC]
	})
	expectSilence(t, holder, 100*time.Millisecond)
	expectSilence(t, other, 10*time.Millisecond)

	// The boxes' own traffic crosses: chat, and a kick.
	other.WriteText("signed")
	expectText(t, other, "signed", false)
	expectText(t, holder, "signed", false)
	wstest.Dial(t, boxes[1].addr(), "specialKey=victim")
	if code := holder.ExpectClose(t, 5*time.Second); code != 4001 {
		t.Fatalf("holder closed with %d, want 4001 for box1's signed claim", code)
	}
	for _, b := range boxes {
		if d := b.br.Stats().Dropped(cluster.DropInvalid) + b.br.Stats().Dropped(cluster.DropMalformed); d != 0 {
			t.Errorf("%s dropped %d of its peer's messages", b.id, d)
		}
	}
}

func flip(p []byte, i int) []byte {
	p = bytes.Clone(p)
	p[i] ^= 1
	return p
}

// A key rotation without a gap: every box takes both keys (the old one
// first), then the new one first, then the new one alone; chat crosses
// at every step. Boxes whose keys do not overlap hear nothing of each
// other and count it.
func TestBusKeyRotation(t *testing.T) {
	_, boxes := startCluster(t, 2, withKeys(key1))
	a := wstest.Dial(t, boxes[0].addr(), "specialKey=a")
	b := wstest.Dial(t, boxes[1].addr(), "specialKey=b")
	syncAll(t, boxes)
	crosses := func(step string) {
		t.Helper()
		a.WriteText(step + " from a")
		expectText(t, a, step+" from a", false)
		expectText(t, b, step+" from a", false)
		b.WriteText(step + " from b")
		expectText(t, b, step+" from b", false)
		expectText(t, a, step+" from b", false)
	}
	set := func(i int, keys ...[]byte) {
		t.Helper()
		if err := boxes[i].br.SetBusKeys(keys); err != nil {
			t.Fatal(err)
		}
	}
	crosses("start")
	for _, step := range []struct {
		name string
		a, b [][]byte
	}{
		{"a adds the new key", [][]byte{key1, key2}, [][]byte{key1}},
		{"both hold both", [][]byte{key1, key2}, [][]byte{key1, key2}},
		{"a signs with the new key", [][]byte{key2, key1}, [][]byte{key1, key2}},
		{"both sign with the new key", [][]byte{key2, key1}, [][]byte{key2, key1}},
		{"the old key goes", [][]byte{key2}, [][]byte{key2}},
	} {
		set(0, step.a...)
		set(1, step.b...)
		crosses(step.name)
	}
	set(1, key1)
	a.WriteText("lost")
	expectText(t, a, "lost", false)
	expectSilence(t, b, 100*time.Millisecond)
	if d := boxes[1].br.Stats().Dropped(cluster.DropBadMAC); d != 1 {
		t.Errorf("box1 counted %d messages under a key it does not hold, want 1", d)
	}
	if err := boxes[0].br.SetBusKeys([][]byte{[]byte("short")}); err == nil {
		t.Error("a 5-byte key was taken")
	}
}

func TestParseBusKeys(t *testing.T) {
	k := strings.Repeat("x", 32)
	for _, c := range []struct {
		file string
		n    int // keys; 0: an error
	}{
		{k + "\n", 1},
		{"# rotation\n" + k + "\n\n" + strings.Repeat("y", 40) + "\r\n", 2},
		{"", 0},
		{"# nothing\n\n", 0},
		{strings.Repeat("x", 31), 0},
		{k + "\n" + k + "\n" + k, 0},
	} {
		keys, err := cluster.ParseBusKeys([]byte(c.file))
		if (err == nil) != (c.n > 0) || len(keys) != c.n {
			t.Errorf("%q: %d keys, %v; want %d", c.file, len(keys), err, c.n)
		}
	}
}
