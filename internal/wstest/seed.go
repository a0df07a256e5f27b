package wstest

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// SeedDial connects to ws://addr/?query the way the original gin + gorilla
// deployment's clients do, with gorilla/websocket, and closes the
// connection when the test ends. It fails the test on error.
func SeedDial(t testing.TB, addr, query string) *websocket.Conn {
	t.Helper()
	url := "ws://" + addr + "/?" + query
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// SeedRead reads one message within DefaultTimeout the way a seed client
// does: a binary message is gzip'd text. It returns the text and the
// message type, and fails the test on error.
func SeedRead(t testing.TB, c *websocket.Conn) (string, int) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(DefaultTimeout))
	mt, p, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt == websocket.BinaryMessage {
		text, err := Gunzip(p)
		if err != nil {
			t.Fatalf("binary message is not gzip: %v", err)
		}
		return text, mt
	}
	return string(p), mt
}
