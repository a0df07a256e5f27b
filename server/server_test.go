package server_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

// start runs wsd in-process with cfg and returns its address and counters.
func start(t *testing.T, cfg session.Config) (*server.Server, string, *session.Stats) {
	t.Helper()
	srv := testserver.Start(t, server.Config{Session: cfg})
	return srv, srv.Addr().String(), srv.Hub().Stats()
}

// expectText reads one frame and checks it is exactly the text frame s.
func expectText(t *testing.T, c *wstest.Client, who, s string) {
	t.Helper()
	f, err := c.ReadFrame(wstest.DefaultTimeout)
	if err != nil {
		t.Fatalf("%s: waiting for %q: %v", who, s, err)
	}
	if f.Op != ws.OpText || !f.Fin || string(f.Payload) != s {
		t.Fatalf("%s: got op %v fin %v %.60q, want text frame %q", who, f.Op, f.Fin, f.Payload, s)
	}
}

// expectGzip reads one frame and checks it is one binary frame holding the
// gzip of s.
func expectGzip(t *testing.T, c *wstest.Client, who, s string) {
	t.Helper()
	f, err := c.ReadFrame(wstest.DefaultTimeout)
	if err != nil {
		t.Fatalf("%s: waiting for gzip'd %q: %v", who, s, err)
	}
	if f.Op != ws.OpBinary || !f.Fin {
		t.Fatalf("%s: got op %v fin %v %.60q, want one binary frame", who, f.Op, f.Fin, f.Payload)
	}
	got, err := wstest.Gunzip(f.Payload)
	if err != nil || got != s {
		t.Fatalf("%s: binary frame gunzips to %.60q (%v), want %q", who, got, err, s)
	}
}

// expectCloseFrame reads up to the close frame and checks its code (and
// reason, unless reason is "*").
func expectCloseFrame(t *testing.T, c *wstest.Client, who string, code int, reason string) {
	t.Helper()
	f, err := c.ReadClose(wstest.DefaultTimeout)
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	if got := f.CloseCode(); got != code {
		t.Fatalf("%s: close %d %q, want %d", who, got, f.Payload[min(2, len(f.Payload)):], code)
	}
	if reason != "*" && len(f.Payload) >= 2 && string(f.Payload[2:]) != reason {
		t.Fatalf("%s: close reason %q, want %q", who, f.Payload[2:], reason)
	}
}

type peer struct {
	name string
	c    *wstest.Client
	gzip bool
}

func dialPeers(t *testing.T, addr, prefix string, n int, gzip func(i int) bool, extra string) []peer {
	t.Helper()
	peers := make([]peer, n)
	for i := range peers {
		q := fmt.Sprintf("specialKey=%s%d%s", prefix, i, extra)
		g := gzip(i)
		if g {
			q += "&support_gzip=1"
		}
		peers[i] = peer{name: fmt.Sprintf("%s%d", prefix, i), c: wstest.Dial(t, addr, q), gzip: g}
	}
	return peers
}

// expectAll checks that every peer receives s in the form it asked for.
func expectAll(t *testing.T, peers []peer, s string) {
	t.Helper()
	for _, p := range peers {
		if p.gzip {
			expectGzip(t, p.c, p.name, s)
		} else {
			expectText(t, p.c, p.name, s)
		}
	}
}

