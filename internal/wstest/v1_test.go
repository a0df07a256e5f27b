package wstest

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// fakeV1 is the least of a v1 server that exercises V1: it agrees to
// wsd.v1, answers send with ack then message (duplicate ack for a repeated
// id), join with joined then the messages after since, members, and error
// 101 for anything else. A gzip client gets binary gzip frames, a deflate
// one RSV1 frames, and every message after the first is sent in two
// fragments with a ping between them.
type fakeV1 struct {
	mu   sync.Mutex
	log  []string // message envelopes, seq i+1 at i
	acks map[string]string
	seen []string // query and commands received, for the test to check
}

const fakeEpoch = "k3q7zt2a"

func (f *fakeV1) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	gz := r.URL.Query().Get("support_gzip") == "1"
	deflate := strings.Contains(r.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
	u := ws.HTTPUpgrader{Protocol: func(p string) bool { return p == V1Subprotocol }}
	if deflate {
		u.Header = http.Header{"Sec-WebSocket-Extensions": {"permessage-deflate;server_no_context_takeover;client_no_context_takeover"}}
	}
	conn, _, hs, err := u.Upgrade(r, w)
	if err != nil {
		return
	}
	defer conn.Close()
	f.mu.Lock()
	f.seen = append(f.seen, "query "+r.URL.RawQuery+" proto "+hs.Protocol)
	f.mu.Unlock()
	frames := 0
	write := func(s string) {
		p, op := []byte(s), ws.OpText
		if gz {
			p, op = Gzip(s), ws.OpBinary
		}
		var rsv byte
		if deflate {
			var b bytes.Buffer
			fw, _ := flate.NewWriter(&b, flate.BestSpeed)
			fw.Write(p)
			fw.Flush()
			p, rsv = bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff}), 4
		}
		frames++
		if frames == 1 || len(p) < 2 {
			ws.WriteFrame(conn, ws.Frame{Header: ws.Header{Fin: true, OpCode: op, Rsv: rsv, Length: int64(len(p))}, Payload: p})
			return
		}
		h := len(p) / 2
		ws.WriteFrame(conn, ws.Frame{Header: ws.Header{OpCode: op, Rsv: rsv, Length: int64(h)}, Payload: p[:h]})
		ws.WriteFrame(conn, ws.NewPingFrame(nil))
		ws.WriteFrame(conn, ws.Frame{Header: ws.Header{Fin: true, OpCode: ws.OpContinuation, Length: int64(len(p) - h)}, Payload: p[h:]})
	}
	write(`{"type":"joined","room":"lobby","seq":0,"epoch":"` + fakeEpoch + `","recovered":false,"count":1}`)
	for {
		p, op, err := wsutil.ReadClientData(conn)
		if err != nil {
			return
		}
		if op == ws.OpBinary {
			s, err := Gunzip(p)
			if err != nil {
				return
			}
			p = []byte(s)
		}
		f.mu.Lock()
		name := "TEXT"
		if op == ws.OpBinary {
			name = "BINARY"
		}
		f.seen = append(f.seen, name+" "+string(p))
		f.mu.Unlock()
		var cmd struct {
			Type, Room, ID, Text, Epoch string
			Since                       uint64
		}
		if json.Unmarshal(p, &cmd) != nil {
			write(`{"type":"error","code":100,"reason":"malformed"}`)
			continue
		}
		f.mu.Lock()
		switch cmd.Type {
		case "send":
			if a, ok := f.acks[cmd.ID]; ok && cmd.ID != "" {
				write(strings.TrimSuffix(a, "}") + `,"duplicate":true}`)
				break
			}
			seq := len(f.log) + 1
			a := fmt.Sprintf(`{"type":"ack","id":%q,"room":%q,"seq":%d,"epoch":%q,"ts":1764650000123}`, cmd.ID, cmd.Room, seq, fakeEpoch)
			f.acks[cmd.ID] = a
			m := fmt.Sprintf(`{"type":"message","room":%q,"seq":%d,"epoch":%q,"ts":1764650000123,"from":"alice","id":%q,"text":%q}`,
				cmd.Room, seq, fakeEpoch, cmd.ID, cmd.Text)
			f.log = append(f.log, m)
			write(a)
			write(m)
		case "join":
			rec := cmd.Epoch == fakeEpoch && cmd.Since <= uint64(len(f.log))
			write(fmt.Sprintf(`{"type":"joined","room":%q,"seq":%d,"epoch":%q,"recovered":%t,"count":1}`, cmd.Room, len(f.log), fakeEpoch, rec))
			if rec {
				for _, m := range f.log[cmd.Since:] {
					write(m)
				}
			}
		case "members":
			write(fmt.Sprintf(`{"type":"members","room":%q,"count":1,"members":["alice"],"truncated":false}`, cmd.Room))
		case "leave":
			write(fmt.Sprintf(`{"type":"left","room":%q}`, cmd.Room))
			write(`{"type":"presence","room":"lobby","count":0,"joined":[],"left":["alice"]}`)
		default:
			write(fmt.Sprintf(`{"type":"error","id":%q,"code":101,"reason":"unknown type"}`, cmd.ID))
		}
		f.mu.Unlock()
		if cmd.Type == "close" {
			ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(4001, "")))
			return
		}
	}
}

