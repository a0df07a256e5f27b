package cluster_test

import (
	"testing"
	"time"

	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/internal/natstest"
	"github.com/wsd-chat/wsd/internal/wstest"
)

// Forged holds on a key one box holds, each within what a box accepts,
// must not run that box's clock so far ahead that the others refuse its
// claims (each box would then keep its own connection of a key): later
// connections still win, in both directions.
func TestForgedHoldsCannotSplit(t *testing.T) {
	ns, boxes := startCluster(t, 2)
	victim := wstest.Dial(t, boxes[0].addr(), "specialKey=victim")
	syncAll(t, boxes)
	nc := rawNATS(t, ns.ClientURL())
	now := uint64(time.Now().UnixNano())
	stamps := []uint64{
		1 << 32, 1 << 33, 1 << 34, // each within 2^32 of the one before
		now + 1<<32, now + 1<<33, now + 9*uint64(time.Minute), // seconds and minutes ahead
		1 << 63, 1<<64 - 1, // refused outright
	}
	for _, s := range stamps {
		hold := cluster.Message{Kind: cluster.KindHold, BoxID: "evil", Target: "victim", Stamp: s}
		if err := nc.Publish("wsd.key."+cluster.KeyToken("victim"), hold.Append(nil)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	wstest.Eventually(t, 5*time.Second, "forged holds seen", func() bool {
		return boxes[0].br.Stats().ClaimsReceived.Load() >= uint64(len(stamps))
	})
	if d := boxes[0].br.Stats().Dropped(cluster.DropInvalid); d != 2 {
		t.Errorf("box0 refused %d forged holds, want 2 (those beyond any clock)", d)
	}

	// The forged key: a later connection on box1 wins.
	wstest.Dial(t, boxes[1].addr(), "specialKey=victim")
	if code := victim.ExpectClose(t, 5*time.Second); code != 4001 {
		t.Fatalf("victim closed with %d, want 4001", code)
	}
	// A key first connected on box0 after the forgeries, then on box1.
	first := wstest.Dial(t, boxes[0].addr(), "specialKey=after")
	syncAll(t, boxes)
	second := wstest.Dial(t, boxes[1].addr(), "specialKey=after")
	if code := first.ExpectClose(t, 5*time.Second); code != 4001 {
		t.Fatalf("box0's connection closed with %d, want 4001 for box1's later one", code)
	}
	// And back: box0's next connection wins over box1's.
	third := wstest.Dial(t, boxes[0].addr(), "specialKey=after")
	if code := second.ExpectClose(t, 5*time.Second); code != 4001 {
		t.Fatalf("box1's connection closed with %d, want 4001 for box0's later one", code)
	}
	expectSilence(t, third, 50*time.Millisecond)
	if d := boxes[1].br.Stats().Dropped(cluster.DropInvalid); d != 0 {
		t.Errorf("box1 refused %d of box0's key messages", d)
	}
}

// A box whose clock is further ahead than a stamp may push another's:
// the later connection's second claim waits until it is within reach,
// then wins.
func TestClockFarAhead(t *testing.T) {
	ns := natstest.Start(t, nil)
	ahead := startSkewed(t, ns.ClientURL(), "ahead", 1500*time.Millisecond)
	behind := startBox(t, ns.ClientURL(), "behind")
	for _, b := range []*box{ahead, behind} {
		wstest.Eventually(t, 5*time.Second, "bridge connected", b.br.Stats().Connected.Load)
	}
	old := wstest.Dial(t, ahead.addr(), "specialKey=k")
	syncAll(t, []*box{ahead, behind})
	start := time.Now()
	newer := wstest.Dial(t, behind.addr(), "specialKey=k")
	if code := old.ExpectClose(t, 5*time.Second); code != 4001 {
		t.Fatalf("old connection closed with %d, want 4001", code)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("won after %v: the claim above a hold 1.5 s ahead should wait ~0.5 s", d)
	}
	newer.WriteText("here")
	expectText(t, newer, "here", false)
	if d := behind.br.Stats().Dropped(cluster.DropInvalid); d != 0 {
		t.Errorf("behind refused %d key messages", d)
	}
}
