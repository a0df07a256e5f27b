package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsd-chat/wsd/internal/wstest"
)

var testHub *hub

func start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testHub = newHub()
	srv := &http.Server{Handler: testHub}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// waitClients waits until the hub holds n clients: the baseline (like the
// original) registers a connection just after writing its 101, so a
// client's Dial can return first.
func waitClients(t *testing.T, n int) {
	t.Helper()
	wstest.Eventually(t, 5*time.Second, fmt.Sprintf("the hub to hold %d clients", n), func() bool {
		testHub.mu.Lock()
		defer testHub.mu.Unlock()
		return len(testHub.clients) == n
	})
}

// waitJoined waits until the hub holds every conn in all, then sends one
// message from c that every one of them reads.
func waitJoined(t *testing.T, c *websocket.Conn, all ...*websocket.Conn) {
	t.Helper()
	waitClients(t, len(all))
	if err := c.WriteMessage(websocket.TextMessage, []byte("join")); err != nil {
		t.Fatal(err)
	}
	for _, o := range all {
		wstest.SeedRead(t, o)
	}
}

func TestBroadcastTextAndGzip(t *testing.T) {
	addr := start(t)
	plain := wstest.SeedDial(t, addr, "specialKey=a")
	zipped := wstest.SeedDial(t, addr, "specialKey=b&support_gzip=1")
	waitJoined(t, plain, plain, zipped)

	for _, from := range []*websocket.Conn{plain, zipped} {
		if err := from.WriteMessage(websocket.TextMessage, []byte("héllo")); err != nil {
			t.Fatal(err)
		}
		if msg, typ := wstest.SeedRead(t, plain); typ != websocket.TextMessage || msg != "héllo" {
			t.Fatalf("plain peer got %d %q", typ, msg)
		}
		if msg, typ := wstest.SeedRead(t, zipped); typ != websocket.BinaryMessage || msg != "héllo" {
			t.Fatalf("gzip peer got %d %q", typ, msg)
		}
	}

	// A gzip'd text message sent as binary is broadcast like text.
	if err := zipped.WriteMessage(websocket.BinaryMessage, wstest.Gzip("zipped in")); err != nil {
		t.Fatal(err)
	}
	if msg, _ := wstest.SeedRead(t, plain); msg != "zipped in" {
		t.Fatalf("plain peer got %q", msg)
	}
	if msg, _ := wstest.SeedRead(t, zipped); msg != "zipped in" {
		t.Fatal("gzip peer got the wrong message")
	}
}

func TestSameKeyReplaces(t *testing.T) {
	addr := start(t)
	first := wstest.SeedDial(t, addr, "specialKey=k")
	waitJoined(t, first, first)
	second := wstest.SeedDial(t, addr, "specialKey=k")
	first.SetReadDeadline(time.Now().Add(wstest.DefaultTimeout))
	_, _, err := first.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != codeReplaced {
		t.Fatalf("replaced connection: got %v, want close %d", err, codeReplaced)
	}
	waitJoined(t, second, second)
}

func TestPingPong(t *testing.T) {
	addr := start(t)
	c := wstest.SeedDial(t, addr, "specialKey=p")
	got := make(chan string, 1)
	c.SetPongHandler(func(s string) error { got <- s; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("x1"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go c.ReadMessage()
	select {
	case s := <-got:
		if s != "x1" {
			t.Fatalf("pong %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
}

func TestRefusals(t *testing.T) {
	addr := start(t)
	for _, tc := range []struct {
		target string
		status int
	}{{"/", 400}, {"/x?specialKey=a", 404}} {
		_, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+tc.target, nil)
		if err == nil || resp == nil || resp.StatusCode != tc.status {
			t.Errorf("%s: got %v %v, want status %d", tc.target, resp, err, tc.status)
		}
	}
}
