package wstest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// UpgradeRequest returns a well-formed upgrade request head for target
// (e.g. "/?specialKey=k"), with extra header lines (each without CRLF).
func UpgradeRequest(host, target string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n", target, host)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// RawHandshake sends req (any bytes, valid or not) on a fresh connection and
// reads the HTTP response. On a 101 it returns a Client for the upgraded
// connection; otherwise the response body (at most 1 KiB) and a nil Client,
// the connection closed (an error if the server does not close it after
// the response). Every step is bounded by DefaultTimeout.
func RawHandshake(addr string, req []byte) (c *Client, status int, body string, err error) {
	return RawHandshakeParts(addr, req)
}

// PartGap is the pause between the writes of RawHandshakeParts, so that
// each part reaches the server as a read of its own.
const PartGap = 20 * time.Millisecond

// RawHandshakeParts is RawHandshake with the request sent in several
// writes, PartGap apart.
func RawHandshakeParts(addr string, parts ...[]byte) (c *Client, status int, body string, err error) {
	conn, err := net.DialTimeout("tcp", addr, DefaultTimeout)
	if err != nil {
		return nil, 0, "", err
	}
	conn.SetDeadline(time.Now().Add(DefaultTimeout))
	for i, p := range parts {
		if i > 0 {
			time.Sleep(PartGap)
		}
		if _, err := conn.Write(p); err != nil {
			conn.Close()
			return nil, 0, "", err
		}
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		conn.Close()
		return nil, 0, "", err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if err != nil {
			return nil, resp.StatusCode, string(b), fmt.Errorf("reading the refusal: %w", err)
		}
		// A refusal ends the connection: the server closes after it.
		if n, err := r.Read(make([]byte, 1)); n > 0 || err == nil || !isReset(err) {
			return nil, resp.StatusCode, string(b), fmt.Errorf("connection not closed after the refusal: %d bytes, %v", n, err)
		}
		return nil, resp.StatusCode, string(b), nil
	}
	conn.SetDeadline(time.Time{})
	return &Client{Conn: conn, r: r, Extensions: extensions(resp), Protocol: resp.Header.Get("Sec-WebSocket-Protocol")}, resp.StatusCode, "", nil
}

func extensions(resp *http.Response) string {
	return strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", ")
}

// ClosePayload encodes a close frame payload: code then reason.
func ClosePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// ReadClose reads frames until a close frame and returns it, skipping pings
// and pongs; data frames or an error before it are reported as an error.
func (c *Client) ReadClose(timeout time.Duration) (Frame, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.ReadFrame(time.Until(deadline))
		if err != nil {
			return Frame{}, fmt.Errorf("waiting for a close frame: %w", err)
		}
		switch f.Op {
		case 0x8:
			return f, nil
		case 0x9, 0xA:
			continue
		}
		return Frame{}, fmt.Errorf("waiting for a close frame, got opcode %d %.40q", f.Op, f.Payload)
	}
}

// WaitEOF waits up to timeout for the server to close the TCP connection,
// discarding whatever arrives first; a reset counts as closed.
func (c *Client) WaitEOF(timeout time.Duration) error {
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.Conn.SetReadDeadline(time.Time{})
	_, err := io.Copy(io.Discard, c.r)
	if err != nil && !isReset(err) {
		return fmt.Errorf("waiting for EOF: %w", err)
	}
	return nil
}
