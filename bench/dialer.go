// The client side of a connection: a bounded concurrent dialer that binds
// several loopback source addresses (so N can pass one address's ephemeral
// port range), the gobwas/ws client handshake, and a small alloc-free frame
// reader and writer with per-connection buffers that are reused.

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
)

const maxFrame = 2 << 20 // larger frames from the server are an error

// wsConn is one client connection. Reads happen on one goroutine at a
// time; writes are serialised by wmu (a reader answers pings while a
// sender writes).
type wsConn struct {
	net.Conn
	br   *bufio.Reader
	gzip bool
	// deflate: permessage-deflate was negotiated. compressed: the message
	// readMessage last returned came with RSV1 (its payload is DEFLATE).
	deflate, compressed bool
	rbuf                []byte // frame payloads, reused
	abuf                []byte // fragmented messages, reused
	cbuf                [125]byte
	rsz                 int // read buffer size, allocated on first read
	wmu                 sync.Mutex
	wbuf                []byte
	zbuf                []byte // a compressed message being sent
	// v1: the connection speaks chat protocol v1; room is its first room
	// (sendText's target), cmd a command being built, ebuf an envelope
	// read from a compressed frame.
	v1        bool
	room      string
	cmd, ebuf []byte
	envs      *envMemo // gunzipped envelopes by frame, shared; nil: none
}

// dialer opens connections to one server from a rotating set of source
// addresses.
type dialer struct {
	readBuf int
	addr    string
	addrs   []string // several servers (cluster): connection i dials addrs[i%len]
	src     []*net.TCPAddr
	timeout time.Duration
	prefix  string // specialKey prefix, unique per run
	room    string // room= of every connection ("" for the default room)
	rcvBuf  int    // SO_RCVBUF before connecting (0: the kernel's): a client that never reads
	v1      bool   // offer the wsd.v1 subprotocol and refuse a server that does not choose it
	// queryFor, when set, gives connection i more of its query
	// (since=…&epoch=…), appended as it is.
	queryFor func(i int) string
	// envs, when set, is shared by every connection's readEnvelope.
	envs *envMemo
	hs   ws.Dialer
	hsZ  ws.Dialer   // offering permessage-deflate
	tls  *tls.Config // nil: ws://
}

// browserOffer is what Chromium and Firefox offer.
var browserOffer = httphead.Option{Name: []byte("permessage-deflate"), Parameters: func() (p httphead.Parameters) {
	p.Set([]byte("client_max_window_bits"), nil)
	return p
}()}

func newDialer(o *options, prefix string) *dialer {
	d := &dialer{readBuf: o.readBuf, addr: o.addr, addrs: o.addrs, timeout: o.dialTimeout, prefix: prefix,
		hs: ws.Dialer{ReadBufferSize: 1024, WriteBufferSize: 512}, v1: o.v1, room: o.room}
	if d.v1 {
		d.hs.Protocols = []string{v1Subprotocol}
	}
	if o.deflate {
		d.hsZ = d.hs
		d.hsZ.Extensions = []httphead.Option{browserOffer}
	}
	d.src = tcpAddrs(o.src)
	if o.tls {
		// Loopback benchmarks against a throwaway self-signed certificate.
		// Session resumption stays off: every dial pays a full handshake.
		d.tls = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
	}
	return d
}

