package cluster_test

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/internal/natstest"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/session"
)

// A text sent on one box reaches every member of its room on every box,
// once, in order, as gzip or text per recipient; other rooms hear nothing.
func TestRoomsSpanBoxes(t *testing.T) {
	_, boxes := startCluster(t, 3)
	type member struct {
		c    *wstest.Client
		gzip bool
	}
	var lobby, other, global []member
	for i, b := range boxes {
		for _, gz := range []bool{false, true} {
			q := fmt.Sprintf("specialKey=lobby-%d-%v&room=lobby", i, gz)
			o := fmt.Sprintf("specialKey=other-%d-%v&room=lobby.x", i, gz)
			g := fmt.Sprintf("specialKey=global-%d-%v", i, gz)
			if gz {
				q, o, g = q+"&support_gzip=1", o+"&support_gzip=1", g+"&support_gzip=1"
			}
			lobby = append(lobby, member{wstest.Dial(t, b.addr(), q), gz})
			other = append(other, member{wstest.Dial(t, b.addr(), o), gz})
			global = append(global, member{wstest.Dial(t, b.addr(), g), gz})
		}
	}
	syncAll(t, boxes)

	// One sender per box, interleaved: each sender's order must hold on
	// every box.
	const perSender = 30
	var wg sync.WaitGroup
	for s := 0; s < 3; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for i := 0; i < perSender; i++ {
				if err := lobby[2*s].c.WriteText(fmt.Sprintf("s%d-%d", s, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}(s)
	}
	wg.Wait()
	for mi, m := range lobby {
		next := [3]int{}
		for n := 0; n < 3*perSender; n++ {
			got, op, err := m.c.ReadMessage(5 * time.Second)
			if err != nil {
				t.Fatalf("member %d after %d: %v", mi, n, err)
			}
			if (op == 2) != m.gzip {
				t.Fatalf("member %d (gzip %v) got opcode %v", mi, m.gzip, op)
			}
			var s, i int
			if _, err := fmt.Sscanf(got, "s%d-%d", &s, &i); err != nil {
				t.Fatalf("member %d got %q", mi, got)
			}
			if i != next[s] {
				t.Fatalf("member %d: sender %d's message %d came when %d was due", mi, s, i, next[s])
			}
			next[s]++
		}
		expectSilence(t, m.c, 50*time.Millisecond) // nothing twice
	}
	for _, m := range append(other, global...) {
		expectSilence(t, m.c, 20*time.Millisecond)
	}

	// The global room is a room too.
	global[0].c.WriteText("hello everyone")
	for _, m := range global {
		expectText(t, m.c, "hello everyone", m.gzip)
	}
	for _, m := range other {
		expectSilence(t, m.c, 20*time.Millisecond)
	}
	// A room with a dot in its name.
	other[5].c.WriteText("dotted")
	for _, m := range other {
		expectText(t, m.c, "dotted", m.gzip)
	}

	// Each box gzips at most once per broadcast it delivers.
	const want = 3*perSender + 2
	wstest.Eventually(t, 5*time.Second, "broadcasts counted", func() bool {
		var n uint64
		for _, b := range boxes {
			n += b.hub().Stats().Broadcasts.Load()
		}
		return n == want
	})
	var gz, sent uint64
	for _, b := range boxes {
		gz += b.hub().Stats().GzipEncodings.Load()
		sent += b.hub().Stats().Broadcasts.Load()
		if d := b.br.Stats().Dropped(cluster.DropOwn); d != 0 {
			t.Errorf("%s saw %d of its own messages", b.id, d)
		}
	}
	if sent != want || gz > 3*sent {
		t.Errorf("broadcasts %d, gzip encodings %d", sent, gz)
	}
}

// Only the text crosses: every box with gzip members builds the frame
// once per broadcast, and a frame carried on the bus (as earlier boxes
// sent, or forged to say something else) is never served.
func TestGzipBuiltPerBox(t *testing.T) {
	ns, boxes := startCluster(t, 3)
	var cs []*wstest.Client
	for i, b := range boxes {
		cs = append(cs, wstest.Dial(t, b.addr(), fmt.Sprintf("specialKey=g%d&support_gzip=1", i)))
		cs = append(cs, wstest.Dial(t, b.addr(), fmt.Sprintf("specialKey=t%d", i)))
	}
	syncAll(t, boxes)
	const n = 20
	for i := 0; i < n; i++ {
		cs[2].WriteText(fmt.Sprintf("carried %d", i))
	}
	for i, c := range cs {
		for j := 0; j < n; j++ {
			expectText(t, c, fmt.Sprintf("carried %d", j), i%2 == 0)
		}
	}
	var gz uint64
	for _, b := range boxes {
		gz += b.hub().Stats().GzipEncodings.Load()
	}
	if gz != 3*n {
		t.Errorf("gzip encodings across the cluster: %d for %d broadcasts, want one per box each", gz, n)
	}

	// A carried frame whose gzip trailer matches the text but whose
	// deflate stream says something else.
	forged := codec.AppendGzipFrame(nil, []byte("forged!"))
	body := forged[2:]
	text := []byte("genuine")
	binary.LittleEndian.PutUint32(body[len(body)-8:], crc32.ChecksumIEEE(text))
	m := cluster.Message{Kind: cluster.KindRoom, BoxID: "old", Target: "", Text: text, Gzip: forged}
	nc := rawNATS(t, ns.ClientURL())
	if err := nc.Publish("wsd.room.=", m.Append(nil)); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	for i, c := range cs {
		expectText(t, c, "genuine", i%2 == 0)
	}
}

// POST /publish's three targets, from one box, reach the other boxes.
func TestPublishAcrossBoxes(t *testing.T) {
	_, boxes := startCluster(t, 3)
	alice := wstest.Dial(t, boxes[2].addr(), "specialKey=alice&room=r1")
	r1 := wstest.Dial(t, boxes[1].addr(), "specialKey=bob&room=r1&support_gzip=1")
	g := wstest.Dial(t, boxes[1].addr(), "specialKey=carol")
	r2 := wstest.Dial(t, boxes[0].addr(), "specialKey=dave&room=r2")
	syncAll(t, boxes)
	hub := boxes[0].hub()

	// A room message is stamped by this box's ring, with or without members here.
	if d := hub.Publish("r1", []byte("to r1")); d.Local != 0 || d.Cluster != session.ClusterSent || d.Seq != 1 || d.Epoch == "" {
		t.Fatalf("room publish: %+v", d)
	}
	expectText(t, alice, "to r1", false)
	expectText(t, r1, "to r1", true)

	if d := hub.PublishAll([]byte("to all")); d != (session.Delivery{Local: 1, Cluster: session.ClusterSent}) {
		t.Fatalf("publish to *: %+v", d)
	}
	for _, c := range []*wstest.Client{alice, g, r2} {
		expectText(t, c, "to all", false)
	}
	expectText(t, r1, "to all", true)

	if d := hub.SendTo("alice", []byte("psst")); d != (session.Delivery{Local: 0, Cluster: session.ClusterSent}) {
		t.Fatalf("key publish: %+v", d)
	}
	expectText(t, alice, "psst", false)
	if d := hub.SendTo("dave", []byte("here")); d != (session.Delivery{Local: 1, Cluster: session.ClusterLocal}) {
		t.Fatalf("dave is on this box: %+v", d)
	}
	expectText(t, r2, "here", false)
	for _, c := range []*wstest.Client{r1, g} {
		expectSilence(t, c, 30*time.Millisecond)
	}
	// Only the box holding alice took the direct message.
	if d := boxes[1].br.Stats().RemoteDeliveries.Load(); d != 2 { // to r1, to all
		t.Errorf("box1 remote deliveries %d, want 2", d)
	}
}

// A new connection with a key held on another box replaces it (4001).
func TestKickAcrossBoxes(t *testing.T) {
	// Box0's wall clock runs ahead, so that its connection's claim has a
	// higher stamp than the newer one box2 makes: the newer connection
	// must still win, through box0's hold and box2's second claim.
	ns := natstest.Start(t, nil)
	boxes := []*box{startSkewed(t, ns.ClientURL(), "box0", 500*time.Millisecond),
		startBox(t, ns.ClientURL(), "box1"), startBox(t, ns.ClientURL(), "box2")}
	for _, b := range boxes {
		wstest.Eventually(t, 5*time.Second, "bridge connected", b.br.Stats().Connected.Load)
	}
	old := wstest.Dial(t, boxes[0].addr(), "specialKey=k")
	// The claim follows the 101 by a moment: wait until it has passed
	// NATS, or the two connects are a race (see TestKickRace).
	syncAll(t, boxes[:1])
	holdsBefore := boxes[2].br.Stats().ClaimsReceived.Load()
	newer := wstest.Dial(t, boxes[2].addr(), "specialKey=k")
	defer func() {
		if t.Failed() {
			for _, b := range boxes {
				st := b.br.Stats()
				t.Logf("%s: claims sent %d received %d, kicks %d", b.id, st.ClaimsSent.Load(), st.ClaimsReceived.Load(), st.RemoteKicks.Load())
			}
		}
	}()
	if code := old.ExpectClose(t, 5*time.Second); code != 4001 {
		t.Fatalf("old connection closed with %d, want 4001", code)
	}
	expectSilence(t, newer, 100*time.Millisecond)
	newer.WriteText("still here")
	expectText(t, newer, "still here", false)
	if k := boxes[0].br.Stats().RemoteKicks.Load(); k != 1 {
		t.Errorf("box0 remote kicks %d", k)
	}
	if h := boxes[2].br.Stats().ClaimsReceived.Load() - holdsBefore; h != 1 {
		t.Errorf("box2 received %d key messages, want 1 (box0's hold)", h)
	}
	// And back the other way: the next one on box0 wins.
	third := wstest.Dial(t, boxes[0].addr(), "specialKey=k")
	if code := newer.ExpectClose(t, 5*time.Second); code != 4001 {
		t.Fatalf("second connection closed with %d, want 4001", code)
	}
	third.WriteText("mine")
	expectText(t, third, "mine", false)
}

// Two (or three) connects with one key on different boxes at nearly the
// same moment leave exactly one open, every time.
func TestKickRace(t *testing.T) {
	_, boxes := startCluster(t, 3)
	rounds := 60
	if testing.Short() {
		rounds = 15
	}
	open := func() int64 {
		var n int64
		for _, b := range boxes {
			n += b.hub().Stats().Open.Load()
		}
		return n
	}
	wins := map[int]int{}
	for r := 0; r < rounds; r++ {
		key := fmt.Sprintf("race%d", r)
		n := 2 + r%2 // two or three boxes
		cs := make([]*wstest.Client, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				c, _, err := wstest.TryDial(boxes[(r+i)%3].addr(), "specialKey="+key)
				if err != nil {
					t.Error(err)
					return
				}
				cs[i] = c
			}(i)
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}
		wstest.Eventually(t, 5*time.Second, fmt.Sprintf("round %d: one connection left", r), func() bool { return open() == 1 })
		// Closed ones got 4001; the survivor gets nothing and stays.
		survivor := -1
		for i, c := range cs {
			f, err := c.ReadFrame(150 * time.Millisecond)
			if err != nil {
				if survivor >= 0 {
					t.Fatalf("round %d: two survivors", r)
				}
				survivor = i
				continue
			}
			if f.CloseCode() != 4001 {
				t.Fatalf("round %d: connection %d got %v %d", r, i, f.Op, f.CloseCode())
			}
		}
		if survivor < 0 {
			t.Fatalf("round %d: nobody survived", r)
		}
		wins[survivor]++
		if open() != 1 {
			t.Fatalf("round %d: %d open after settling", r, open())
		}
		for _, c := range cs {
			c.Conn.Close()
		}
		wstest.Eventually(t, 5*time.Second, "connections gone", func() bool { return open() == 0 })
	}
	var claims, kicks uint64
	for _, b := range boxes {
		claims += b.br.Stats().ClaimsSent.Load()
		kicks += b.br.Stats().RemoteKicks.Load()
	}
	t.Logf("survivor by dial order: %v; claims, holds and announces sent: %d; remote kicks: %d", wins, claims, kicks)
}

