// Package wstest holds what wsd's tests share: a raw WebSocket client that
// can send anything (malformed frames included) and read frames one at a
// time, and helpers that start wsd — in-process or as the real binary — on
// a free loopback port and wait until it is ready.
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
	r    *bufio.Reader
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
	return &Client{Conn: conn, r: r}, resp.StatusCode, nil
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
// Use it for frames the ws package would refuse to build.
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
	return Frame{Op: h.OpCode, Fin: h.Fin, Payload: p}, nil
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

// ExpectClose reads until a close frame and returns its code; it fails the
// test if data or EOF comes first or nothing comes in time.
func (c *Client) ExpectClose(t testing.TB, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.ReadFrame(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for a close frame: %v", err)
		}
		if f.Op == ws.OpClose {
			return f.CloseCode()
		}
		if f.Op != ws.OpPing && f.Op != ws.OpPong {
			t.Fatalf("waiting for a close frame, got %v %q", f.Op, f.Payload)
		}
	}
}

// ExpectEOF waits for the server to close the TCP connection.
func (c *Client) ExpectEOF(t testing.TB, timeout time.Duration) {
	t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
	_, err := io.Copy(io.Discard, c.r)
	if err != nil && !isReset(err) {
		t.Fatalf("waiting for EOF: %v", err)
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

// Gunzip returns the inflation of p.
func Gunzip(p []byte) (string, error) {
	r, err := gzip.NewReader(bytes.NewReader(p))
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(r)
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