// bindNoPort lets the kernel pick the source port at connect time, per
// 4-tuple, rather than at bind time per address: a bound source address
// otherwise limits every destination together to one port range.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, 24 /* IP_BIND_ADDRESS_NO_PORT */, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// smallRcvBuf also shrinks the socket's receive buffer to n bytes, so that
// what a client that never reads is sent stays in the server, not in the
// client's kernel.
func smallRcvBuf(n int) func(string, string, syscall.RawConn) error {
	return func(network, addr string, c syscall.RawConn) error {
		if err := bindNoPort(network, addr, c); err != nil {
			return err
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// dial connects connection number i (its source address and key follow
// from i) and upgrades it.
func (d *dialer) dial(i int, gz bool) (*wsConn, error) {
	addr := d.addr
	if len(d.addrs) > 0 {
		addr = d.addrs[i%len(d.addrs)]
	}
	nd := net.Dialer{LocalAddr: d.src[i%len(d.src)], Timeout: d.timeout, Control: bindNoPort}
	if d.rcvBuf > 0 {
		nd.Control = smallRcvBuf(d.rcvBuf)
	}
	conn, err := nd.Dial("tcp4", addr)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(d.timeout))
	scheme := "ws"
	if d.tls != nil {
		tc := tls.Client(conn, d.tls)
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		conn, scheme = tc, "wss"
	}
	q := "specialKey=" + d.prefix + "-" + itoa(i)
	if gz {
		q += "&support_gzip=1"
	}
	if d.room != "" {
		q += "&room=" + url.QueryEscape(d.room)
	}
	if d.queryFor != nil {
		if extra := d.queryFor(i); extra != "" {
			q += "&" + extra
		}
	}
	hs := d.hs
	if !gz && d.hsZ.Extensions != nil {
		hs = d.hsZ
	}
	br, got, err := hs.Upgrade(conn, &url.URL{Scheme: scheme, Host: addr, Path: "/", RawQuery: q})
	if err != nil {
		conn.Close()
		return nil, err
	}
	if d.v1 && got.Protocol != v1Subprotocol {
		conn.Close()
		return nil, errNotV1
	}
	conn.SetDeadline(time.Time{})
	z := false
	for _, e := range got.Extensions {
		z = z || string(e.Name) == "permessage-deflate"
	}
	return &wsConn{Conn: conn, br: br, gzip: gz, deflate: z, rsz: d.readBuf, v1: d.v1, room: d.room, envs: d.envs}, nil
}

// tcpAddrs are the source addresses src, any port.
func tcpAddrs(src []string) []*net.TCPAddr {
	var out []*net.TCPAddr
	for _, s := range src {
		out = append(out, &net.TCPAddr{IP: net.ParseIP(s)})
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// tcpConn returns the TCP connection under c (under TLS with -tls).
func tcpConn(c net.Conn) *net.TCPConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	return c.(*net.TCPConn)
}

// dialAll opens n connections with o.dialers concurrent dialers, within
// o.timeout in all. It returns the connections that opened (nil where one
// failed), the time taken and the failures by kind. live.conns counts up.
func dialAll(o *options, d *dialer, n int, gz func(i int) bool, l *live) ([]*wsConn, time.Duration) {
	conns := make([]*wsConn, n)
	var next atomic.Int64
	deadline := time.Now().Add(o.timeout)
	start := time.Now()
	var wg sync.WaitGroup
	for range min(o.dialers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if time.Now().After(deadline) {
					l.errs.add("dial-phase-timeout")
					continue
				}
				c, err := d.dial(i, gz(i))
				if err != nil {
					l.errs.add(errKind(err))
					continue
				}
				conns[i] = c
				l.conns.Add(1)
			}
		}()
	}
	wg.Wait()
	return conns, time.Since(start)
}

// closeAll closes every connection and returns how many were open.
func closeAll(conns []*wsConn) int {
	n := 0
	for _, c := range conns {
		if c != nil {
			c.Close()
			n++
		}
	}
	return n
}

// setDeadlineAll bounds every read and write on the connections: whatever
// happens, no goroutine blocks on a socket past t.
func setDeadlineAll(conns []*wsConn, t time.Time) {
	for _, c := range conns {
		if c != nil {
			c.SetDeadline(t)
		}
	}
}

func (c *wsConn) reader() *bufio.Reader {
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.Conn, max(c.rsz, 256))
	}
	return c.br
}

// closeError is a close frame from the server.
type closeError struct{ code int }

func (e *closeError) Error() string { return fmt.Sprintf("close %d", e.code) }

var errProtocol = errors.New("protocol error from server")

