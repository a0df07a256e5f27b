package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// TestDeflateByDefault: the binary with default flags negotiates
// permessage-deflate with Chromium's offer and with gorilla's; a seed gzip
// client beside them is unchanged; -deflate=false declines.
func TestDeflateByDefault(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil || !o.server.Session.Deflate.Enabled || o.server.Session.Deflate.ClientWindowBits != 0 {
		t.Fatalf("defaults: %+v %v", o.server.Session.Deflate, err)
	}
	p := wstest.StartBinary(t)
	c, _, _, err := wstest.RawHandshake(p.Addr, []byte(wstest.UpgradeRequest(p.Addr, "/?specialKey=chromium",
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")))
	if err != nil || c == nil {
		t.Fatal(err)
	}
	defer c.Conn.Close()
	if c.Extensions != "permessage-deflate;server_no_context_takeover;client_no_context_takeover" {
		t.Fatalf("answered %q", c.Extensions)
	}
	seed := wstest.Dial(t, p.Addr, "specialKey=seed&support_gzip=1")
	g, _, err := (&websocket.Dialer{EnableCompression: true}).Dial("ws://"+p.Addr+"/?specialKey=gorilla", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	msg := strings.Repeat("a chat line that compresses well; ", 20)
	if err := g.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	g.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, got, err := g.ReadMessage(); err != nil || string(got) != msg {
		t.Fatalf("gorilla: %v", err)
	}
	if got, _, err := seed.ReadMessage(5 * time.Second); err != nil || got != msg {
		t.Fatalf("seed gzip client: %v", err)
	}
	f, err := c.ReadFrame(5 * time.Second)
	if err != nil || f.Rsv != 4 || len(f.Payload) >= len(msg) {
		t.Fatalf("chromium-like client: rsv %d, %d bytes, %v", f.Rsv, len(f.Payload), err)
	}

	off := wstest.StartBinary(t, "-deflate=false")
	c2, _, _, err := wstest.RawHandshake(off.Addr, []byte(wstest.UpgradeRequest(off.Addr, "/?specialKey=k",
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")))
	if err != nil || c2 == nil || c2.Extensions != "" {
		t.Fatalf("-deflate=false: %v %+v", err, c2)
	}
	c2.Conn.Close()
}
