package server_test

import (
	"bytes"
	stdflate "compress/flate"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"

	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/session"
)

// deflateConfig is wsd with permessage-deflate as cmd/wsd runs it.
func deflateConfig(clientBits int) session.Config {
	return session.Config{MaxMessage: 1 << 20, Deflate: codec.DeflateConfig{Enabled: true, ClientWindowBits: clientBits}}
}

const (
	ansNoCtx = "permessage-deflate;server_no_context_takeover;client_no_context_takeover"
	browser  = "permessage-deflate; client_max_window_bits"
)

// zDeflate is a client's compressed payload (standard library, sync flush, tail removed).
func zDeflate(s string) []byte {
	var b bytes.Buffer
	w, _ := stdflate.NewWriter(&b, 5)
	w.Write([]byte(s))
	w.Flush()
	return b.Bytes()[:b.Len()-4]
}

// finalBlock is s compressed as one stream ended by a final (BFINAL)
// block, as RFC 7692 7.2.3.5 lets a sender without sync flush end a message.
func finalBlock(s string) []byte {
	var b bytes.Buffer
	w, _ := stdflate.NewWriter(&b, 5)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

// zInflate is what a deflate client does with a frame whose RSV1 is set.
func zInflate(p []byte) (string, error) {
	r := stdflate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	out, err := io.ReadAll(r)
	return string(out), err
}

// dialDeflate upgrades a raw client with the given extension offers.
func dialDeflate(t *testing.T, addr, query string, offers ...string) *wstest.Client {
	t.Helper()
	var extra []string
	for _, o := range offers {
		extra = append(extra, "Sec-WebSocket-Extensions: "+o)
	}
	c, status, body, err := wstest.RawHandshake(addr, []byte(wstest.UpgradeRequest(addr, "/?"+query, extra...)))
	if err != nil || c == nil {
		t.Fatalf("dial with %q: %d %s %v", offers, status, body, err)
	}
	t.Cleanup(func() { c.Conn.Close() })
	return c
}

// readDeflated reads one data frame and returns its text, inflated if RSV1
// is set, and whether it was.
func readDeflated(t *testing.T, c *wstest.Client, who string) (string, bool) {
	t.Helper()
	f, err := c.ReadFrame(wstest.DefaultTimeout)
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	if f.Op != ws.OpText || !f.Fin {
		t.Fatalf("%s: op %v fin %v %.60q, want one text frame", who, f.Op, f.Fin, f.Payload)
	}
	switch f.Rsv {
	case 0:
		return string(f.Payload), false
	case 4:
		s, err := zInflate(f.Payload)
		if err != nil {
			t.Fatalf("%s: compressed frame does not inflate: %v", who, err)
		}
		return s, true
	}
	t.Fatalf("%s: rsv %d", who, f.Rsv)
	return "", false
}

func chatLine(n int) string {
	return strings.Repeat(`{"from":"alice","text":"hello there, how is everyone doing today?"} `, n/66+1)[:n]
}

// TestDeflateNegotiation: what wsd answers to offers through a real
// upgrade; an offer it cannot accept is declined, never refused.
func TestDeflateNegotiation(t *testing.T) {
	_, addr, _ := start(t, deflateConfig(0))
	_, addr12, _ := start(t, deflateConfig(12))
	_, addrOff, _ := start(t, session.Config{})
	for _, tc := range []struct {
		name, addr string
		offers     []string
		answer     string
	}{
		{"chromium's default", addr, []string{browser}, ansNoCtx},
		{"chromium's default, window 12", addr12, []string{browser}, "permessage-deflate;server_no_context_takeover;client_max_window_bits=12"},
		{"deflate off", addrOff, []string{browser}, ""},
		{"every parameter", addr12, []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"},
			"permessage-deflate;server_no_context_takeover;server_max_window_bits=10;client_no_context_takeover"},
		{"quoted values", addr12, []string{`permessage-deflate; server_max_window_bits="11"; client_max_window_bits="10"`},
			"permessage-deflate;server_no_context_takeover;server_max_window_bits=11;client_max_window_bits=10"},
		{"several offers", addr, []string{"permessage-deflate; server_max_window_bits=16, permessage-deflate; foo, permessage-deflate; server_max_window_bits=9"},
			"permessage-deflate;server_no_context_takeover;server_max_window_bits=9;client_no_context_takeover"},
		{"several headers", addr, []string{"x-webkit-deflate-frame", "permessage-deflate"}, ansNoCtx},
		{"unknown parameter", addr, []string{"permessage-deflate; foo=bar"}, ""},
		{"duplicate parameter", addr, []string{"permessage-deflate; client_max_window_bits; client_max_window_bits"}, ""},
		{"malformed", addr, []string{`permessage-deflate; client_max_window_bits="9`}, ""},
		{"malformed second header", addr, []string{"permessage-deflate", "; ;"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialDeflate(t, tc.addr, "specialKey=neg", tc.offers...)
			if c.Extensions != tc.answer {
				t.Fatalf("answered %q, want %q", c.Extensions, tc.answer)
			}
			// Whatever was negotiated, the connection works.
			if err := c.WriteText("hi"); err != nil {
				t.Fatal(err)
			}
			expectText(t, c, "self", "hi")
		})
	}
}

// TestDeflateRaw: compressed client messages in every shape, and the
// frames each kind of member receives.
func TestDeflateRaw(t *testing.T) {
	_, addr, stats := start(t, deflateConfig(0))
	z := dialDeflate(t, addr, "specialKey=z", browser)
	plain := dialDeflate(t, addr, "specialKey=plain")
	gz := dialDeflate(t, addr, "specialKey=gz&support_gzip=1", browser)
	if z.Extensions != ansNoCtx || gz.Extensions != ansNoCtx || plain.Extensions != "" {
		t.Fatalf("answers %q %q %q", z.Extensions, gz.Extensions, plain.Extensions)
	}
	everyone := func(want string, compressed bool) {
		t.Helper()
		if got, was := readDeflated(t, z, "deflate peer"); got != want || was != compressed {
			t.Fatalf("deflate peer: %.40q compressed %v, want %.40q compressed %v", got, was, want, compressed)
		}
		expectText(t, plain, "plain peer", want)
		expectGzip(t, gz, "gzip peer", want)
	}
	long := chatLine(300)
	big := chatLine(64 << 10)
	p := zDeflate(long)

	// Whole, short (sent plain to deflate peers), long (compressed), 64 KiB.
	z.WriteRaw(frame(0xC1, string(zDeflate("short"))))
	everyone("short", false)
	z.WriteRaw(frame(0xC1, string(p)))
	everyone(long, true)
	z.WriteRaw(wstest.RawFrame(0xC1, true, zDeflate(big)))
	everyone(big, true)
	// Fragmented, with control frames between.
	z.WriteRaw(bytes.Join([][]byte{frame(0x41, string(p[:10])), frame(0x89, "ping"), frame(0x00, string(p[10:20])),
		frame(0x8A, ""), frame(0x80, string(p[20:]))}, nil))
	if f, err := z.ReadFrame(wstest.DefaultTimeout); err != nil || f.Op != ws.OpPong || string(f.Payload) != "ping" || f.Rsv != 0 {
		t.Fatalf("pong: %+v %v", f, err)
	}
	everyone(long, true)
	// Empty compressed messages: RFC 7692's 0x00, and no payload at all.
	z.WriteRaw(frame(0xC1, "\x00"))
	everyone("", false)
	z.WriteRaw(frame(0xC1, ""))
	everyone("", false)
	// Plain text from a deflate client.
	z.WriteText("plain from z")
	everyone("plain from z", false)
	// A gzip client that negotiated deflate: gzip'd text in a compressed
	// binary message; it receives gzip frames, never deflated ones.
	gz.WriteRaw(wstest.RawFrame(0xC2, true, zDeflate(string(wstest.Gzip(long)))))
	everyone(long, true)
	gz.WriteRaw(wstest.RawFrame(0x82, true, wstest.Gzip("uncompressed gzip")))
	everyone("uncompressed gzip", false)

	if n, b := stats.DeflateEncodings.Load(), stats.Broadcasts.Load(); n > b || n != 4 {
		t.Fatalf("%d compressions for %d broadcasts, want 4 (one per long broadcast)", n, b)
	}
	if stats.DeflateConns.Load() != 2 || stats.DeflateBytesSaved.Load() == 0 || stats.InflateErrors.Load() != 0 {
		t.Fatalf("deflate conns %d, saved %d, inflate errors %d", stats.DeflateConns.Load(), stats.DeflateBytesSaved.Load(), stats.InflateErrors.Load())
	}
}

// TestDeflateFailures: RSV1 where RFC 7692 forbids it is 1002, data that
// does not inflate 1007, a zip bomb 1009; the other peers keep chatting.
func TestDeflateFailures(t *testing.T) {
	_, addr, stats := start(t, session.Config{MaxMessage: 64 << 10, Deflate: codec.DeflateConfig{Enabled: true}})
	watcher := dialDeflate(t, addr, "specialKey=watcher", browser)
	var bomb bytes.Buffer
	w, _ := stdflate.NewWriter(&bomb, 1)
	w.Write(make([]byte, 50<<20))
	w.Flush()
	p := zDeflate(chatLine(300))
	for _, tc := range []struct {
		name  string
		offer bool
		send  []byte
		code  int
	}{
		{"rsv1 without the extension", false, frame(0xC1, string(p)), 1002},
		{"rsv1 on a continuation", true, bytes.Join([][]byte{frame(0x41, string(p[:10])), frame(0xC0, string(p[10:]))}, nil), 1002},
		{"rsv1 on a ping", true, frame(0xC9, ""), 1002},
		{"rsv1 on a close", true, wstest.RawFrame(0xC8, true, wstest.ClosePayload(1000, "")), 1002},
		{"rsv2 with the extension", true, frame(0xA1, "x"), 1002},
		{"not deflate", true, frame(0xC1, "\xff\xff\xff\xff"), 1007},
		{"invalid utf8 inside", true, frame(0xC1, string(zDeflate("bad \xff utf8"))), 1007},
		{"zip bomb", true, wstest.RawFrame(0xC2, true, bomb.Bytes()[:bomb.Len()-4]), 1009},
		{"just over max", true, frame(0xC1, string(zDeflate(strings.Repeat("a", 64<<10+1)))), 1009},
		{"bytes after the final block", true, frame(0xC1, string(finalBlock("hello"))+"junk"), 1007},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var offers []string
			if tc.offer {
				offers = []string{browser}
			}
			c := dialDeflate(t, addr, "specialKey=bad", offers...)
			c.WriteRaw(tc.send)
			expectCloseFrame(t, c, tc.name, tc.code, "*")
			watcher.WriteText("still here")
			if got, _ := readDeflated(t, watcher, "watcher"); got != "still here" {
				t.Fatalf("watcher got %q", got)
			}
		})
	}
	// Not inflating, or inflating too far; bad UTF-8 after a good inflate is not one.
	if n := stats.InflateErrors.Load(); n != 4 {
		t.Fatalf("inflate errors %d, want 4", n)
	}
}

