package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		testHub.mu.Lock()
		got := len(testHub.clients)
		testHub.mu.Unlock()
		if got == n {
			return
		}
	}
	t.Fatalf("the hub never held %d clients", n)
}

func dial(t *testing.T, addr, query string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/?"+query, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", query, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return c
}

func read(t *testing.T, c *websocket.Conn) (int, []byte) {
	t.Helper()
	typ, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, msg
}

func unzip(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
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
		read(t, o)
	}
}

func TestBroadcastTextAndGzip(t *testing.T) {
	addr := start(t)
	plain := dial(t, addr, "specialKey=a")
	zipped := dial(t, addr, "specialKey=b&support_gzip=1")
	waitJoined(t, plain, plain, zipped)

	for _, from := range []*websocket.Conn{plain, zipped} {
		if err := from.WriteMessage(websocket.TextMessage, []byte("héllo")); err != nil {
			t.Fatal(err)
		}
		if typ, msg := read(t, plain); typ != websocket.TextMessage || string(msg) != "héllo" {
			t.Fatalf("plain peer got %d %q", typ, msg)
		}
		if typ, msg := read(t, zipped); typ != websocket.BinaryMessage || unzip(t, msg) != "héllo" {
			t.Fatalf("gzip peer got %d %q", typ, msg)
		}
	}

	// A gzip'd text message sent as binary is broadcast like text.
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte("zipped in"))
	zw.Close()
	if err := zipped.WriteMessage(websocket.BinaryMessage, b.Bytes()); err != nil {
		t.Fatal(err)
	}
	if _, msg := read(t, plain); string(msg) != "zipped in" {
		t.Fatalf("plain peer got %q", msg)
	}
	if _, msg := read(t, zipped); unzip(t, msg) != "zipped in" {
		t.Fatal("gzip peer got the wrong message")
	}
}

func TestSameKeyReplaces(t *testing.T) {
	addr := start(t)
	first := dial(t, addr, "specialKey=k")
	waitJoined(t, first, first)
	second := dial(t, addr, "specialKey=k")
	_, _, err := first.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != codeReplaced {
		t.Fatalf("replaced connection: got %v, want close %d", err, codeReplaced)
	}
	waitJoined(t, second, second)
}

func TestPingPong(t *testing.T) {
	addr := start(t)
	c := dial(t, addr, "specialKey=p")
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