// NATS going away never takes local chat down; what could not cross is
// counted; the cluster heals when NATS is back.
func TestNATSRestart(t *testing.T) {
	ns, boxes := startCluster(t, 3)
	a0 := wstest.Dial(t, boxes[0].addr(), "specialKey=a0&room=r")
	b0 := wstest.Dial(t, boxes[0].addr(), "specialKey=b0&room=r&support_gzip=1")
	a1 := wstest.Dial(t, boxes[1].addr(), "specialKey=a1&room=r")
	syncAll(t, boxes)
	a0.WriteText("before")
	for _, c := range []*wstest.Client{a0, a1} {
		expectText(t, c, "before", false)
	}
	expectText(t, b0, "before", true)

	natsPort := ns.Addr().(*netTCPAddr).Port
	ns.Shutdown()
	for _, b := range boxes {
		wstest.Eventually(t, 5*time.Second, "bridge noticed", func() bool { return !b.br.Stats().Connected.Load() })
	}
	for i := 0; i < 10; i++ {
		a0.WriteText(fmt.Sprintf("during %d", i))
	}
	for i := 0; i < 10; i++ {
		expectText(t, a0, fmt.Sprintf("during %d", i), false)
		expectText(t, b0, fmt.Sprintf("during %d", i), true)
	}
	expectSilence(t, a1, 50*time.Millisecond)
	if d := boxes[0].br.Stats().Dropped(cluster.DropDisconnected); d < 10 {
		t.Errorf("dropped while disconnected: %d, want ≥ 10", d)
	}
	// New local connections and kicks keep working too.
	c := wstest.Dial(t, boxes[1].addr(), "specialKey=late&room=r")

	natstest.Start(t, &natsserver.Options{Port: natsPort})
	for _, b := range boxes {
		wstest.Eventually(t, 10*time.Second, "bridge reconnected", b.br.Stats().Connected.Load)
		if b.br.Stats().Reconnects.Load() < 1 {
			t.Errorf("%s: no reconnect counted", b.id)
		}
	}
	syncAll(t, boxes)
	a1.WriteText("after")
	for _, c := range []*wstest.Client{a0, a1, c} {
		expectText(t, c, "after", false)
	}
	expectText(t, b0, "after", true)
}

