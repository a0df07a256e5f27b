package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// These tests drive the real binary the way the original gin + gorilla
// deployment's clients do: gorilla/websocket, ?specialKey=&support_gzip=.

func TestSeedClientsChat(t *testing.T) {
	p := wstest.StartBinary(t)
	plain := wstest.SeedDial(t, p.Addr, "specialKey=alice")
	zipped := wstest.SeedDial(t, p.Addr, "specialKey=bob&support_gzip=1")
	checkSeedChat(t, plain, zipped)
}

// checkSeedChat: what a plain seed client and a gzip one send reaches both,
// as text for the plain one and as gzip'd binary for the other, and gzip'd
// text sent as binary reaches the plain one as text.
func checkSeedChat(t *testing.T, plain, zipped *websocket.Conn) {
	t.Helper()
	for i, sender := range []*websocket.Conn{plain, zipped} {
		text := fmt.Sprintf("hello %d 你好", i)
		if err := sender.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
			t.Fatal(err)
		}
		if got, mt := wstest.SeedRead(t, plain); got != text || mt != websocket.TextMessage {
			t.Errorf("plain client got %q (type %d), want text %q", got, mt, text)
		}
		if got, mt := wstest.SeedRead(t, zipped); got != text || mt != websocket.BinaryMessage {
			t.Errorf("gzip client got %q (type %d), want gzip'd binary of %q", got, mt, text)
		}
	}

	// A seed gzip client may also send gzip'd text as a binary message.
	if err := zipped.WriteMessage(websocket.BinaryMessage, wstest.Gzip("compressed hello")); err != nil {
		t.Fatal(err)
	}
	if got, mt := wstest.SeedRead(t, plain); got != "compressed hello" || mt != websocket.TextMessage {
		t.Errorf("plain client got %q (type %d) for a gzip'd message", got, mt)
	}
}

func TestSeedPingPong(t *testing.T) {
	p := wstest.StartBinary(t)
	c := wstest.SeedDial(t, p.Addr, "specialKey=pinger")
	pong := make(chan string, 1)
	c.SetPongHandler(func(s string) error { pong <- s; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.ReadMessage() // runs the pong handler
	}()
	select {
	case got := <-pong:
		if got != "are you there" {
			t.Errorf("pong payload %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
}

func TestSeedSameKeyReplaces(t *testing.T) {
	p := wstest.StartBinary(t)
	first := wstest.SeedDial(t, p.Addr, "specialKey=k")
	second := wstest.SeedDial(t, p.Addr, "specialKey=k")

	first.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := first.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4001 || ce.Text != "replaced" {
		t.Fatalf("first connection: %v, want close 4001 replaced", err)
	}
	if err := second.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if got, _ := wstest.SeedRead(t, second); got != "still here" {
		t.Errorf("second connection got %q", got)
	}
}

func TestSeedMissingKeyIsRefused(t *testing.T) {
	p := wstest.StartBinary(t)
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+p.Addr+"/?support_gzip=1", nil)
	if err == nil || resp == nil || resp.StatusCode != 400 {
		t.Fatalf("dial without specialKey: err %v, resp %v; want 400", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if !bytes.Contains(body, []byte("specialKey")) {
		t.Errorf("400 body %q does not name the missing parameter", body)
	}
}

func TestSIGTERMDrainsAndExits(t *testing.T) {
	p := wstest.StartBinary(t, "-shutdown-timeout", "5s")
	a := wstest.SeedDial(t, p.Addr, "specialKey=a")
	b := wstest.SeedDial(t, p.Addr, "specialKey=b&support_gzip=1")
	checkSIGTERMDrain(t, p, a, b)
}

// checkSIGTERMDrain: a sends 200 messages and SIGTERM follows; b still
// receives every one, both are then closed with 1001, and wsd exits 0.
func checkSIGTERMDrain(t *testing.T, p *wstest.Process, a, b *websocket.Conn) {
	t.Helper()
	const n = 200
	for i := 0; i < n; i++ {
		if err := a.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// Everything sent before the signal was read by the server once a
	// receives its own last message.
	for i := 0; i < n; i++ {
		if got, _ := wstest.SeedRead(t, a); got != fmt.Sprintf("m%d", i) {
			t.Fatalf("a got %q, want m%d", got, i)
		}
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if got, _ := wstest.SeedRead(t, b); got != fmt.Sprintf("m%d", i) {
			t.Fatalf("b got %q, want m%d", got, i)
		}
	}
	for _, c := range []*websocket.Conn{a, b} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("after SIGTERM: %v, want close 1001", err)
		}
	}
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("wsd exit code %d, want 0\n%s", code, p.Log())
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"-workers", "4", "-pollers", "2", "-shards", "16"}, true},
		{[]string{"-max-message", "x"}, false},
		{[]string{"stray"}, false},
		{[]string{"-deflate=false"}, true},
		{[]string{"-deflate-client-window-bits", "12"}, true},
		{[]string{"-deflate-client-window-bits", "15"}, true},
		{[]string{"-deflate-client-window-bits", "8"}, false},
		{[]string{"-deflate-client-window-bits", "16"}, false},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		if (err == nil) != tc.ok {
			t.Errorf("parseFlags(%q) error %v, want ok=%v", tc.args, err, tc.ok)
		}
	}
	if code := run([]string{"-log-level", "loud"}, io.Discard); code != 2 {
		t.Errorf("bad -log-level exit code %d, want 2", code)
	}
}

// A client that sends and closes at once still gets its echo first: the
// close reply waits for the fan-out of everything it sent.
func TestSendThenCloseGetsEchoFirst(t *testing.T) {
	p := wstest.StartBinary(t)
	c := wstest.Dial(t, p.Addr, "specialKey=quick")
	var burst []byte
	for i := 0; i < 50; i++ {
		burst = append(burst, wstest.RawFrame(0x81, true, []byte(fmt.Sprintf("m%d", i)))...)
	}
	burst = append(burst, wstest.RawFrame(0x88, true, []byte{0x03, 0xE8})...)
	if err := c.WriteRaw(burst); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		got, _, err := c.ReadMessage(5 * time.Second)
		if err != nil || got != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d: %q, %v", i, got, err)
		}
	}
	if code := c.ExpectClose(t, 5*time.Second); code != 1000 {
		t.Fatalf("close code %d, want 1000", code)
	}
	c.ExpectEOF(t, 5*time.Second)
}
