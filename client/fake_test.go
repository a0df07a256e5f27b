package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// fakeServer speaks just enough v1 to forge frames: every connection
// gets script(n, conn) (n counts connections from 1), then is read until
// the client goes.
type fakeServer struct {
	srv   *httptest.Server
	conns atomic.Int32
}

type fakeConn struct {
	t    testing.TB
	c    *websocket.Conn
	r    *http.Request
	ctx  context.Context
	gzip bool
}

func (f *fakeConn) send(s string) {
	p, typ := []byte(s), websocket.MessageText
	if f.gzip {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write(p)
		w.Close()
		p, typ = b.Bytes(), websocket.MessageBinary
	}
	f.c.Write(f.ctx, typ, p)
}

// command reads the client's next command.
func (f *fakeConn) command() map[string]any {
	typ, p, err := f.c.Read(f.ctx)
	if err != nil {
		return nil
	}
	if typ == websocket.MessageBinary {
		r, _ := gzip.NewReader(bytes.NewReader(p))
		var b bytes.Buffer
		b.ReadFrom(r)
		p = b.Bytes()
	}
	var m map[string]any
	json.Unmarshal(p, &m)
	return m
}

func startFake(t testing.TB, script func(n int, f *fakeConn)) *fakeServer {
	fs := &fakeServer{}
	fs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), waitTimeout)
		defer cancel()
		f := &fakeConn{t: t, c: c, r: r, ctx: ctx, gzip: r.URL.Query().Get("support_gzip") == "1"}
		script(int(fs.conns.Add(1)), f)
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}))
	t.Cleanup(fs.srv.Close)
	return fs
}

func (fs *fakeServer) url() string { return "ws" + strings.TrimPrefix(fs.srv.URL, "http") + "/" }

const joined0 = `{"type":"joined","room":"lobby","seq":0,"epoch":"aaaaaaaa","recovered":false,"count":1}`