// Garbage on the bus is dropped and counted, and chat goes on.
func TestMalformedOnBus(t *testing.T) {
	ns, boxes := startCluster(t, 2, func(c *cluster.Config, _ *serverConfig) { c.MaxMessage = 64 })
	a := wstest.Dial(t, boxes[0].addr(), "specialKey=a&room=lobby")
	b := wstest.Dial(t, boxes[1].addr(), "specialKey=b&room=lobby&support_gzip=1")
	syncAll(t, boxes)
	nc := rawNATS(t, ns.ClientURL())
	subj := "wsd.room.lobby"
	good := func(text string) []byte {
		m := cluster.Message{Kind: cluster.KindRoom, BoxID: "evil", Target: "lobby", Text: []byte(text)}
		return m.Append(nil)
	}
	bad := map[int][][]byte{
		cluster.DropMalformed: {nil, {1}, {1, 1, 0, 0}, good("x")[:9], {1, 99, 0, 4, 'e', 'v', 'i', 'l'}},
		cluster.DropVersion:   {append([]byte{2}, good("x")[1:]...), []byte("hello")},
		cluster.DropTooLarge:  {good(strings.Repeat("x", 65))},
		cluster.DropInvalid: {
			good("\xff\xfe"),
			(&cluster.Message{Kind: cluster.KindRoom, BoxID: "evil", Target: "bad room", Text: []byte("x")}).Append(nil),
			(&cluster.Message{Kind: cluster.KindRoom, BoxID: "evil", Target: "other", Text: []byte("x")}).Append(nil),
		},
	}
	total := 0
	for _, msgs := range bad {
		for _, p := range msgs {
			if err := nc.Publish(subj, p); err != nil {
				t.Fatal(err)
			}
			total++
		}
	}
	nc.Publish(subj, good("from a stranger"))
	nc.Flush()
	expectText(t, a, "from a stranger", false)
	expectText(t, b, "from a stranger", true)
	for reason, msgs := range bad {
		for _, bx := range boxes {
			if got := bx.br.Stats().Dropped(reason); got != uint64(len(msgs)) {
				t.Errorf("%s: dropped %s = %d, want %d", bx.id, cluster.DropReasons[reason], got, len(msgs))
			}
		}
	}
	a.WriteText("still fine")
	expectText(t, a, "still fine", false)
	expectText(t, b, "still fine", true)
}

