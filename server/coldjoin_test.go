package server_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/chat"
	"github.com/wsd-chat/wsd/internal/memlog"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/session"
)

// Cold joins read the Log off the reactor's workers (session/logread.go):
// a Read that does not answer stalls only its own join, the seam is exact
// whatever arrives meanwhile, a join not answered in time is answered
// honestly, a connection closed meanwhile leaves nothing behind, and a
// Read of a room's latest messages serves the next joins from memory.

// fill has box addr's client send n messages to room, acked.
func fill(t *testing.T, addr, room string, n int) {
	t.Helper()
	s := v1Dial(t, addr, "specialKey=filler-"+room+"&room="+room)
	s.expect("joined")
	for i := 1; i <= n; i++ {
		s.write(fmt.Sprintf(`{"type":"send","room":"%s","text":"m%d"}`, room, i))
		s.ackAndEcho()
	}
	s.c.Close(1000)
}

// upgradeStatus is the HTTP status of an upgrade of addr/?query: 101 if
// upgraded (the connection is closed at once), -1 if no answer came.
func upgradeStatus(addr, query string) int {
	c, status, _, err := wstest.RawHandshake(addr, []byte(wstest.UpgradeRequest(addr, "/?"+query)))
	if c != nil {
		c.Conn.Close()
		return 101
	}
	if err != nil && status == 0 {
		return -1
	}
	return status
}

// waitingReads waits until n Reads of store are held.
func waitingReads(t *testing.T, store *memlog.Store, n int) {
	t.Helper()
	wstest.Eventually(t, 5*time.Second, fmt.Sprintf("%d Reads held", n), func() bool {
		_, w := store.Reads()
		return w == n
	})
}

// TestColdJoinDoesNotStall: while one connection's join waits on a Read
// that does not return, the other connections of the box chat on, and the
// waiting connection's own commands wait behind its join, in order.
func TestColdJoinDoesNotStall(t *testing.T) {
	store := memlog.New(memlog.Config{})
	addrA, _, _ := startLogged(t, store, session.Config{})
	fill(t, addrA, "r", 20)
	addrB, stB, _ := startLogged(t, store, session.Config{LogReads: 1})
	m := v1Dial(t, addrB, "specialKey=m&room=other")
	m.expect("joined")
	s := v1Dial(t, addrB, "specialKey=s&room=other")
	s.expect("joined")
	j := v1Dial(t, addrB, "specialKey=j&room=home")
	j.expect("joined")

	store.HoldReads(true)
	j.write(`{"type":"join","id":"j1","room":"r","since":5,"epoch":"` + store.Epoch() + `"}`)
	j.write(`{"type":"send","id":"after","room":"r","text":"behind the join"}`)
	waitingReads(t, store, 1)
	for i := 1; i <= 50; i++ {
		s.write(fmt.Sprintf(`{"type":"send","room":"other","text":"o%d"}`, i))
	}
	for i := 1; i <= 50; i++ {
		m.expect("message", "room", "other", "text", fmt.Sprintf("o%d", i))
	}
	if got := stB.LogReadsWaiting.Load(); got != 1 {
		t.Fatalf("%d cold joins waiting, want 1", got)
	}
	store.HoldReads(false)
	// The join's answer first, then the send that came after it (not a
	// not_member refusal), then the room's live traffic.
	j.expect("joined", "id", "j1", "recovered", true, "seq", 20)
	for i := 6; i <= 20; i++ {
		j.expect("message", "room", "r", "seq", i, "text", fmt.Sprintf("m%d", i))
	}
	ack, _ := j.ackAndEcho()
	if ack["id"] != "after" || ack["seq"] != float64(21) {
		t.Fatalf("ack %v, want the send after the join at seq 21", ack)
	}
	if got := stB.LogReadsWaiting.Load(); got != 0 {
		t.Fatalf("%d cold joins waiting after the Read, want 0", got)
	}
}