// TestBroadcastReachesEveryoneInTheirFormat: a text message goes to every
// member of the room, the sender included; gzip peers get one binary frame
// holding the gzip of the text, the others the text frame. A gzip'd binary
// message from a client is broadcast as text. Rooms are separate.
func TestBroadcastReachesEveryoneInTheirFormat(t *testing.T) {
	_, addr, stats := start(t, session.Config{})
	peers := dialPeers(t, addr, "p", 6, func(i int) bool { return i%2 == 1 }, "")
	other := dialPeers(t, addr, "r", 2, func(i int) bool { return i == 1 }, "&room=side")
	wstest.Eventually(t, 5*time.Second, "8 open", func() bool { return stats.Open.Load() == 8 })

	// A plain client sends text.
	if err := peers[0].c.WriteText("hello, world"); err != nil {
		t.Fatal(err)
	}
	expectAll(t, peers, "hello, world")

	// A gzip client sends gzip'd binary: everyone gets the text again.
	msg := "héllo from a gzip client " + strings.Repeat("z", 300)
	if err := peers[1].c.WriteFrame(true, ws.OpBinary, wstest.Gzip(msg)); err != nil {
		t.Fatal(err)
	}
	expectAll(t, peers, msg)

	// An empty text message is a message too.
	if err := peers[2].c.WriteText(""); err != nil {
		t.Fatal(err)
	}
	expectAll(t, peers, "")

	// The side room hears only its own messages.
	if err := other[0].c.WriteText("side talk"); err != nil {
		t.Fatal(err)
	}
	expectAll(t, other, "side talk")
	if err := peers[3].c.WriteText("global again"); err != nil {
		t.Fatal(err)
	}
	expectAll(t, peers, "global again")
	for _, p := range other {
		if f, err := p.c.ReadFrame(200 * time.Millisecond); err == nil {
			t.Errorf("%s in room side got a global message: op %v %q", p.name, f.Op, f.Payload)
		}
	}
	if got := stats.Broadcasts.Load(); got != 5 {
		t.Errorf("Broadcasts = %d, want 5", got)
	}
}

// TestGzipEncodedOncePerBroadcast: however many gzip peers a room has, each
// broadcast is compressed exactly once; with no gzip peer, never.
func TestGzipEncodedOncePerBroadcast(t *testing.T) {
	const n = 50
	for _, tc := range []struct {
		name        string
		gzipPeers   int
		plainPeers  int
		wantEncoded int
	}{
		{"many gzip peers", 40, 3, n},
		{"no gzip peer", 0, 5, 0},
		{"only gzip peers", 10, 0, n},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr, stats := start(t, session.Config{Shards: 8})
			peers := dialPeers(t, addr, "g", tc.gzipPeers, func(int) bool { return true }, "")
			peers = append(peers, dialPeers(t, addr, "t", tc.plainPeers, func(int) bool { return false }, "")...)
			wstest.Eventually(t, 5*time.Second, "all open", func() bool { return stats.Open.Load() == int64(len(peers)) })
			for i := 0; i < n; i++ {
				msg := fmt.Sprintf("broadcast %d %s", i, strings.Repeat("ab", i))
				if err := peers[i%len(peers)].c.WriteText(msg); err != nil {
					t.Fatal(err)
				}
				expectAll(t, peers, msg)
			}
			b, g := stats.Broadcasts.Load(), stats.GzipEncodings.Load()
			if b != n {
				t.Errorf("Broadcasts = %d, want %d", b, n)
			}
			if g != uint64(tc.wantEncoded) {
				t.Errorf("GzipEncodings = %d after %d broadcasts to %d gzip peers, want %d", g, b, tc.gzipPeers, tc.wantEncoded)
			}
		})
	}
}