// A box that leaves takes its subscriptions with it; churn leaves
// goroutines and subscriptions where they started (a room's presence
// subject once its last member's presence grace is over).
func TestChurnAndLeave(t *testing.T) {
	ns, boxes := startCluster(t, 3, func(_ *cluster.Config, s *serverConfig) { s.Session.PresenceGrace = 100 * time.Millisecond })
	syncAll(t, boxes)
	baseSubs := ns.NumSubscriptions()
	baseG := runtime.NumGoroutine()
	for round := 0; round < 3; round++ {
		var cs []*wstest.Client
		for i := 0; i < 60; i++ {
			b := boxes[i%3]
			cs = append(cs, wstest.Dial(t, b.addr(), fmt.Sprintf("specialKey=c%d-%d&room=room%d", round, i, i%7)))
		}
		syncAll(t, boxes)
		// 7 rooms on each box (their messages and their presence) plus
		// one key per connection.
		want := baseSubs + 3*7*2 + 60
		wstest.Eventually(t, 5*time.Second, "subscriptions", func() bool { return ns.NumSubscriptions() == want })
		if got := ns.NumSubscriptions(); got != want {
			t.Errorf("round %d: subscriptions with 60 members: %d, want %d", round, got, want)
			for _, b := range boxes {
				st := b.br.Stats()
				t.Logf("%s: rooms %d keys %d open %d", b.id, st.RoomSubscriptions.Load(), st.KeySubscriptions.Load(), b.hub().Stats().Open.Load())
			}
		}
		cs[0].WriteText("x")
		for _, c := range cs {
			c.Conn.Close()
		}
		for _, b := range boxes {
			wstest.Eventually(t, 5*time.Second, "connections gone", func() bool { return b.hub().Stats().Open.Load() == 0 })
		}
		syncAll(t, boxes)
		wstest.Eventually(t, 5*time.Second, "subscriptions back after churn", func() bool { return ns.NumSubscriptions() == baseSubs })
	}
	for _, b := range boxes {
		if s := b.br.Stats().Subscriptions.Load(); s != 2 {
			t.Errorf("%s counts %d subscriptions, want 2 (the all and boxes subjects)", b.id, s)
		}
	}
	wstest.Eventually(t, 5*time.Second, "goroutines back", func() bool { return runtime.NumGoroutine() <= baseG+2 })

	// Box 2 leaves with members: its subscriptions go.
	wstest.Dial(t, boxes[2].addr(), "specialKey=leaver&room=gone")
	wstest.Eventually(t, 5*time.Second, "room, its presence and key subscribed", func() bool { return ns.NumSubscriptions() == baseSubs+3 })
	shutdownBox(t, boxes[2])
	wstest.Eventually(t, 5*time.Second, "box 2's subscriptions gone", func() bool {
		return ns.NumSubscriptions() == baseSubs-2
	})
}