func TestV1AgainstFake(t *testing.T) {
	cases := []struct {
		name string
		o    V1Options
		op   ws.OpCode
	}{
		{"subprotocol", V1Options{Query: "specialKey=alice"}, ws.OpText},
		{"query", V1Options{Query: "specialKey=alice", Via: ViaQuery}, ws.OpText},
		{"gzip", V1Options{Query: "specialKey=alice", Via: ViaBoth, Gzip: true}, ws.OpBinary},
		{"deflate", V1Options{Query: "specialKey=alice", Deflate: true}, ws.OpText},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeV1{acks: map[string]string{}}
			srv := httptest.NewServer(f)
			defer srv.Close()
			addr := strings.TrimPrefix(srv.URL, "http://")
			c := DialV1With(t, addr, tc.o)
			if c.Deflate != tc.o.Deflate {
				t.Fatalf("Deflate = %v", c.Deflate)
			}
			j := c.Expect(t, "joined")
			if j.Room != "lobby" || j.Epoch != fakeEpoch || j.Recovered || j.Count != 1 || j.Op != tc.op {
				t.Fatalf("first joined: %+v", j)
			}
			if err := c.Send("lobby", "c-1", "hello \u2028 \"you\""); err != nil {
				t.Fatal(err)
			}
			a := c.Expect(t, "ack")
			if a.ID != "c-1" || a.Seq != 1 || a.Epoch != fakeEpoch || a.TS != 1764650000123 || a.Duplicate || a.Has("duplicate") {
				t.Fatalf("ack: %+v", a)
			}
			m := c.Expect(t, "message")
			if m.Seq != 1 || m.From != "alice" || m.ID != "c-1" || m.Text != "hello \u2028 \"you\"" {
				t.Fatalf("message: %+v", m)
			}
			c.Send("lobby", "c-2", "second")
			c.Send("lobby", "c-1", "again")
			// ReadUntil skips the second send's ack and message.
			d, before, err := c.ReadUntil("ack", time.Second)
			if err != nil || d.Seq != 2 || len(before) != 0 {
				t.Fatalf("second ack %+v, before %v, %v", d, before, err)
			}
			d, before, err = c.ReadUntil("ack", time.Second)
			if err != nil || !d.Duplicate || d.Seq != 1 || len(before) != 1 || before[0].Seq != 2 {
				t.Fatalf("duplicate ack %+v, before %v, %v", d, before, err)
			}
			c.Join("lobby", 1, fakeEpoch)
			j = c.Expect(t, "joined")
			if !j.Recovered || j.Seq != 2 {
				t.Fatalf("rejoin: %+v", j)
			}
			if m := c.Expect(t, "message"); m.Seq != 2 || m.Text != "second" {
				t.Fatalf("replay: %+v", m)
			}
			c.Join("lobby", 0, "")
			if j := c.Expect(t, "joined"); j.Recovered {
				t.Fatalf("join without a position recovered: %+v", j)
			}
			c.JoinHistory("lobby", 5)
			c.ExpectUntil(t, "joined")
			c.Members("lobby")
			if ms := c.Expect(t, "members"); len(ms.Members) != 1 || ms.Members[0] != "alice" || ms.Truncated {
				t.Fatalf("members: %+v", ms)
			}
			c.Leave("lobby")
			c.Expect(t, "left")
			if p := c.Expect(t, "presence"); p.Count != 0 || len(p.Left) != 1 || len(p.Joined) != 0 {
				t.Fatalf("presence: %+v", p)
			}
			c.Command(`{"type":"close"}`)
			if e := c.Expect(t, "error"); e.Code != 101 {
				t.Fatalf("error: %+v", e)
			}
			var ce *CloseError
			if _, err := c.Read(time.Second); !errors.As(err, &ce) || ce.Code != 4001 {
				t.Fatalf("want close 4001, got %v", err)
			}

			f.mu.Lock()
			defer f.mu.Unlock()
			q := f.seen[0]
			wantProto := tc.o.Via != ViaQuery
			if strings.Contains(q, "proto=v1") != (tc.o.Via != ViaSubprotocol) || strings.HasSuffix(q, "proto wsd.v1") != wantProto ||
				strings.Contains(q, "support_gzip=1") != tc.o.Gzip {
				t.Fatalf("handshake seen as %q", q)
			}
			cmdOp := "TEXT"
			if tc.o.Gzip {
				cmdOp = "BINARY"
			}
			wantCmds := []string{
				cmdOp + ` {"type":"send","room":"lobby","id":"c-1","text":"hello \u2028 \"you\""}`,
				cmdOp + ` {"type":"send","room":"lobby","id":"c-2","text":"second"}`,
				cmdOp + ` {"type":"send","room":"lobby","id":"c-1","text":"again"}`,
				cmdOp + ` {"type":"join","room":"lobby","since":1,"epoch":"k3q7zt2a"}`,
				cmdOp + ` {"type":"join","room":"lobby"}`,
				cmdOp + ` {"type":"join","room":"lobby","history":5}`,
				cmdOp + ` {"type":"members","room":"lobby"}`,
				cmdOp + ` {"type":"leave","room":"lobby"}`,
				cmdOp + ` {"type":"close"}`,
			}
			if got := f.seen[1:]; strings.Join(got, "\n") != strings.Join(wantCmds, "\n") {
				t.Fatalf("commands seen:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantCmds, "\n"))
			}
		})
	}
}

// A server that upgrades without choosing wsd.v1 is not speaking v1: the
// dial says so instead of letting a test read seed frames as envelopes.
func TestV1RefusesServerWithoutSubprotocol(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.HTTPUpgrader{}.Upgrade(r, w)
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	_, _, err := TryDialV1(strings.TrimPrefix(srv.URL, "http://"), V1Options{})
	if err == nil || !strings.Contains(err.Error(), "subprotocol") {
		t.Fatalf("want a subprotocol error, got %v", err)
	}
}

func TestDecodeEnvelopeRefuses(t *testing.T) {
	for _, s := range []string{``, `[]`, `{"type":"ack"} {}`, `{"seq":1}`, `{"type":"ack","seq":-1}`} {
		if _, err := DecodeEnvelope([]byte(s), ws.OpText); err == nil {
			t.Errorf("%q decoded", s)
		}
	}
}