// TestPerSenderOrder: several senders at once; every receiver sees each
// sender's sequence numbers in order, none missing, none duplicated.
func TestPerSenderOrder(t *testing.T) {
	const (
		senders   = 4
		receivers = 4 // besides the senders, who receive too
		perSender = 300
	)
	_, addr, stats := start(t, session.Config{Shards: 4})
	send := dialPeers(t, addr, "s", senders, func(i int) bool { return i%2 == 0 }, "")
	recv := dialPeers(t, addr, "r", receivers, func(i int) bool { return i%2 == 1 }, "")
	all := append(append([]peer(nil), send...), recv...)
	wstest.Eventually(t, 5*time.Second, "all open", func() bool { return stats.Open.Load() == int64(len(all)) })

	var wg sync.WaitGroup
	errs := make(chan error, len(all)+senders)
	for _, p := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := make([]int, senders)
			for got := 0; got < senders*perSender; got++ {
				text, op, err := p.c.ReadMessage(10 * time.Second)
				if err != nil {
					errs <- fmt.Errorf("%s after %d messages: %v", p.name, got, err)
					return
				}
				if want := map[bool]ws.OpCode{true: ws.OpBinary, false: ws.OpText}[p.gzip]; op != want {
					errs <- fmt.Errorf("%s: message %q as %v, want %v", p.name, text, op, want)
					return
				}
				var s, seq int
				if _, err := fmt.Sscanf(text, "s%d %d", &s, &seq); err != nil || s < 0 || s >= senders {
					errs <- fmt.Errorf("%s: unexpected message %q", p.name, text)
					return
				}
				if seq != next[s] {
					errs <- fmt.Errorf("%s: from sender %d got seq %d, want %d", p.name, s, seq, next[s])
					return
				}
				next[s]++
			}
		}()
	}
	for i, p := range send {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; seq < perSender; seq++ {
				if err := p.c.WriteText("s" + strconv.Itoa(i) + " " + strconv.Itoa(seq)); err != nil {
					errs <- fmt.Errorf("sender %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := stats.Broadcasts.Load(); got != senders*perSender {
		t.Errorf("Broadcasts = %d, want %d", got, senders*perSender)
	}
}

// TestDuplicateKeyKicksOldConnection: the second connection with a key
// replaces the first, which gets 4001 "replaced" and then EOF; the new one
// keeps receiving.
func TestDuplicateKeyKicksOldConnection(t *testing.T) {
	_, addr, stats := start(t, session.Config{})
	other := wstest.Dial(t, addr, "specialKey=other")
	old := wstest.Dial(t, addr, "specialKey=dup")
	if err := old.WriteText("from old"); err != nil {
		t.Fatal(err)
	}
	expectText(t, old, "old", "from old")
	expectText(t, other, "other", "from old")

	fresh := wstest.Dial(t, addr, "specialKey=dup&support_gzip=1")
	expectCloseFrame(t, old, "old", 4001, "replaced")
	if err := old.WaitEOF(wstest.DefaultTimeout); err != nil {
		t.Fatalf("old after 4001: %v", err)
	}
	if got := stats.Kicks.Load(); got != 1 {
		t.Errorf("Kicks = %d, want 1", got)
	}
	wstest.Eventually(t, 5*time.Second, "2 open", func() bool { return stats.Open.Load() == 2 })

	if err := other.WriteText("after kick"); err != nil {
		t.Fatal(err)
	}
	expectText(t, other, "other", "after kick")
	expectGzip(t, fresh, "fresh", "after kick")
	if err := fresh.WriteFrame(true, ws.OpBinary, wstest.Gzip("fresh speaks")); err != nil {
		t.Fatal(err)
	}
	expectGzip(t, fresh, "fresh", "fresh speaks")
	expectText(t, other, "other", "fresh speaks")
}

// TestConcurrentSameKeyDialsLeaveOne: many dials with one key at once end
// with exactly one open connection, the only one that hears a broadcast;
// every other one got 4001.
func TestConcurrentSameKeyDialsLeaveOne(t *testing.T) {
	const n = 20
	_, addr, stats := start(t, session.Config{})
	clients := make([]*wstest.Client, n)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := wstest.TryDial(addr, "specialKey=same")
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	for _, c := range clients {
		if c != nil {
			t.Cleanup(func() { c.Conn.Close() })
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	sender := wstest.Dial(t, addr, "specialKey=sender")
	wstest.Eventually(t, 5*time.Second, "exactly the survivor and the sender open", func() bool {
		return stats.Open.Load() == 2
	})
	if got := stats.Kicks.Load(); got != n-1 {
		t.Errorf("Kicks = %d, want %d", got, n-1)
	}
	if err := sender.WriteText("who is there"); err != nil {
		t.Fatal(err)
	}
	expectText(t, sender, "sender", "who is there")

	type result struct {
		text string
		code int
		err  error
	}
	results := make(chan result, n)
	for _, c := range clients {
		go func() {
			f, err := c.ReadFrame(wstest.DefaultTimeout)
			switch {
			case err != nil:
				results <- result{err: err}
			case f.Op == ws.OpClose:
				results <- result{code: f.CloseCode()}
			default:
				results <- result{text: string(f.Payload)}
			}
		}()
	}
	heard, kicked := 0, 0
	for range n {
		r := <-results
		switch {
		case r.err != nil:
			t.Errorf("client read: %v", r.err)
		case r.code == 4001:
			kicked++
		case r.text == "who is there":
			heard++
		default:
			t.Errorf("client got close %d / text %q", r.code, r.text)
		}
	}
	if heard != 1 || kicked != n-1 {
		t.Errorf("%d clients heard the broadcast and %d were kicked; want 1 and %d", heard, kicked, n-1)
	}
}

// TestPingPongAndCloseHandshake: pings are answered with the same payload;
// a client's close is echoed with its code and the server closes TCP; an
// empty close is answered with an empty close.
func TestPingPongAndCloseHandshake(t *testing.T) {
	srv, addr, stats := start(t, session.Config{})

	t.Run("ping", func(t *testing.T) {
		c := wstest.Dial(t, addr, "specialKey=pinger")
		for _, payload := range []string{"", "x", "ping payload \x00\xff", strings.Repeat("p", 125)} {
			if err := c.WriteFrame(true, ws.OpPing, []byte(payload)); err != nil {
				t.Fatal(err)
			}
			f, err := c.ReadFrame(wstest.DefaultTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if f.Op != ws.OpPong || string(f.Payload) != payload {
				t.Fatalf("ping %q answered with op %v %q", payload, f.Op, f.Payload)
			}
		}
		// An unsolicited pong is ignored.
		if err := c.WriteFrame(true, ws.OpPong, []byte("unsolicited")); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteText("still here"); err != nil {
			t.Fatal(err)
		}
		expectText(t, c, "pinger", "still here")
	})

	for _, tc := range []struct {
		name    string
		payload []byte
		want    []byte
	}{
		{"1000", wstest.ClosePayload(1000, ""), wstest.ClosePayload(1000, "")},
		{"1000-with-reason", wstest.ClosePayload(1000, "bye now"), wstest.ClosePayload(1000, "")},
		{"4321", wstest.ClosePayload(4321, ""), wstest.ClosePayload(4321, "")},
		{"empty", nil, nil},
	} {
		t.Run("close "+tc.name, func(t *testing.T) {
			wstest.Eventually(t, 5*time.Second, "earlier connections gone", func() bool { return srv.Hub().Live() == 0 })
			c := wstest.Dial(t, addr, "specialKey=closer-"+tc.name)
			if err := c.WriteFrame(true, ws.OpClose, tc.payload); err != nil {
				t.Fatal(err)
			}
			f, err := c.ReadClose(wstest.DefaultTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if string(f.Payload) != string(tc.want) {
				t.Fatalf("close answered with % x, want % x", f.Payload, tc.want)
			}
			// The server closes TCP first, without waiting for us.
			start := time.Now()
			if err := c.WaitEOF(2 * time.Second); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("server took %v to close TCP after the close handshake", d)
			}
			wstest.Eventually(t, 5*time.Second, "connection forgotten", func() bool {
				return srv.Hub().Live() == 0 && stats.Open.Load() == 0 && stats.Closing.Load() == 0
			})
		})
	}
}

// TestMemberOnceUpgraded: a client that has read its 101 is in the room:
// a message another client sends right after cannot miss it.
func TestMemberOnceUpgraded(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 50
	}
	_, addr, _ := start(t, session.Config{Shards: 2})
	sender := wstest.Dial(t, addr, "specialKey=sender")
	for i := 0; i < n; i++ {
		c, _, err := wstest.TryDial(addr, fmt.Sprintf("specialKey=newcomer%d&support_gzip=%d", i, i%2))
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("welcome %d", i)
		if err := sender.WriteText(msg); err != nil {
			t.Fatal(err)
		}
		text, _, err := c.ReadMessage(wstest.DefaultTimeout)
		c.Conn.Close()
		if err != nil || text != msg {
			t.Fatalf("newcomer %d, upgraded before %q was sent: got %q, %v", i, msg, text, err)
		}
		expectText(t, sender, "sender", msg)
	}
}