// NATS unreachable at start: the box serves local chat, then joins the
// cluster when NATS appears.
func TestNATSLateAtStart(t *testing.T) {
	ns := natstest.Start(t, nil)
	port := ns.Addr().(*netTCPAddr).Port
	url := ns.ClientURL()
	ns.Shutdown()
	b0 := startBox(t, url, "early")
	a := wstest.Dial(t, b0.addr(), "specialKey=a")
	a.WriteText("alone")
	expectText(t, a, "alone", false)
	if b0.br.Stats().Connected.Load() {
		t.Fatal("connected to nothing")
	}
	natstest.Start(t, &natsserver.Options{Port: port})
	b1 := startBox(t, url, "late")
	wstest.Eventually(t, 10*time.Second, "early box connected", b0.br.Stats().Connected.Load)
	wstest.Eventually(t, 10*time.Second, "late box connected", b1.br.Stats().Connected.Load)
	c := wstest.Dial(t, b1.addr(), "specialKey=c")
	syncAll(t, []*box{b0, b1})
	c.WriteText("together")
	expectText(t, c, "together", false)
	expectText(t, a, "together", false)
}

// A box that cannot keep up with the bus: the NATS client drops what does
// not fit in the inbox, and every message is either delivered or counted
// as dropped; the episode is counted (and logged) once.
func TestSlowConsumerCounted(t *testing.T) {
	ns, boxes := startCluster(t, 1, func(c *cluster.Config, _ *serverConfig) { c.Inbox = 4 })
	wstest.Dial(t, boxes[0].addr(), "specialKey=a&room=flood")
	syncAll(t, boxes)
	nc := rawNATS(t, ns.ClientURL())
	const n = 20000
	msg := (&cluster.Message{Kind: cluster.KindRoom, BoxID: "other", Target: "flood", Text: []byte("x")}).Append(nil)
	for i := 0; i < n; i++ {
		nc.Publish("wsd.room.flood", msg)
	}
	nc.Flush()
	st := boxes[0].br.Stats()
	wstest.Eventually(t, 10*time.Second, "every message delivered or counted", func() bool {
		return st.Received.Load()+st.Dropped(cluster.DropSlowConsumer) == n
	})
	if st.SlowConsumer.Load() < 1 || st.Dropped(cluster.DropSlowConsumer) == 0 {
		t.Fatalf("episodes %d, dropped %d", st.SlowConsumer.Load(), st.Dropped(cluster.DropSlowConsumer))
	}
	t.Logf("received %d, dropped as slow consumer %d in %d episode(s)", st.Received.Load(), st.Dropped(cluster.DropSlowConsumer), st.SlowConsumer.Load())
}