// TestDeflateSharedFrame: one compression per broadcast, the very same
// bytes to every deflate peer; a peer with a small server_max_window_bits
// gets long messages uncompressed.
func TestDeflateSharedFrame(t *testing.T) {
	_, addr, stats := start(t, deflateConfig(0))
	const n = 20
	peers := make([]*wstest.Client, n)
	for i := range peers {
		peers[i] = dialDeflate(t, addr, fmt.Sprintf("specialKey=p%d", i), browser)
	}
	small := dialDeflate(t, addr, "specialKey=small", "permessage-deflate; server_max_window_bits=9")
	for k, size := range []int{200, 512, 513, 4000} {
		msg := chatLine(size)
		peers[0].WriteText(msg)
		var first []byte
		for i, c := range peers {
			f, err := c.ReadFrame(wstest.DefaultTimeout)
			if err != nil || f.Rsv != 4 {
				t.Fatalf("peer %d: %v rsv %d", i, err, f.Rsv)
			}
			if i == 0 {
				first = f.Payload
				if got, err := zInflate(first); err != nil || got != msg {
					t.Fatalf("does not inflate back: %v", err)
				}
			} else if !bytes.Equal(f.Payload, first) {
				t.Fatalf("peer %d got other bytes", i)
			}
		}
		got, compressed := readDeflated(t, small, "small window")
		if got != msg || compressed != (size <= 512) {
			t.Fatalf("window 2^9, %d bytes: compressed %v", size, compressed)
		}
		if e := stats.DeflateEncodings.Load(); e != uint64(k+1) {
			t.Fatalf("%d compressions after %d broadcasts", e, k+1)
		}
	}
	if saved := stats.DeflateBytesSaved.Load(); saved < 4000*n {
		t.Fatalf("saved %d bytes", saved)
	}
}

