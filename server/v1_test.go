package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/session"
)

// The chat protocol v1 against a running Hub: opt-in, envelopes shared
// with seed members, acks and dedup, recovery, many rooms, and every bad
// input answered with an error frame or the documented close.

// v1Client is a chat protocol v1 client over the raw test client: it
// writes commands and reads envelopes as JSON objects.
type v1Client struct {
	t    *testing.T
	name string
	c    *wstest.Client
}

func v1Dial(t *testing.T, addr, query string) *v1Client {
	t.Helper()
	return &v1Client{t: t, name: query, c: wstest.Dial(t, addr, query+"&proto=v1")}
}

func (v *v1Client) write(cmd string) {
	v.t.Helper()
	if err := v.c.WriteText(cmd); err != nil {
		v.t.Fatalf("%s: write %s: %v", v.name, cmd, err)
	}
}

// next reads the next envelope, skipping presence frames (they come on
// the presence ticker's time; nextPresence reads them).
func (v *v1Client) next() map[string]any {
	v.t.Helper()
	for {
		m := v.read(wstest.DefaultTimeout)
		if m["type"] != "presence" {
			return m
		}
	}
}

func (v *v1Client) read(timeout time.Duration) map[string]any {
	v.t.Helper()
	s, _, err := v.c.ReadMessage(timeout)
	if err != nil {
		v.t.Fatalf("%s: reading an envelope: %v", v.name, err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		v.t.Fatalf("%s: not JSON: %q: %v", v.name, s, err)
	}
	return m
}

// nextPresence reads up to the next presence frame.
func (v *v1Client) nextPresence() map[string]any {
	v.t.Helper()
	for {
		if m := v.read(wstest.DefaultTimeout); m["type"] == "presence" {
			return m
		}
	}
}

// expect reads the next envelope, checks its type and the given fields
// (numbers as JSON numbers: pass float64 or int), and returns it.
func (v *v1Client) expect(typ string, fields ...any) map[string]any {
	v.t.Helper()
	m := v.next()
	if m["type"] != typ {
		v.t.Fatalf("%s: got %v, want a %s", v.name, m, typ)
	}
	for i := 0; i+1 < len(fields); i += 2 {
		k, want := fields[i].(string), fields[i+1]
		if n, ok := want.(int); ok {
			want = float64(n)
		}
		if m[k] != want {
			v.t.Fatalf("%s: %s %s = %v (%T), want %v in %v", v.name, typ, k, m[k], m[k], want, m)
		}
	}
	return m
}

// ackAndEcho reads a send's ack and its echoed message, in either order
// (they are queued from different places), and returns them.
func (v *v1Client) ackAndEcho() (ack, msg map[string]any) {
	v.t.Helper()
	for range 2 {
		m := v.next()
		switch m["type"] {
		case "ack":
			ack = m
		case "message":
			msg = m
		default:
			v.t.Fatalf("%s: got %v, want an ack and a message", v.name, m)
		}
	}
	if ack == nil || msg == nil || ack["seq"] != msg["seq"] || ack["room"] != msg["room"] {
		v.t.Fatalf("%s: ack %v, message %v", v.name, ack, msg)
	}
	return ack, msg
}

// quiet checks no envelope but presence arrives for a moment.
func (v *v1Client) quiet() {
	v.t.Helper()
	deadline := time.Now().Add(150 * time.Millisecond)
	for {
		s, _, err := v.c.ReadMessage(time.Until(deadline))
		if err != nil {
			return
		}
		if !strings.HasPrefix(s, `{"type":"presence"`) {
			v.t.Fatalf("%s: unexpected %s", v.name, s)
		}
	}
}

// quiet checks nothing arrives for a moment.
func quiet(t *testing.T, c *wstest.Client, who string) {
	t.Helper()
	if f, err := c.ReadFrame(150 * time.Millisecond); err == nil {
		t.Fatalf("%s: unexpected frame op %v %q", who, f.Op, f.Payload)
	}
}

func TestV1JoinedFirst(t *testing.T) {
	_, addr, _ := start(t, session.Config{})
	a := v1Dial(t, addr, "specialKey=a&room=lobby")
	a.expect("joined", "room", "lobby", "seq", 0, "recovered", false, "count", 1)
	// The subprotocol opts in as proto=v1 does, and the global room is
	// the first room when none is named.
	c, _, err := wstest.TryDialHeaders(addr, "/?specialKey=b", http.Header{"Sec-WebSocket-Protocol": {"wsd.v1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Conn.Close()
	b := &v1Client{t: t, name: "b", c: c}
	b.expect("joined", "room", "", "count", 1)
	// "" names the global room in commands too.
	b.write(`{"type":"send","room":"","text":"to everyone here"}`)
	if _, msg := b.ackAndEcho(); msg["room"] != "" || msg["seq"] != 1.0 {
		t.Fatalf("global room echo %v", msg)
	}
}

func TestV1SharesRoomsWithSeed(t *testing.T) {
	// No presence frames (the ticker never runs), so the gzip count below
	// is the broadcasts' alone.
	_, addr, stats := start(t, session.Config{PresenceInterval: time.Hour})
	seed := wstest.Dial(t, addr, "specialKey=seed&room=lobby")
	seedGz := wstest.Dial(t, addr, "specialKey=seedgz&room=lobby&support_gzip=1")
	a := v1Dial(t, addr, "specialKey=alice&room=lobby")
	a.expect("joined", "count", 3)
	b := v1Dial(t, addr, "specialKey=bob&room=lobby&support_gzip=1")
	b.expect("joined", "count", 4)

	// A seed client's text: bare to seed members, an envelope from its
	// key (no id) to v1 members.
	if err := seed.WriteText("hello from seed"); err != nil {
		t.Fatal(err)
	}
	expectText(t, seed, "seed", "hello from seed")
	expectGzip(t, seedGz, "seedgz", "hello from seed")
	m := a.expect("message", "room", "lobby", "seq", 1, "from", "seed", "text", "hello from seed")
	if _, ok := m["id"]; ok {
		t.Fatalf("a seed message has an id: %v", m)
	}
	epoch, _ := m["epoch"].(string)
	if len(epoch) != 8 || m["ts"].(float64) < float64(time.Now().Add(-time.Minute).UnixMilli()) {
		t.Fatalf("stamp %v", m)
	}
	b.expect("message", "seq", 1, "from", "seed", "epoch", epoch)

	// A v1 send: bare text to seed members, the envelope to v1 members,
	// and an ack to the sender (ack and echo in either order).
	a.write(`{"type":"send","room":"lobby","id":"c-1","text":"hi \u00e9"}`)
	expectText(t, seed, "seed", "hi é")
	expectGzip(t, seedGz, "seedgz", "hi é")
	b.expect("message", "seq", 2, "from", "alice", "id", "c-1", "text", "hi é")
	ack, msg := a.ackAndEcho()
	if ack["seq"] != 2.0 || ack["id"] != "c-1" || ack["epoch"] != epoch || ack["room"] != "lobby" || ack["duplicate"] != nil {
		t.Fatalf("ack %v", ack)
	}
	if msg["from"] != "alice" || msg["id"] != "c-1" {
		t.Fatalf("echo %v", msg)
	}

	// The same id again: the original ack, marked, and no broadcast.
	a.write(`{"type":"send","room":"lobby","id":"c-1","text":"hi again"}`)
	a.expect("ack", "seq", 2, "duplicate", true, "id", "c-1")
	quiet(t, seed, "seed")
	b.quiet()
	// Each broadcast gzip'd its text once and its envelope once.
	if n := stats.GzipEncodings.Load(); n != 4 {
		t.Fatalf("%d gzip encodings for 2 broadcasts to a gzip seed member and a gzip v1 member, want 4", n)
	}
}

func TestV1Recovery(t *testing.T) {
	_, addr, _ := start(t, session.Config{HistorySize: 5})
	seed := wstest.Dial(t, addr, "specialKey=seed&room=r")
	for i := 1; i <= 3; i++ {
		seed.WriteText(fmt.Sprintf("m%d", i))
		expectText(t, seed, "seed", fmt.Sprintf("m%d", i))
	}
	probe := v1Dial(t, addr, "specialKey=probe&room=r")
	epoch := probe.expect("joined", "seq", 3)["epoch"].(string)

	// Exactly the messages after since, then live.
	a := v1Dial(t, addr, "specialKey=a&room=r&since=1&epoch="+epoch)
	a.expect("joined", "seq", 3, "recovered", true)
	a.expect("message", "seq", 2, "text", "m2")
	a.expect("message", "seq", 3, "text", "m3")
	seed.WriteText("m4")
	a.expect("message", "seq", 4, "text", "m4")

	for _, tc := range []struct{ name, query string }{
		{"since ahead of the room", "since=99&epoch=" + epoch},
		{"another epoch", "since=1&epoch=zzzzzzzz"},
	} {
		c := v1Dial(t, addr, "specialKey=x&room=r&"+tc.query)
		c.expect("joined", "recovered", false, "epoch", epoch)
		seed.WriteText("live")
		c.expect("message", "text", "live") // nothing replayed: the next is live
		c.c.Close(1000)
	}
	// history=K: the last K, in order.
	h := v1Dial(t, addr, "specialKey=h&room=r&history=2")
	m := h.expect("joined", "recovered", false)
	last := int(m["seq"].(float64))
	h.expect("message", "seq", last-1)
	h.expect("message", "seq", last)
	// Too old: since 0 when seq 1 is no longer retained (HistorySize 5).
	for range 5 {
		seed.WriteText("more")
	}
	time.Sleep(100 * time.Millisecond)
	o := v1Dial(t, addr, "specialKey=o&room=r&since=0&epoch="+epoch)
	o.expect("joined", "recovered", false)
	// A query asking for more history than a room keeps is refused.
	if _, status, _ := wstest.TryDial(addr, "specialKey=q&proto=v1&history=6"); status != 400 {
		t.Fatalf("history over -history-size: status %d, want 400", status)
	}
}

// TestV1JoinSeam: a join with since while the room is at full rate gets
// every message after since exactly once, in order.
func TestV1JoinSeam(t *testing.T) {
	_, addr, _ := start(t, session.Config{HistorySize: 10000})
	sender := v1Dial(t, addr, "specialKey=s&room=r")
	sender.expect("joined")
	epoch := ""
	const total = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= total; i++ {
			if sender.c.WriteText(fmt.Sprintf(`{"type":"send","room":"r","text":"%d"}`, i)) != nil {
				return
			}
		}
	}()
	// Join from the side while the sends flow, at seq 0 of the room's
	// epoch (read from a first join).
	p := v1Dial(t, addr, "specialKey=p&room=r")
	epoch = p.expect("joined")["epoch"].(string)
	j := v1Dial(t, addr, "specialKey=j&room=r&since=0&epoch="+epoch)
	jm := j.expect("joined", "recovered", true)
	_ = jm
	for want := 1; want <= total; want++ {
		m := j.expect("message")
		if m["seq"] != float64(want) {
			t.Fatalf("seq %v, want %d", m["seq"], want)
		}
	}
	<-done
}

func TestV1ManyRooms(t *testing.T) {
	_, addr, _ := start(t, session.Config{MaxRoomsPerConn: 3})
	a := v1Dial(t, addr, "specialKey=a&room=one")
	a.expect("joined", "room", "one")
	seedTwo := wstest.Dial(t, addr, "specialKey=s2&room=two")
	a.write(`{"type":"join","room":"two","id":"j1"}`)
	a.expect("joined", "room", "two", "id", "j1", "count", 2)
	a.write(`{"type":"join","room":"three"}`)
	a.expect("joined", "room", "three", "count", 1)
	a.write(`{"type":"join","room":"four","id":"j4"}`)
	a.expect("error", "code", 111, "id", "j4")

	seedTwo.WriteText("in two")
	a.expect("message", "room", "two", "text", "in two")
	a.write(`{"type":"send","room":"three","text":"to three"}`)
	if ack, _ := a.ackAndEcho(); ack["room"] != "three" || ack["seq"] != 1.0 {
		t.Fatalf("ack %v", ack)
	}
	expectText(t, seedTwo, "s2", "in two")
	quiet(t, seedTwo, "s2") // nothing of room three

	a.write(`{"type":"members","room":"two","id":"m"}`)
	m := a.expect("members", "count", 2, "truncated", false, "id", "m")
	if fmt.Sprint(m["members"]) != "[a s2]" {
		t.Fatalf("members %v", m)
	}
	a.write(`{"type":"leave","room":"two"}`)
	a.expect("left", "room", "two")
	seedTwo.WriteText("after leave")
	expectText(t, seedTwo, "s2", "after leave")
	a.write(`{"type":"members","room":"two"}`)
	a.expect("error", "code", 112) // no message of two came before it
	a.write(`{"type":"join","room":"four"}`)
	a.expect("joined", "room", "four") // the left room freed its place
	// A rejoin of a joined room is a resync: joined again, no duplicate.
	a.write(`{"type":"join","room":"three","history":1}`)
	a.expect("joined", "room", "three", "seq", 1, "count", 1)
	a.expect("message", "room", "three", "seq", 1)
	a.write(`{"type":"send","room":"three","id":"z","text":"x"}`)
	if ack, _ := a.ackAndEcho(); ack["seq"] != 2.0 {
		t.Fatalf("ack %v", ack)
	}
}

func TestV1BadInput(t *testing.T) {
	_, addr, _ := start(t, session.Config{MaxMessage: 1024, HistorySize: 50})
	a := v1Dial(t, addr, "specialKey=a&room=r")
	a.expect("joined")
	for _, tc := range []struct {
		name, cmd string
		code      int
		id        string
	}{
		{"malformed JSON", `{"type":"send",`, 100, ""},
		{"not an object", `[1,2]`, 100, ""},
		{"unknown type", `{"type":"shout","room":"r","id":"u"}`, 101, "u"},
		{"missing room", `{"type":"send","text":"x","id":"m"}`, 102, "m"},
		{"missing text", `{"type":"send","room":"r"}`, 102, ""},
		{"id over 64 bytes", `{"type":"send","room":"r","text":"x","id":"` + strings.Repeat("i", 65) + `"}`, 105, ""},
		{"bad room", `{"type":"join","room":"a b"}`, 104, ""},
		{"negative history", `{"type":"join","room":"r2","history":-1}`, 103, ""},
		{"history over -history-size", `{"type":"join","room":"r2","history":51}`, 103, ""},
		{"huge history", `{"type":"join","room":"r2","history":99999999999999999999999}`, 103, ""},
		{"since without epoch", `{"type":"join","room":"r2","since":3}`, 102, ""},
		{"send to a room not joined", `{"type":"send","room":"other","text":"x","id":"n"}`, 112, "n"},
		{"leave a room not joined", `{"type":"leave","room":"other"}`, 112, ""},
	} {
		a.write(tc.cmd)
		m := a.expect("error", "code", tc.code)
		if tc.id != "" && m["id"] != tc.id || tc.id == "" && m["id"] != nil {
			t.Fatalf("%s: error %v, want id %q", tc.name, m, tc.id)
		}
	}
	// since ahead of the room: joined, recovered:false, the real position.
	a.write(`{"type":"join","room":"r2","since":5,"epoch":"abcdefgh"}`)
	a.expect("joined", "room", "r2", "seq", 0, "recovered", false)
	// Still open and working after all of it.
	a.write(`{"type":"send","room":"r","text":"ok"}`)
	if _, msg := a.ackAndEcho(); msg["text"] != "ok" {
		t.Fatalf("echo %v", msg)
	}

	// A frame over -max-message is the codec's 1009, v1 or not.
	a.write(`{"type":"send","room":"r","text":"` + strings.Repeat("x", 1100) + `"}`)
	if code := a.c.ExpectClose(t, wstest.DefaultTimeout); code != 1009 {
		t.Fatalf("over -max-message: close %d, want 1009", code)
	}
	// A binary frame from a v1 client without support_gzip: 1003.
	b := v1Dial(t, addr, "specialKey=b&room=r")
	b.expect("joined")
	b.c.WriteFrame(true, ws.OpBinary, wstest.Gzip(`{"type":"members","room":"r"}`))
	if code := b.c.ExpectClose(t, wstest.DefaultTimeout); code != 1003 {
		t.Fatalf("binary from a non-gzip v1 client: close %d, want 1003", code)
	}
	// With support_gzip, commands may come gzip'd and answers are gzip'd.
	g := v1Dial(t, addr, "specialKey=g&room=r&support_gzip=1")
	g.expect("joined")
	g.c.WriteFrame(true, ws.OpBinary, wstest.Gzip(`{"type":"members","room":"r","id":"gz"}`))
	g.expect("members", "id", "gz")
}

// Commands are charged to the connection's message rate: a join/leave or
// members flood past it is closed with 1008.
func TestV1CommandFlood(t *testing.T) {
	_, addr, _ := start(t, session.Config{MaxMsgRate: 5, MsgBurst: 20})
	a := v1Dial(t, addr, "specialKey=a&room=r")
	a.expect("joined")
	for i := range 200 {
		switch i % 3 {
		case 0:
			a.c.WriteText(`{"type":"join","room":"x"}`)
		case 1:
			a.c.WriteText(`{"type":"members","room":"x"}`)
		default:
			a.c.WriteText(`{"type":"leave","room":"x"}`)
		}
	}
	for {
		f, err := a.c.ReadFrame(wstest.DefaultTimeout)
		if err != nil {
			t.Fatalf("no close after a command flood: %v", err)
		}
		if f.Op == ws.OpClose {
			if f.CloseCode() != 1008 {
				t.Fatalf("close %d, want 1008", f.CloseCode())
			}
			return
		}
	}
}

// A replace (4001) of a v1 connection hands its key over; the new one gets
// its own joined, the old one's rooms are gone with it.
func TestV1Replace(t *testing.T) {
	_, addr, _ := start(t, session.Config{PresenceGrace: -1}) // a leave counts at once
	a1 := v1Dial(t, addr, "specialKey=a&room=r")
	a1.expect("joined")
	a1.write(`{"type":"join","room":"extra"}`)
	a1.expect("joined", "room", "extra")
	a2 := v1Dial(t, addr, "specialKey=a&room=r")
	a2.expect("joined", "count", 1)
	if code := a1.c.ExpectClose(t, wstest.DefaultTimeout); code != 4001 {
		t.Fatalf("replaced: close %d", code)
	}
	b := v1Dial(t, addr, "specialKey=b&room=extra")
	b.expect("joined", "count", 1) // a's old subscription left with it
}

// The rooms the credentials allow (auth sets codec.Request.Rooms from a
// JWT rooms claim) bound the later joins too: another room is error 110.
func TestV1ForbiddenRoom(t *testing.T) {
	_, addr, _ := start(t, session.Config{Authorize: func(req *codec.Request) error {
		if string(req.Key) == "limited" {
			req.Rooms = []string{"lobby", "ops"}
		}
		return nil
	}})
	a := v1Dial(t, addr, "specialKey=limited&room=lobby")
	a.expect("joined")
	a.write(`{"type":"join","room":"ops"}`)
	a.expect("joined", "room", "ops")
	a.write(`{"type":"join","room":"secret","id":"s"}`)
	a.expect("error", "code", 110, "id", "s")
	a.write(`{"type":"members","room":"secret"}`)
	a.expect("error", "code", 112) // the refused join left nothing behind
	b := v1Dial(t, addr, "specialKey=free&room=lobby")
	b.expect("joined")
	b.write(`{"type":"join","room":"secret"}`)
	b.expect("joined", "room", "secret")
}

// Presence: coalesced per room per interval, only to v1 members, no
// leave/join for a key back within the grace, lists below the threshold
// and counts above it.
func TestV1Presence(t *testing.T) {
	const interval, grace = 200 * time.Millisecond, 600 * time.Millisecond
	_, addr, stats := start(t, session.Config{PresenceInterval: interval, PresenceGrace: grace, PresenceListMax: 5})
	a := v1Dial(t, addr, "specialKey=a&room=lobby")
	a.expect("joined")
	seed := wstest.Dial(t, addr, "specialKey=s&room=lobby")
	// a's first presence names who arrived so far.
	for {
		p := a.nextPresence()
		if p["count"] == 2.0 {
			break
		}
	}
	b := v1Dial(t, addr, "specialKey=b&room=lobby")
	b.expect("joined", "count", 3)
	p := a.nextPresence()
	if p["count"] != 3.0 || fmt.Sprint(p["joined"]) != "[b]" || fmt.Sprint(p["left"]) != "[]" {
		t.Fatalf("presence after b joined: %v", p)
	}
	// b reconnects within the grace: nothing to tell.
	b.c.Close(1000)
	b = v1Dial(t, addr, "specialKey=b&room=lobby")
	b.expect("joined", "count", 3)
	before := stats.PresenceFrames.Load()
	time.Sleep(grace + 2*interval)
	if n := stats.PresenceFrames.Load(); n != before {
		t.Fatalf("%d presence frames for a reconnect within the grace", n-before)
	}
	// b leaves for good: one frame after the grace.
	b.c.Close(1000)
	p = a.nextPresence()
	if p["count"] != 2.0 || fmt.Sprint(p["left"]) != "[b]" {
		t.Fatalf("presence after b left: %v", p)
	}
	// A storm of joins: at most one frame per interval, counts only past
	// the list threshold.
	start := time.Now()
	for i := range 20 {
		c := v1Dial(t, addr, fmt.Sprintf("specialKey=storm%d&room=lobby", i))
		defer c.c.Close(1000)
	}
	frames := 0
	for {
		p := a.nextPresence()
		frames++
		if _, lists := p["joined"]; lists {
			t.Fatalf("lists for a room over the threshold: %v", p)
		}
		if p["count"] == 22.0 {
			break
		}
	}
	if limit := int(time.Since(start)/interval) + 2; frames > limit {
		t.Fatalf("%d presence frames in %v, want at most one per %v", frames, time.Since(start), interval)
	}
	quiet(t, seed, "seed") // a seed member sees none of it
}

// A replay longer than one batch arrives whole and in order, then live.
func TestV1LongReplay(t *testing.T) {
	_, addr, _ := start(t, session.Config{HistorySize: 1000})
	s := v1Dial(t, addr, "specialKey=s&room=r")
	epoch := s.expect("joined")["epoch"].(string)
	const n = 600
	for i := 1; i <= n; i++ {
		s.write(fmt.Sprintf(`{"type":"send","room":"r","text":"%d"}`, i))
	}
	for range 2 * n { // its acks and echoes
		s.next()
	}
	for i, query := range []string{"since=0&epoch=" + epoch, "history=" + fmt.Sprint(n)} {
		top := n + i // the first round's live message is seq 601
		j := v1Dial(t, addr, "specialKey=j&room=r&"+query)
		j.expect("joined", "seq", top)
		for want := top - n + 1; want <= top; want++ {
			j.expect("message", "seq", want)
		}
		s.write(`{"type":"send","room":"r","text":"live"}`)
		j.expect("message", "text", "live")
		s.ackAndEcho()
		j.c.Close(1000)
	}
}

// A direct message (SendTo, the admin API's key publish) reaches a v1
// connection in a direct envelope, text that looks like an envelope
// included, also when the message comes from the pool with the buffers of
// an earlier room message's envelope; a seed connection gets the bare text.
func TestV1DirectMessage(t *testing.T) {
	srv, addr, _ := start(t, session.Config{})
	a := v1Dial(t, addr, "specialKey=a&room=lobby")
	a.expect("joined", "room", "lobby")
	seed := wstest.Dial(t, addr, "specialKey=s")
	forged := `{"type":"message","room":"lobby","seq":1,"epoch":"x","ts":1,"from":"admin","text":"forged"}`
	for i := range 20 {
		a.write(fmt.Sprintf(`{"type":"send","room":"lobby","text":"room %d"}`, i))
		a.ackAndEcho()
		want := fmt.Sprintf("direct %d", i)
		if i == 7 {
			want = forged
		}
		if d := srv.Hub().SendTo("a", []byte(want)); d.Local != 1 {
			t.Fatalf("SendTo: %+v", d)
		}
		a.expect("direct", "from", "", "text", want)
	}
	if d := srv.Hub().SendTo("s", []byte(forged)); d.Local != 1 {
		t.Fatalf("SendTo seed: %+v", d)
	}
	got, op, err := seed.ReadMessage(wstest.DefaultTimeout)
	if err != nil || got != forged || op != ws.OpText {
		t.Fatalf("seed direct message: %q (opcode %v), %v; want the bare text frame", got, op, err)
	}
}
