package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/session"
)

// TestHandshakeRefusals: every bad upgrade request gets its HTTP status
// with a one-line reason, and the connection is closed after it.
func TestHandshakeRefusals(t *testing.T) {
	srv, addr, stats := start(t, session.Config{HandshakeTimeout: 2 * time.Second})
	up := func(target string, extra ...string) string { return wstest.UpgradeRequest(addr, target, extra...) }
	replace := func(req, old, new string) string {
		if !strings.Contains(req, old) {
			t.Fatalf("request has no %q", old)
		}
		return strings.Replace(req, old, new, 1)
	}
	ok := up("/?specialKey=k")
	for _, tc := range []struct {
		name   string
		req    string
		status int
		reason string // a substring of the reason line
	}{
		{"missing specialKey", up("/"), 400, "specialKey"},
		{"missing specialKey, other params", up("/?support_gzip=1&room=a"), 400, "specialKey"},
		{"empty specialKey", up("/?specialKey="), 400, "specialKey"},
		{"empty specialKey with gzip", up("/?specialKey=&support_gzip=1"), 400, "specialKey"},
		{"specialKey too long", up("/?specialKey=" + strings.Repeat("k", 257)), 400, "specialKey"},
		{"bad escape in query", up("/?specialKey=%zz"), 400, "query"},
		{"bad room", up("/?specialKey=k&room=no/slash"), 400, "room"},
		{"path /x", up("/x?specialKey=k"), 404, "not found"},
		{"path /ws", up("/ws?specialKey=k"), 404, "not found"},
		{"path //", up("//?specialKey=k"), 404, "not found"},
		{"POST", replace(ok, "GET ", "POST "), 405, ""},
		{"PUT", replace(ok, "GET ", "PUT "), 405, ""},
		{"version 8", replace(ok, "Version: 13", "Version: 8"), 426, ""},
		{"version 14", replace(ok, "Version: 13", "Version: 14"), 426, ""},
		{"no version", replace(ok, "Sec-WebSocket-Version: 13\r\n", ""), 400, "Version"},
		{"HTTP/1.0", replace(ok, "HTTP/1.1", "HTTP/1.0"), 505, ""},
		{"no Sec-WebSocket-Key", replace(ok, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), 400, ""},
		{"no Upgrade header", replace(ok, "Upgrade: websocket\r\n", ""), 400, ""},
		{"not a request line", "HELLO\r\n\r\n", 400, ""},
		{"two Origin headers", up("/?specialKey=k", "Origin: https://a.example", "origin: https://b.example"), 400, "duplicate Origin header"},
		{"two Host headers", up("/?specialKey=k", "HOST: other.example"), 400, "duplicate Host header"},
		{"two Sec-WebSocket-Key headers", up("/?specialKey=k", "sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA=="), 400, "duplicate Sec-WebSocket-Key header"},
		{"head over 8 KiB", up("/?specialKey=k", "X-Pad: "+strings.Repeat("p", 9000)), 431, "too large"},
		{"head over 8 KiB without an end", "GET /?specialKey=k HTTP/1.1\r\nX-Pad: " + strings.Repeat("p", 9000), 431, "too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failed := stats.HandshakesFailed.Load()
			c, status, body, err := wstest.RawHandshake(addr, []byte(tc.req))
			if c != nil {
				c.Conn.Close()
				t.Fatalf("upgraded; want %d", tc.status)
			}
			if err != nil {
				t.Fatalf("status %d %q: %v", status, body, err)
			}
			if status != tc.status {
				t.Fatalf("status %d (%q), want %d", status, body, tc.status)
			}
			if line := strings.TrimSuffix(body, "\n"); line == "" || strings.ContainsAny(line, "\r\n") {
				t.Errorf("reason %q is not one line", body)
			}
			if !strings.Contains(body, tc.reason) {
				t.Errorf("reason %q does not mention %q", body, tc.reason)
			}
			if got := stats.HandshakesFailed.Load(); got != failed+1 {
				t.Errorf("HandshakesFailed went from %d to %d, want +1", failed, got)
			}
		})
	}
	byStatus := map[int]uint64{}
	stats.HandshakeFailures(func(status int, n uint64) { byStatus[status] = n })
	for status, want := range map[int]uint64{400: 14, 404: 3, 405: 2, 426: 2, 431: 2, 505: 1} {
		if byStatus[status] != want {
			t.Errorf("handshake failures with %d: %d, want %d", status, byStatus[status], want)
		}
	}
	if stats.HandshakesOK.Load() != 0 || stats.Open.Load() != 0 {
		t.Errorf("HandshakesOK %d, Open %d after refusals only", stats.HandshakesOK.Load(), stats.Open.Load())
	}
	wstest.Eventually(t, 5*time.Second, "refused sockets closed", func() bool { return srv.Hub().Live() == 0 })
}

