// Package wstest holds what wsd's tests share: a raw WebSocket client that
// can send anything (malformed frames included) and read frames one at a
// time, a seed client (gorilla/websocket, as the original deployment's
// clients), a chat protocol v1 client on the raw one (V1: commands as
// JSON, server frames decoded into Envelopes), frame and gzip helpers, a
// /metrics scraper, Eventually for polling, and the real binary
// (race-enabled when the tests are) started on a free loopback port.
//
// It imports nothing of wsd, so any package's tests may use it, codec's and
// session's included; starting wsd in-process is internal/testserver's job.
package wstest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Client is a raw WebSocket client over one TCP connection.
type Client struct {
	Conn net.Conn
	// Extensions is the 101's Sec-WebSocket-Extensions (lines joined by ", ").
	Extensions string
	// Protocol is the 101's Sec-WebSocket-Protocol: the subprotocol the
	// server chose, "" when it chose none.
	Protocol string
	r        *bufio.Reader
}

// DefaultTimeout bounds every read a test does.
const DefaultTimeout = 5 * time.Second

// Dial connects to ws://addr/?query and upgrades. It fails the test on error.
func Dial(t testing.TB, addr, query string) *Client {
	t.Helper()
	c, resp, err := TryDial(addr, query)
	if err != nil {
		t.Fatalf("dial %s/?%s: %v (status %d)", addr, query, err, resp)
	}
	t.Cleanup(func() { c.Conn.Close() })
	return c
}

// TryDial is Dial without a test: it returns the HTTP status on refusal.
func TryDial(addr, query string) (*Client, int, error) {
	return TryDialHeaders(addr, "/?"+query, nil)
}

// TryDialHeaders upgrades with a custom request target and extra headers.
func TryDialHeaders(addr, target string, header http.Header) (*Client, int, error) {
	return TryDialWith(&net.Dialer{Timeout: DefaultTimeout}, addr, target, header)
}

// TryDialWith is TryDialHeaders through d (to set socket options before
// connecting, such as a small receive buffer for a client that never reads).
func TryDialWith(d *net.Dialer, addr, target string, header http.Header) (*Client, int, error) {
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	conn.SetDeadline(time.Now().Add(DefaultTimeout))
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n", target, addr)
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&req, "%s: %s\r\n", k, v)
		}
	}
	req.WriteString("\r\n")
	if _, err := conn.Write(req.Bytes()); err != nil {
		conn.Close()
		return nil, 0, err
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		conn.Close()
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		conn.Close()
		return nil, resp.StatusCode, fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		conn.Close()
		return nil, resp.StatusCode, fmt.Errorf("bad Sec-WebSocket-Accept %q", got)
	}
	conn.SetDeadline(time.Time{})
	return &Client{Conn: conn, r: r, Extensions: extensions(resp), Protocol: resp.Header.Get("Sec-WebSocket-Protocol")}, resp.StatusCode, nil
}

// WriteFrame writes one masked frame.
func (c *Client) WriteFrame(fin bool, op ws.OpCode, payload []byte) error {
	f := ws.NewFrame(op, fin, append([]byte(nil), payload...))
	return ws.WriteFrame(c.Conn, ws.MaskFrame(f))
}

// WriteText writes one masked, unfragmented text frame.
func (c *Client) WriteText(s string) error { return c.WriteFrame(true, ws.OpText, []byte(s)) }

// WriteRaw writes bytes as they are.
func (c *Client) WriteRaw(p []byte) error {
	_, err := c.Conn.Write(p)
	return err
}

// RawFrame encodes a frame byte by byte: header bits, optional mask.
// Use it for frames the ws package would refuse to build. The mask key's
// bytes differ, so a mask applied at the wrong cycle offset shows.
func RawFrame(b0 byte, masked bool, payload []byte) []byte {
	var out []byte
	n := len(payload)
	b1 := byte(0)
	if masked {
		b1 = 0x80
	}
	switch {
	case n <= 125:
		out = append(out, b0, b1|byte(n))
	case n <= 0xFFFF:
		out = append(out, b0, b1|126, byte(n>>8), byte(n))
	default:
		out = append(out, b0, b1|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	p := append([]byte(nil), payload...)
	if masked {
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		out = append(out, key[:]...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	return append(out, p...)
}

// Frame is a frame read from the server.
type Frame struct {
	Op      ws.OpCode
	Fin     bool
	Rsv     byte // RSV1..3 in the low bits: 4 is permessage-deflate's RSV1
	Payload []byte
}

// CloseCode returns the code of a close frame (1005 if it has none).
func (f Frame) CloseCode() int {
	if len(f.Payload) < 2 {
		return 1005
	}
	return int(binary.BigEndian.Uint16(f.Payload))
}

// ReadFrame reads one frame within timeout.
func (c *Client) ReadFrame(timeout time.Duration) (Frame, error) {
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.Conn.SetReadDeadline(time.Time{})
	h, err := ws.ReadHeader(c.r)
	if err != nil {
		return Frame{}, err
	}
	if h.Masked {
		return Frame{}, errors.New("server sent a masked frame")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return Frame{}, err
	}
	return Frame{Op: h.OpCode, Fin: h.Fin, Rsv: h.Rsv, Payload: p}, nil
}

// ReadMessage reads the next data frame, skipping pings and pongs, and
// returns its text: gunzipped when it is binary.
func (c *Client) ReadMessage(timeout time.Duration) (string, ws.OpCode, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.ReadFrame(time.Until(deadline))
		if err != nil {
			return "", 0, err
		}
		switch f.Op {
		case ws.OpPing, ws.OpPong:
			continue
		case ws.OpClose:
			return "", ws.OpClose, fmt.Errorf("closed with %d", f.CloseCode())
		case ws.OpBinary:
			text, err := Gunzip(f.Payload)
			return text, f.Op, err
		}
		return string(f.Payload), f.Op, nil
	}
}

// ExpectClose is ReadClose that fails the test on error; it returns the
// close code.
func (c *Client) ExpectClose(t testing.TB, timeout time.Duration) int {
	t.Helper()
	f, err := c.ReadClose(timeout)
	if err != nil {
		t.Fatal(err)
	}
	return f.CloseCode()
}

// ExpectEOF is WaitEOF that fails the test on error.
func (c *Client) ExpectEOF(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := c.WaitEOF(timeout); err != nil {
		t.Fatal(err)
	}
}

func isReset(err error) bool {
	return errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset by peer")
}

// Close sends a close frame with code and closes the socket.
func (c *Client) Close(code uint16) {
	p := []byte{byte(code >> 8), byte(code)}
	_ = c.WriteFrame(true, ws.OpClose, p)
	c.Conn.Close()
}

// Gzip returns the gzip of s.
func Gzip(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

// Gunzip returns the inflation of p, which must be one gzip member and
// nothing after it: what wsd sends, and what a seed client sends it.
func Gunzip(p []byte) (string, error) {
	src := bytes.NewReader(p)
	r, err := gzip.NewReader(src)
	if err != nil {
		return "", err
	}
	r.Multistream(false)
	b, err := io.ReadAll(r)
	if err == nil && src.Len() != 0 {
		err = fmt.Errorf("%d bytes after the gzip member", src.Len())
	}
	return string(b), err
}

// Eventually polls cond until it holds or timeout passes, then fails.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