// TestDeflateContextTakeover: a client that keeps its compression context
// (what browsers do when allowed), inflated through the connection's
// window only.
func TestDeflateContextTakeover(t *testing.T) {
	_, addr, _ := start(t, deflateConfig(10))
	c := dialDeflate(t, addr, "specialKey=ctx", browser)
	if c.Extensions != "permessage-deflate;server_no_context_takeover;client_max_window_bits=10" {
		t.Fatalf("answered %q", c.Extensions)
	}
	var history []byte
	for i := range 30 {
		msg := chatLine(50 + i*37)
		var b bytes.Buffer
		w, _ := stdflate.NewWriterDict(&b, 6, history[max(0, len(history)-1024):])
		w.Write([]byte(msg))
		w.Flush()
		history = append(history, msg...)
		c.WriteRaw(wstest.RawFrame(0xC1, true, b.Bytes()[:b.Len()-4]))
		if got, _ := readDeflated(t, c, "self"); got != msg {
			t.Fatalf("message %d: %.40q", i, got)
		}
	}
}

// TestDeflateGorilla: gorilla/websocket with EnableCompression (which
// offers both no_context_takeover parameters) chats with plain and gzip
// peers.
func TestDeflateGorilla(t *testing.T) {
	_, addr, stats := start(t, deflateConfig(0))
	d := websocket.Dialer{EnableCompression: true, HandshakeTimeout: wstest.DefaultTimeout}
	g, resp, err := d.Dial("ws://"+addr+"/?specialKey=gorilla", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != ansNoCtx {
		t.Fatalf("answered %q", got)
	}
	plain := dialDeflate(t, addr, "specialKey=plain")
	for _, msg := range []string{"hi", chatLine(100), chatLine(5000), chatLine(64 << 10), ""} {
		g.SetReadDeadline(time.Now().Add(wstest.DefaultTimeout))
		if err := g.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		op, got, err := g.ReadMessage()
		if err != nil || op != websocket.TextMessage || string(got) != msg {
			t.Fatalf("gorilla echo of %d bytes: %d bytes, op %d, %v", len(msg), len(got), op, err)
		}
		expectText(t, plain, "plain", msg)
		plain.WriteText(msg + "!")
		expectText(t, plain, "plain", msg+"!")
		if _, got, err := g.ReadMessage(); err != nil || string(got) != msg+"!" {
			t.Fatalf("gorilla from plain: %v", err)
		}
	}
	if stats.DeflateEncodings.Load() == 0 {
		t.Fatal("nothing compressed for gorilla")
	}
	g.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
	if _, _, err := g.ReadMessage(); !websocket.IsCloseError(err, 1000) {
		t.Fatalf("close: %v", err)
	}
}

// TestDeflateCoder: github.com/coder/websocket, its own deflate code, with
// and without context takeover, against wsd with and without a client window.
func TestDeflateCoder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   coder.CompressionMode
		bits   int
		answer string
	}{
		{"no context takeover", coder.CompressionNoContextTakeover, 0, ansNoCtx},
		{"context takeover told not to", coder.CompressionContextTakeover, 0, ansNoCtx},
		{"context takeover, 32 KiB window", coder.CompressionContextTakeover, 15, "permessage-deflate;server_no_context_takeover"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr, stats := start(t, deflateConfig(tc.bits))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := coder.Dial(ctx, "ws://"+addr+"/?specialKey=coder", &coder.DialOptions{
				CompressionMode: tc.mode, CompressionThreshold: 1, HTTPHeader: http.Header{}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			c.SetReadLimit(2 << 20)
			if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != tc.answer {
				t.Fatalf("answered %q, want %q", got, tc.answer)
			}
			peer := dialDeflate(t, addr, "specialKey=peer", browser)
			var wg sync.WaitGroup
			msgs := []string{"x", chatLine(100), chatLine(100), chatLine(3000), chatLine(64 << 10), chatLine(200), ""}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, m := range msgs {
					if got, _ := readDeflated(t, peer, "peer"); got != m {
						t.Errorf("peer got %d bytes, want %d", len(got), len(m))
						return
					}
				}
			}()
			for _, m := range msgs {
				if err := c.Write(ctx, coder.MessageText, []byte(m)); err != nil {
					t.Fatal(err)
				}
				typ, got, err := c.Read(ctx)
				if err != nil || typ != coder.MessageText || string(got) != m {
					t.Fatalf("echo of %d bytes: %d bytes, %v", len(m), len(got), err)
				}
			}
			wg.Wait()
			if stats.InflateErrors.Load() != 0 || stats.DeflateEncodings.Load() > stats.Broadcasts.Load() {
				t.Fatalf("inflate errors %d, %d compressions for %d broadcasts", stats.InflateErrors.Load(),
					stats.DeflateEncodings.Load(), stats.Broadcasts.Load())
			}
			c.Close(coder.StatusNormalClosure, "")
		})
	}
}