// readFrame reads one frame header and payload. Control payloads land in
// c.cbuf, data payloads in c.rbuf; both are valid until the next read.
// rsv1 is permessage-deflate's bit, allowed only where RFC 7692 allows it.
func (c *wsConn) readFrame() (op ws.OpCode, fin, rsv1 bool, p []byte, err error) {
	br := c.reader()
	// Peek+Discard rather than io.ReadFull into a local array: nothing
	// escapes, so a frame costs no allocation.
	h, err := br.Peek(2)
	if err != nil {
		return
	}
	fin, op = h[0]&0x80 != 0, ws.OpCode(h[0]&0x0f)
	masked, rsv := h[1]&0x80 != 0, h[0]&0x70
	n := uint64(h[1] & 0x7f)
	br.Discard(2)
	rsv1 = rsv == 0x40 && c.deflate && (op == ws.OpText || op == ws.OpBinary)
	if rsv != 0 && !rsv1 {
		return op, fin, rsv1, nil, errProtocol
	}
	switch n {
	case 126:
		if h, err = br.Peek(2); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(h))
		br.Discard(2)
	case 127:
		if h, err = br.Peek(8); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(h)
		br.Discard(8)
	}
	var mask [4]byte
	if masked {
		if h, err = br.Peek(4); err != nil {
			return
		}
		copy(mask[:], h)
		br.Discard(4)
	}
	if op.IsControl() {
		if n > 125 || !fin {
			return op, fin, rsv1, nil, errProtocol
		}
		p = c.cbuf[:n]
	} else {
		if n > maxFrame {
			return op, fin, rsv1, nil, errProtocol
		}
		if uint64(cap(c.rbuf)) < n {
			c.rbuf = make([]byte, n)
		}
		p = c.rbuf[:n]
	}
	if _, err = io.ReadFull(br, p); err != nil {
		return
	}
	if masked {
		ws.Cipher(p, mask, 0)
	}
	return op, fin, rsv1, p, nil
}

// readMessage returns the next data message, answering pings and
// reporting pongs to onPong (may be nil). A close frame ends it with a
// *closeError.
func (c *wsConn) readMessage(onPong func([]byte)) (ws.OpCode, []byte, error) {
	var first ws.OpCode
	frag := false
	for {
		op, fin, rsv1, p, err := c.readFrame()
		if err != nil {
			return op, nil, err
		}
		switch op {
		case ws.OpPing:
			if err := c.writeFrame(ws.OpPong, p); err != nil {
				return op, nil, err
			}
			continue
		case ws.OpPong:
			if onPong != nil {
				onPong(p)
			}
			continue
		case ws.OpClose:
			code := 1005
			if len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
			return op, nil, &closeError{code}
		case ws.OpText, ws.OpBinary:
			if frag {
				return op, nil, errProtocol
			}
			c.compressed = rsv1
			if fin {
				return op, p, nil
			}
			first, frag = op, true
			c.abuf = append(c.abuf[:0], p...)
		case ws.OpContinuation:
			if !frag || len(c.abuf)+len(p) > maxFrame {
				return op, nil, errProtocol
			}
			c.abuf = append(c.abuf, p...)
			if fin {
				return first, c.abuf, nil
			}
		default:
			return op, nil, errProtocol
		}
	}
}

// writeFrame writes one masked frame in one write. On a deflate
// connection a text message goes compressed (RSV1), as a browser sends it.
func (c *wsConn) writeFrame(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b0 := 0x80 | byte(op)
	if c.deflate && op == ws.OpText {
		c.zbuf = appendDeflate(c.zbuf[:0], p)
		p = c.zbuf
		b0 |= 0x40
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	b := appendMasked(c.wbuf[:0], b0, p, mask)
	c.wbuf = b
	_, err := c.Write(b)
	return err
}

// appendMasked appends one client frame: first byte b0 (FIN, opcode),
// the length, mask and masked payload p.
func appendMasked(b []byte, b0 byte, p []byte, mask [4]byte) []byte {
	b = append(b, b0)
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, p...)
	ws.Cipher(b[start:], mask, 0)
	return b
}

// errKind names a failure for the error table.
func errKind(err error) string {
	var se ws.StatusError
	var ce *closeError
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return fmt.Sprintf("http-%d", int(se))
	case errors.As(err, &ce):
		return fmt.Sprintf("close-%d", ce.code)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no-source-port"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken-pipe"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "client-out-of-files"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.Is(err, errProtocol):
		return "protocol"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	case errors.Is(err, errNotV1):
		return "not-v1"
	case errors.Is(err, errV1Refused):
		return "v1-error"
	case errors.Is(err, ws.ErrHandshakeBadProtocol), errors.Is(err, ws.ErrHandshakeBadUpgrade),
		errors.Is(err, ws.ErrHandshakeBadConnection), errors.Is(err, ws.ErrHandshakeBadSecAccept),
		errors.Is(err, ws.ErrMalformedResponse):
		return "bad-handshake"
	}
	return "other"
}