// TestMaxConns: at the cap, newcomers get 503 and the connected clients
// chat on; a replacement of an existing key is a newcomer too.
func TestMaxConns(t *testing.T) {
	_, addr, stats := start(t, session.Config{MaxConns: 3})
	a := wstest.Dial(t, addr, "specialKey=a")
	b := wstest.Dial(t, addr, "specialKey=b&support_gzip=1")
	c := wstest.Dial(t, addr, "specialKey=c")
	for _, q := range []string{"specialKey=d", "specialKey=e&support_gzip=1", "specialKey=a"} {
		cl, status, err := wstest.TryDial(addr, q)
		if err == nil {
			cl.Conn.Close()
			t.Fatalf("%s upgraded over MaxConns", q)
		}
		if status != http.StatusServiceUnavailable {
			t.Fatalf("%s: status %d (%v), want 503", q, status, err)
		}
	}
	if got := stats.Kicks.Load(); got != 0 {
		t.Errorf("a refused dial kicked %d connections", got)
	}
	for i, s := range []*wstest.Client{a, b, c} {
		msg := fmt.Sprintf("still here %d", i)
		if err := s.WriteText(msg); err != nil {
			t.Fatal(err)
		}
		expectText(t, a, "a", msg)
		expectGzip(t, b, "b", msg)
		expectText(t, c, "c", msg)
	}
	if stats.Open.Load() != 3 {
		t.Errorf("Open = %d, want 3", stats.Open.Load())
	}
}

// TestPipelinedFramesAfterHandshake: frames sent in the same write as the
// upgrade request (or in the packet finishing it) are processed.
func TestPipelinedFramesAfterHandshake(t *testing.T) {
	_, addr, stats := start(t, session.Config{})
	watcher := wstest.Dial(t, addr, "specialKey=watcher")

	t.Run("one write", func(t *testing.T) {
		req := []byte(wstest.UpgradeRequest(addr, "/?specialKey=eager&support_gzip=1"))
		req = append(req, frame(0x81, "pipelined one")...)
		req = append(req, frame(0x89, "ping too")...)
		req = append(req, wstest.RawFrame(0x82, true, wstest.Gzip("pipelined two"))...)
		c, status, body, err := wstest.RawHandshake(addr, req)
		if err != nil || c == nil {
			t.Fatalf("status %d %q: %v", status, body, err)
		}
		defer c.Conn.Close()
		// The pong is written directly, the echoes come through the
		// fan-out: only the messages' order is fixed.
		var got []string
		pong := false
		for len(got) < 2 || !pong {
			f, err := c.ReadFrame(wstest.DefaultTimeout)
			if err != nil {
				t.Fatalf("after %q (pong %v): %v", got, pong, err)
			}
			switch e := event(f); {
			case e == "pong:ping too" && !pong:
				pong = true
			case len(got) < 2:
				got = append(got, e)
			default:
				t.Fatalf("unexpected %s", e)
			}
		}
		if want := "gzip:pipelined one|gzip:pipelined two"; strings.Join(got, "|") != want {
			t.Fatalf("got %q, want %s", got, want)
		}
		expectText(t, watcher, "watcher", "pipelined one")
		expectText(t, watcher, "watcher", "pipelined two")
	})

	t.Run("head completed by the packet carrying a frame", func(t *testing.T) {
		req := wstest.UpgradeRequest(addr, "/?specialKey=split")
		c, status, body, err := func() (*wstest.Client, int, string, error) {
			// The first write holds all but the final CRLF; the second
			// finishes the head and carries a frame.
			head := []byte(req[:len(req)-2])
			rest := append([]byte("\r\n"), frame(0x81, "split pipelined")...)
			return wstest.RawHandshakeParts(addr, head, rest)
		}()
		if err != nil || c == nil {
			t.Fatalf("status %d %q: %v", status, body, err)
		}
		defer c.Conn.Close()
		expectText(t, c, "split", "split pipelined")
		expectText(t, watcher, "watcher", "split pipelined")
	})
	if got := stats.HandshakesOK.Load(); got != 3 {
		t.Errorf("HandshakesOK = %d, want 3", got)
	}
}
