package server_test

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
	"github.com/wsd-chat/wsd/tlswire"
)

// wssServer is wsd serving wss:// in-process with a fresh self-signed
// certificate.
type wssServer struct {
	srv      *server.Server
	addr     string
	stats    *session.Stats
	cert     *tlswire.Certificate
	certFile string
	keyFile  string
	dir      string
}

func startTLS(t *testing.T, cfg session.Config) *wssServer {
	t.Helper()
	w := &wssServer{dir: t.TempDir()}
	w.certFile, w.keyFile = wstest.ValidCertFiles(t, w.dir, "first")
	var err error
	if w.cert, err = tlswire.LoadCertificate(w.certFile, w.keyFile); err != nil {
		t.Fatal(err)
	}
	cfg.TLS = tlswire.ServerConfig(w.cert)
	w.srv = wstest.StartServer(t, server.Config{Session: cfg})
	w.addr = w.srv.Addr().String()
	w.stats = w.srv.Hub().Stats()
	return w
}

// wssDial connects a gorilla client (what seed clients use) over TLS.
func wssDial(t *testing.T, addr, query string, tc *tls.Config) *websocket.Conn {
	t.Helper()
	c, err := tryWSS(addr, query, tc)
	if err != nil {
		t.Fatalf("dial wss://%s/?%s: %v", addr, query, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tryWSS(addr, query string, tc *tls.Config) (*websocket.Conn, error) {
	if tc == nil {
		tc = wstest.InsecureTLS()
	}
	d := websocket.Dialer{TLSClientConfig: tc, HandshakeTimeout: 5 * time.Second}
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

// readSeed reads one message as a seed client does (binary = gzip'd text).
func readSeed(t *testing.T, c *websocket.Conn, who string) (string, int) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, p, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("%s: read: %v", who, err)
	}
	if mt == websocket.BinaryMessage {
		zr, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			t.Fatalf("%s: binary frame is not gzip: %v", who, err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: gunzip: %v", who, err)
		}
		return string(b), mt
	}
	return string(p), mt
}

func TestTLSSeedContract(t *testing.T) {
	w := startTLS(t, session.Config{})
	tc := wstest.ClientTLS(t, w.certFile)      // verifies the chain, not just InsecureSkipVerify
	tc.NextProtos = []string{"h2", "http/1.1"} // what browsers offer
	plain := wssDial(t, w.addr, "specialKey=alice", tc)
	zipped := wssDial(t, w.addr, "specialKey=bob&support_gzip=1", tc)

	big := strings.Repeat("0123456789abcdef", 20<<10) // 320 KiB: many records each way
	for i, sender := range []*websocket.Conn{plain, zipped, plain} {
		text := fmt.Sprintf("hello %d 你好", i)
		if i == 2 {
			text = big
		}
		if err := sender.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
			t.Fatal(err)
		}
		if got, mt := readSeed(t, plain, "plain"); got != text || mt != websocket.TextMessage {
			t.Fatalf("plain client got %.40q (type %d), want text %.40q", got, mt, text)
		}
		if got, mt := readSeed(t, zipped, "gzip"); got != text || mt != websocket.BinaryMessage {
			t.Fatalf("gzip client got %.40q (type %d), want gzip'd binary of %.40q", got, mt, text)
		}
	}
	// gzip'd text sent as binary.
	if err := zipped.WriteMessage(websocket.BinaryMessage, wstest.Gzip("compressed hello")); err != nil {
		t.Fatal(err)
	}
	if got, _ := readSeed(t, plain, "plain"); got != "compressed hello" {
		t.Fatalf("plain client got %q", got)
	}
	readSeed(t, zipped, "gzip")

	// Ping/pong through the record layer.
	pong := make(chan string, 1)
	plain.SetPongHandler(func(s string) error { pong <- s; return nil })
	plain.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(time.Second))
	plain.SetReadDeadline(time.Now().Add(2 * time.Second))
	go plain.ReadMessage()
	select {
	case s := <-pong:
		if s != "p1" {
			t.Fatalf("pong %q", s)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no pong")
	}

	st := plain.UnderlyingConn().(*tls.Conn).ConnectionState()
	if st.NegotiatedProtocol != "http/1.1" || st.Version < tls.VersionTLS12 {
		t.Fatalf("negotiated %q, version %x", st.NegotiatedProtocol, st.Version)
	}
	if w.stats.TLSHandshakes.Load() != 2 {
		t.Fatalf("TLS handshakes %d, want 2", w.stats.TLSHandshakes.Load())
	}
}