// A claim stamped at the end of the clock's range, injected on the bus,
// is dropped: it would drag every box's clock there (and wrap it), so that
// no later claim could ever win again. Kicks across boxes keep working.
func TestForgedStampDropped(t *testing.T) {
	ns, boxes := startCluster(t, 2)
	holder := wstest.Dial(t, boxes[0].addr(), "specialKey=victim")
	syncAll(t, boxes)
	nc := rawNATS(t, ns.ClientURL())
	forged := cluster.Message{Kind: cluster.KindClaim, BoxID: "evil", Target: "victim", Stamp: 1<<64 - 1}
	if err := nc.Publish("wsd.key."+cluster.KeyToken("victim"), forged.Append(nil)); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	wstest.Eventually(t, 5*time.Second, "forged claim dropped", func() bool {
		return boxes[0].br.Stats().Dropped(cluster.DropInvalid) == 1
	})
	expectSilence(t, holder, 100*time.Millisecond) // not kicked by the forgery
	newer := wstest.Dial(t, boxes[1].addr(), "specialKey=victim")
	if code := holder.ExpectClose(t, 5*time.Second); code != 4001 {
		t.Fatalf("holder closed with %d, want 4001 for the newer connection", code)
	}
	newer.WriteText("mine now")
	expectText(t, newer, "mine now", false)
}