func msg(seq int, epoch string) string {
	return `{"type":"message","room":"lobby","seq":` + itoa(seq) + `,"epoch":"` + epoch + `","ts":1,"from":"x","text":"t` + itoa(seq) + `"}`
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// waitState waits for a StateChange of state s and returns it.
func waitState(t testing.TB, r *recorder, s State) *StateChange {
	t.Helper()
	var found *StateChange
	waitFor(t, "state "+s.String(), func() bool {
		for _, ev := range r.all() {
			if sc, ok := ev.(*StateChange); ok && sc.State == s {
				found = sc
				return true
			}
		}
		return false
	})
	return found
}

// Forged and malformed server frames: each is a *ProtocolError reported
// with the drop, never a panic, and the client reconnects; nothing of the
// bad frame is delivered.
func TestForgedFrames(t *testing.T) {
	huge := `{"type":"message","room":"lobby","seq":1,"epoch":"aaaaaaaa","ts":1,"from":"x","text":"` + strings.Repeat("a", 8000) + `"}`
	var bomb bytes.Buffer
	w := gzip.NewWriter(&bomb)
	w.Write([]byte(`{"type":"presence","room":"lobby","count":1,"x":"`))
	w.Write(bytes.Repeat([]byte("a"), 1<<20))
	w.Close()
	for _, tc := range []struct {
		name  string
		gzip  bool
		frame func(f *fakeConn)
	}{
		{"bad JSON", false, func(f *fakeConn) { f.send(`{"type":"message","room":`) }},
		{"seq a string", false, func(f *fakeConn) {
			f.send(`{"type":"message","room":"lobby","seq":"1","epoch":"aaaaaaaa","ts":1,"from":"x","text":"t"}`)
		}},
		{"seq negative", false, func(f *fakeConn) {
			f.send(`{"type":"message","room":"lobby","seq":-1,"epoch":"aaaaaaaa","ts":1,"from":"x","text":"t"}`)
		}},
		{"seq missing", false, func(f *fakeConn) {
			f.send(`{"type":"message","room":"lobby","epoch":"aaaaaaaa","ts":1,"from":"x","text":"t"}`)
		}},
		{"text null", false, func(f *fakeConn) {
			f.send(`{"type":"message","room":"lobby","seq":1,"epoch":"aaaaaaaa","ts":1,"from":"x","text":null}`)
		}},
		{"key twice", false, func(f *fakeConn) {
			f.send(`{"type":"message","room":"lobby","seq":1,"seq":2,"epoch":"aaaaaaaa","ts":1,"from":"x","text":"t"}`)
		}},
		{"bad room", false, func(f *fakeConn) { f.send(`{"type":"presence","room":"a b","count":1}`) }},
		{"data after", false, func(f *fakeConn) { f.send(`{"type":"presence","room":"lobby","count":1} {}`) }},
		{"huge frame", false, func(f *fakeConn) { f.send(huge) }},
		{"binary without gzip", false, func(f *fakeConn) { f.c.Write(f.ctx, websocket.MessageBinary, []byte{1, 2, 3}) }},
		{"gzip bomb", true, func(f *fakeConn) { f.c.Write(f.ctx, websocket.MessageBinary, bomb.Bytes()) }},
		{"binary not gzip", true, func(f *fakeConn) { f.c.Write(f.ctx, websocket.MessageBinary, []byte("plain")) }},
		{"recovered without since", false, func(f *fakeConn) {
			f.send(`{"type":"joined","room":"lobby","seq":5,"epoch":"aaaaaaaa","recovered":true,"count":1}`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFake(t, func(n int, f *fakeConn) {
				f.send(joined0)
				if n == 1 {
					tc.frame(f)
				}
			})
			c := dial(t, fs.url(), Options{Key: "k", Rooms: []string{"lobby"}, Gzip: tc.gzip, MaxFrame: 4096})
			r := record(c)
			sc := waitState(t, r, Disconnected)
			if !isProtocolError(sc.Err) {
				t.Fatalf("drop: %v (%T)", sc.Err, sc.Err)
			}
			waitFor(t, "the reconnect", func() bool { return fs.conns.Load() >= 2 && c.State() == Connected })
			if ms := r.messages("lobby"); len(ms) != 0 {
				t.Fatalf("delivered %+v", ms)
			}
		})
	}
}

// A message at or below the last seq is dropped and reported as a
// *SequenceError warning; the connection stays.
func TestSeqBackwards(t *testing.T) {
	fs := startFake(t, func(n int, f *fakeConn) {
		f.send(joined0)
		f.send(msg(1, "aaaaaaaa"))
		f.send(msg(2, "aaaaaaaa"))
		f.send(msg(1, "aaaaaaaa"))
		f.send(msg(2, "aaaaaaaa"))
		f.send(msg(3, "aaaaaaaa"))
	})
	c := dial(t, fs.url(), Options{Key: "k", Rooms: []string{"lobby"}})
	r := record(c)
	waitFor(t, "three", func() bool { return len(r.messages("lobby")) == 3 })
	var warnings int
	for _, ev := range r.all() {
		if w, ok := ev.(*Warning); ok {
			var se *SequenceError
			if !errors.As(w.Err, &se) || se.Room != "lobby" {
				t.Fatalf("warning %v", w.Err)
			}
			warnings++
		}
		if sc, ok := ev.(*StateChange); ok && sc.State == Disconnected {
			t.Fatalf("dropped: %v", sc.Err)
		}
	}
	if warnings != 2 || c.Stats().Duplicates != 2 || fs.conns.Load() != 1 {
		t.Fatalf("%d warnings, stats %+v", warnings, c.Stats())
	}
}

// A seq jump while connected: the client rejoins with since, drops what
// arrives before the answer, and delivers the replay with no gap; an
// epoch change rejoins too and is reported recovered:false.
func TestGapResync(t *testing.T) {
	joins := make(chan map[string]any, 4)
	fs := startFake(t, func(n int, f *fakeConn) {
		f.send(joined0)
		f.send(msg(1, "aaaaaaaa"))
		f.send(msg(3, "aaaaaaaa")) // 2 is missing
		f.send(msg(4, "aaaaaaaa")) // dropped: a rejoin is under way
		j := f.command()
		joins <- j
		f.send(`{"type":"joined","id":"` + j["id"].(string) + `","room":"lobby","seq":4,"epoch":"aaaaaaaa","recovered":true,"count":1}`)
		f.send(msg(2, "aaaaaaaa"))
		f.send(msg(3, "aaaaaaaa"))
		f.send(msg(4, "aaaaaaaa"))
		f.send(msg(1, "bbbbbbbb")) // a new epoch
		j = f.command()
		joins <- j
		f.send(`{"type":"joined","id":"` + j["id"].(string) + `","room":"lobby","seq":7,"epoch":"bbbbbbbb","recovered":false,"count":1}`)
		f.send(msg(8, "bbbbbbbb"))
	})
	c := dial(t, fs.url(), Options{Key: "k", Rooms: []string{"lobby"}})
	r := record(c)
	waitFor(t, "five", func() bool { return len(r.messages("lobby")) == 5 })
	var seqs []uint64
	for _, m := range r.messages("lobby") {
		seqs = append(seqs, m.Seq)
	}
	if got := jsonString(seqs); got != "[1,2,3,4,8]" {
		t.Fatalf("seqs %v", seqs)
	}
	j1, j2 := <-joins, <-joins
	if j1["since"] != 1.0 || j1["epoch"] != "aaaaaaaa" || j2["since"] != 4.0 || j2["epoch"] != "aaaaaaaa" {
		t.Fatalf("joins %v %v", j1, j2)
	}
	var rejoins []*Joined
	for _, ev := range r.all() {
		if j, ok := ev.(*Joined); ok && j.Rejoin {
			rejoins = append(rejoins, j)
		}
	}
	if len(rejoins) != 2 || !rejoins[0].Recovered || rejoins[0].Missed != 3 || rejoins[1].Recovered {
		t.Fatalf("rejoins %+v %+v", rejoins[0], rejoins[1])
	}
	if st := c.Stats(); st.Gaps != 2 || st.Unrecovered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func jsonString(v any) string { b, _ := json.Marshal(v); return string(b) }

// A direct envelope is delivered as Direct, its text untouched even when
// it looks like an envelope, and so is a frame that is not a JSON object
// (an older server's direct message); an error frame without a command is
// a Warning.
func TestDirectAndStrayError(t *testing.T) {
	forged := `{"type":"message","room":"lobby","seq":1,"epoch":"e","ts":1,"from":"x","text":"forged"}`
	fs := startFake(t, func(n int, f *fakeConn) {
		f.send(joined0)
		f.send(`{"type":"direct","ts":5,"from":"","text":` + jsonString(forged) + `}`)
		f.send("hello from the backend")
		f.send(`{"type":"error","code":120,"reason":"draining"}`)
		f.send(`{"type":"future","room":"lobby"}`)
	})
	c := dial(t, fs.url(), Options{Key: "k", Rooms: []string{"lobby"}})
	r := record(c)
	waitFor(t, "the warning", func() bool {
		for _, ev := range r.all() {
			if _, ok := ev.(*Warning); ok {
				return true
			}
		}
		return false
	})
	var direct []*Direct
	var warn *Warning
	for _, ev := range r.all() {
		switch ev := ev.(type) {
		case *Direct:
			direct = append(direct, ev)
		case *Message:
			t.Fatalf("a direct message's text was taken for a room message: %+v", ev)
		case *Warning:
			warn = ev
		}
	}
	var se *ServerError
	if len(direct) != 2 || *direct[0] != (Direct{TS: 5, Text: forged}) || *direct[1] != (Direct{Text: "hello from the backend"}) ||
		!errors.As(warn.Err, &se) || se.Code != CodeUnavailable {
		t.Fatalf("direct %+v warning %+v", direct, warn)
	}
}

// An app that never reads Events: the client never blocks its reader
// (acks keep coming), drops the connection when Events is full, and once
// the app reads, resumes from the last queued message with no gap.
func TestSlowApp(t *testing.T) {
	fs := startFake(t, func(n int, f *fakeConn) {
		if n == 1 {
			f.send(joined0)
			for i := 1; i <= 10; i++ {
				f.send(msg(i, "aaaaaaaa"))
			}
			return
		}
		j := f.r.URL.Query()
		if j.Get("since") == "" {
			f.t.Errorf("reconnect without since: %v", j)
		}
		since := atoi(j.Get("since"))
		f.send(`{"type":"joined","room":"lobby","seq":10,"epoch":"aaaaaaaa","recovered":true,"count":1}`)
		for i := since + 1; i <= 10; i++ {
			f.send(msg(i, "aaaaaaaa"))
		}
	})
	c := dial(t, fs.url(), Options{Key: "k", Rooms: []string{"lobby"}, QueueSize: 4})
	waitFor(t, "an overflow", func() bool { return c.Stats().Overflows > 0 })
	var got []uint64
	deadline := time.After(waitTimeout)
	for len(got) < 10 {
		select {
		case ev := <-c.Events():
			if m, ok := ev.(*Message); ok {
				got = append(got, m.Seq)
			}
		case <-deadline:
			t.Fatalf("got %v", got)
		}
	}
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("seqs %v", got)
		}
	}
}

func atoi(s string) int {
	var n int
	json.Unmarshal([]byte(s), &n)
	return n
}
