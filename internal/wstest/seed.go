package wstest

import (
	"crypto/tls"
	"fmt"
	"net/url"
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

// WSSDial is SeedDial over wss:// with the client TLS configuration tc
// (nil: InsecureTLS).
func WSSDial(t testing.TB, addr, query string, tc *tls.Config) *websocket.Conn {
	t.Helper()
	c, err := TryWSSDial(addr, query, tc)
	if err != nil {
		t.Fatalf("dial wss://%s/?%s: %v", addr, query, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TryWSSDial connects a gorilla client to wss://addr/?query with tc (nil:
// InsecureTLS) within DefaultTimeout. A refused upgrade's error says the
// HTTP status (0 when there was no response).
func TryWSSDial(addr, query string, tc *tls.Config) (*websocket.Conn, error) {
	if tc == nil {
		tc = InsecureTLS()
	}
	d := websocket.Dialer{TLSClientConfig: tc, HandshakeTimeout: DefaultTimeout}
	u := url.URL{Scheme: "wss", Host: addr, Path: "/", RawQuery: query}
	c, resp, err := d.Dial(u.String(), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return nil, fmt.Errorf("%w (status %d)", err, status)
	}
	return c, nil
}