// TestColdJoinSeamWhileReadWaits: a sender on one box at full rate; on
// another, joins with since=0 whose Read is held while the box delivers
// the messages ordered after it: each joiner gets every message exactly
// once, in order (the Read's, then the Ring's past it, then live).
func TestColdJoinSeamWhileReadWaits(t *testing.T) {
	store := memlog.New(memlog.Config{MaxMessages: 100000})
	addrA, _, _ := startLogged(t, store, session.Config{HistorySize: 10000})
	const total = 3000
	sendAtFullRate(t, addrA, "r", total)
	wstest.Eventually(t, 10*time.Second, "messages ordered before B starts", func() bool { return len(store.Messages("r")) >= 50 })
	addrB, stB, _ := startLogged(t, store, session.Config{HistorySize: 10000, LogReads: 2})
	const joiners = 4
	js := make([]*v1Client, joiners)
	for n := range js {
		js[n] = v1Dial(t, addrB, fmt.Sprintf("specialKey=j%d&room=lobby%d", n, n))
		js[n].expect("joined")
	}
	store.HoldReads(true)
	for _, j := range js {
		j.write(`{"type":"join","room":"r","since":0,"epoch":"` + store.Epoch() + `"}`)
	}
	waitingReads(t, store, 2) // two readers held, the other joins queued
	before := len(store.Messages("r"))
	wstest.Eventually(t, 10*time.Second, "messages ordered while the Reads wait", func() bool {
		return len(store.Messages("r")) >= before+200 || len(store.Messages("r")) == total
	})
	store.HoldReads(false)
	var wg sync.WaitGroup
	errs := make(chan error, joiners)
	for n, j := range js {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := joinedWithAll(j, total); err != nil {
				errs <- fmt.Errorf("joiner %d: %v", n, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("box B: %d ring hits, %d Log reads, %d seeded", stB.LogRingHits.Load(), stB.LogReads.Load(), stB.LogSeeded.Load())
}

// TestColdJoinTimeout: a join whose Read does not answer within
// LogReadTimeout is answered from memory: the room's position and
// recovered:false where the box holds the room, an unavailable refusal
// for a command join (503 for a first join) where it holds nothing.
func TestColdJoinTimeout(t *testing.T) {
	store := memlog.New(memlog.Config{})
	addrA, _, _ := startLogged(t, store, session.Config{})
	fill(t, addrA, "r", 10)
	fill(t, addrA, "q", 3)
	// B's Ring keeps 5 messages a room: the first join seeds it with 6..10.
	addrB, stB, _ := startLogged(t, store, session.Config{HistorySize: 5, LogReadTimeout: 200 * time.Millisecond})
	live := v1Dial(t, addrB, "specialKey=live&room=r")
	live.expect("joined", "seq", 10)
	live.write(`{"type":"send","room":"r","text":"m11"}`)
	live.ackAndEcho()

	store.HoldReads(true)
	defer store.HoldReads(false)
	j := v1Dial(t, addrB, "specialKey=j&room=r")
	j.expect("joined")
	j.write(`{"type":"join","id":"old","room":"r","since":2,"epoch":"` + store.Epoch() + `"}`)
	j.expect("joined", "id", "old", "recovered", false, "seq", 11, "epoch", store.Epoch())
	j.write(`{"type":"join","id":"none","room":"q","history":3}`)
	e := j.expect("error", "id", "none", "code", 120)
	t.Logf("refusal: %v", e["reason"])
	if got := stB.LogReadTimeouts.Load(); got != 2 {
		t.Fatalf("%d timeouts counted, want 2", got)
	}
	if st := upgradeStatus(addrB, "specialKey=f&room=q&history=2&proto=v1"); st != 503 {
		t.Fatalf("a first join the box cannot place: status %d, want 503", st)
	}
	// The late Reads still seed the Ring once they return.
	seeded := stB.LogSeeded.Load()
	store.HoldReads(false)
	wstest.Eventually(t, 5*time.Second, "the late Reads seed the Ring", func() bool { return stB.LogSeeded.Load() >= seeded+3 })
	reads := stB.LogReads.Load()
	k := v1Dial(t, addrB, "specialKey=k&room=q&history=3")
	k.expect("joined", "seq", 3)
	for i := 1; i <= 3; i++ {
		k.expect("message", "seq", i)
	}
	if stB.LogReads.Load() != reads {
		t.Fatal("a join into a room a late Read seeded read the store")
	}
}

// TestColdJoinClosedWhileReading: a connection that goes away while its
// join waits leaves no waiting join, and the Read, when it returns, seeds
// the Ring; a queue past LogReadQueue answers from memory at once.
func TestColdJoinClosedWhileReading(t *testing.T) {
	store := memlog.New(memlog.Config{})
	addrA, _, _ := startLogged(t, store, session.Config{})
	fill(t, addrA, "r", 8)
	addrB, stB, _ := startLogged(t, store, session.Config{LogReads: 1, LogReadQueue: 1})
	conns := make([]*v1Client, 3)
	for i := range conns {
		conns[i] = v1Dial(t, addrB, fmt.Sprintf("specialKey=c%d&room=lobby", i))
		conns[i].expect("joined")
	}
	asked0, _ := store.Reads()
	store.HoldReads(true)
	conns[0].write(`{"type":"join","room":"r","history":5}`) // read, held
	waitingReads(t, store, 1)
	conns[1].write(`{"type":"join","room":"r","history":5}`) // queued
	wstest.Eventually(t, 5*time.Second, "two joins waiting", func() bool { return stB.LogReadsWaiting.Load() == 2 })
	conns[2].write(`{"type":"join","id":"shed","room":"r","history":5}`) // past the queue
	conns[2].expect("error", "id", "shed", "code", 120)
	// A first room past the queue, that the box holds nothing of: 503.
	if st := upgradeStatus(addrB, "specialKey=f&room=z&proto=v1"); st != 503 {
		t.Fatalf("a first join shed with nothing in memory: status %d, want 503", st)
	}
	if got := stB.LogReadsShed.Load(); got != 2 {
		t.Fatalf("%d joins shed, want 2", got)
	}
	conns[0].c.Conn.Close()
	conns[1].c.Conn.Close()
	wstest.Eventually(t, 5*time.Second, "the closed connections' joins dropped", func() bool {
		return stB.LogReadsWaiting.Load() == 0 && stB.Open.Load() == 1
	})
	store.HoldReads(false)
	wstest.Eventually(t, 5*time.Second, "the abandoned Read seeds the Ring", func() bool { return stB.LogSeeded.Load() == 8 })
	if asked, _ := store.Reads(); asked != asked0+1 {
		t.Fatalf("%d Reads, want 1 (the queued join of a closed connection is not read)", asked-asked0)
	}
	hits := stB.LogRingHits.Load()
	conns[2].write(`{"type":"join","room":"r","history":5}`)
	conns[2].expect("joined", "seq", 8)
	for i := 4; i <= 8; i++ {
		conns[2].expect("message", "seq", i)
	}
	if stB.LogRingHits.Load() != hits+1 {
		t.Fatal("the join after the seeding Read was not served from the Ring")
	}
}

// TestColdJoinSeedsRing: after a restart (a box that never had the room's
// messages delivered), the first join reads the store and the next ones,
// with since or history, are served from memory.
func TestColdJoinSeedsRing(t *testing.T) {
	store := memlog.New(memlog.Config{})
	addrA, _, _ := startLogged(t, store, session.Config{})
	fill(t, addrA, "r", 30)
	addrB, stB, _ := startLogged(t, store, session.Config{})
	a := v1Dial(t, addrB, "specialKey=a&room=r&since=25&epoch="+store.Epoch())
	a.expect("joined", "recovered", true, "seq", 30)
	for i := 26; i <= 30; i++ {
		a.expect("message", "seq", i)
	}
	if stB.LogReads.Load() != 1 || stB.LogSeeded.Load() != 30 {
		t.Fatalf("%d reads, %d seeded; want 1 and 30", stB.LogReads.Load(), stB.LogSeeded.Load())
	}
	hits := stB.LogRingHits.Load()
	for i, q := range []string{"since=3&epoch=" + store.Epoch(), "history=20"} {
		b := v1Dial(t, addrB, fmt.Sprintf("specialKey=b%d&room=r&%s", i, q))
		b.expect("joined", "seq", 30)
		from := 4
		if i == 1 {
			from = 11
		}
		for s := from; s <= 30; s++ {
			b.expect("message", "seq", s, "text", fmt.Sprintf("m%d", s))
		}
	}
	if got := stB.LogRingHits.Load() - hits; got != 2 || stB.LogReads.Load() != 1 {
		t.Fatalf("%d ring hits, %d reads after the first join; want 2 and 1", got, stB.LogReads.Load())
	}
	// Live messages after the seed reach everyone once.
	a.write(`{"type":"send","room":"r","text":"live"}`)
	a.ackAndEcho()
}

// TestColdJoinSeededAheadOfDelivery: a Read that returns messages the
// box's delivery has not brought yet seeds them; when they are delivered,
// members that were in the room before get each once, and members that
// replayed them (from the Read, or from the seeded Ring) do not get them
// again.
func TestColdJoinSeededAheadOfDelivery(t *testing.T) {
	store := memlog.New(memlog.Config{})
	addrA, _, _ := startLogged(t, store, session.Config{HistorySize: 5})
	s := v1Dial(t, addrA, "specialKey=s&room=r")
	s.expect("joined")
	send := func(text string) {
		s.write(`{"type":"send","room":"r","text":"` + text + `"}`)
		s.ackAndEcho()
	}
	for i := 1; i <= 10; i++ {
		send(fmt.Sprintf("m%d", i))
	}
	addrB, stB, boxB := startLogged(t, store, session.Config{HistorySize: 5})
	m0 := v1Dial(t, addrB, "specialKey=m0&room=r") // seeds B's Ring with 6..10
	m0.expect("joined", "seq", 10)
	boxB.Hold(true)
	for i := 11; i <= 15; i++ {
		send(fmt.Sprintf("m%d", i)) // ordered, not delivered to B yet
	}
	// since=2 is older than anything kept: not recovered, at seq 15; the
	// Read's 11..15 extend the Ring ahead of B's delivery.
	m1 := v1Dial(t, addrB, "specialKey=m1&room=r&since=2&epoch="+store.Epoch())
	m1.expect("joined", "recovered", false, "seq", 15)
	// Served from the seeded Ring.
	reads := stB.LogReads.Load()
	m2 := v1Dial(t, addrB, "specialKey=m2&room=r&history=3")
	m2.expect("joined", "seq", 15)
	for i := 13; i <= 15; i++ {
		m2.expect("message", "seq", i)
	}
	if stB.LogReads.Load() != reads {
		t.Fatal("the join after the seeding Read read the store")
	}
	boxB.Hold(false)
	send("m16")
	for i := 11; i <= 16; i++ {
		m0.expect("message", "seq", i, "text", fmt.Sprintf("m%d", i))
	}
	m1.expect("message", "seq", 16)
	m2.expect("message", "seq", 16)
	if n := stB.LogStale.Load(); n != 0 {
		t.Fatalf("%d deliveries dropped as stale, want 0", n)
	}
}

// TestColdJoinStoreAway: a Read that fails (the store is away) answers
// the join from memory, and a room the box holds nothing of starts in an
// epoch of the box's, so the box keeps admitting clients without its store.
func TestColdJoinStoreAway(t *testing.T) {
	store := memlog.New(memlog.Config{})
	addrA, _, _ := startLogged(t, store, session.Config{})
	fill(t, addrA, "r", 4)
	addrB, stB, _ := startLogged(t, store, session.Config{})
	store.SetReadError(chat.ErrUnavailable)
	j := v1Dial(t, addrB, "specialKey=j&room=r&since=2&epoch="+store.Epoch())
	m := j.expect("joined", "recovered", false, "seq", 0)
	if m["epoch"] == store.Epoch() || m["epoch"] == "" {
		t.Fatalf("joined %v: want an epoch of the box's own", m)
	}
	if got := stB.LogReadErrors.Load(); got != 1 {
		t.Fatalf("%d read errors counted, want 1", got)
	}
}

// TestColdJoinSuperseded: a first join that waits for the store displaces
// the connection that held its key when it began (a reconnect, 4001 for
// the old one), but never one that upgraded while it waited: that one
// stays, and the late join is refused with 409 before its 101.
func TestColdJoinSuperseded(t *testing.T) {
	store := memlog.New(memlog.Config{})
	addrA, _, _ := startLogged(t, store, session.Config{})
	fill(t, addrA, "r", 10)
	addrB, stB, _ := startLogged(t, store, session.Config{HistorySize: 5})
	h := v1Dial(t, addrB, "specialKey=h&room=home") // B's Ring holds home from now on
	h.expect("joined")
	h.write(`{"type":"send","room":"home","text":"hi"}`)
	h.ackAndEcho()
	held := v1Dial(t, addrB, "specialKey=held&room=home")
	held.expect("joined")

	store.HoldReads(true)
	defer store.HoldReads(false)
	late := func(key string) <-chan int {
		ch := make(chan int, 1)
		go func() {
			ch <- upgradeStatus(addrB, "specialKey="+key+"&room=r&since=2&epoch="+store.Epoch()+"&proto=v1")
		}()
		return ch
	}
	// k's first join waits; meanwhile a newer connection with k upgrades.
	kLate := late("k")
	waitingReads(t, store, 1)
	k := v1Dial(t, addrB, "specialKey=k&room=home")
	k.expect("joined", "room", "home")
	// held's first join waits too, but held was connected before it began.
	heldLate := late("held")
	waitingReads(t, store, 2)
	store.HoldReads(false)

	if st := <-kLate; st != 409 {
		t.Fatalf("the late first join of k: status %d, want 409 (k upgraded meanwhile)", st)
	}
	if st := <-heldLate; st != 101 {
		t.Fatalf("the late first join of held: status %d, want 101 (a reconnect replaces)", st)
	}
	if code := held.c.ExpectClose(t, 5*time.Second); code != 4001 {
		t.Fatalf("the connection the reconnect replaced closed with %d, want 4001", code)
	}
	// The newer k was not replaced: it still chats.
	k.write(`{"type":"send","id":"still","room":"home","text":"still here"}`)
	ack, _ := k.ackAndEcho()
	if ack["id"] != "still" {
		t.Fatalf("k's send after the refused join: %v", ack)
	}
	if stB.Kicks.Load() != 1 {
		t.Fatalf("%d replaces, want 1 (held's)", stB.Kicks.Load())
	}
}
