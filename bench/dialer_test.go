package main

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// pipe gives a client wsConn and the raw server end.
func pipe(t *testing.T) (*wsConn, net.Conn) {
	c, s := net.Pipe()
	t.Cleanup(func() { c.Close(); s.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	s.SetDeadline(time.Now().Add(5 * time.Second))
	return &wsConn{Conn: c}, s
}

func TestReadMessage(t *testing.T) {
	c, s := pipe(t)
	big := make([]byte, 70000) // 64-bit length
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	go func() {
		ws.WriteFrame(s, ws.NewPingFrame([]byte("p1")))
		ws.WriteFrame(s, ws.Frame{Header: ws.Header{OpCode: ws.OpText, Length: 3}, Payload: []byte("hel")})
		ws.WriteFrame(s, ws.NewPongFrame([]byte("p2")))
		ws.WriteFrame(s, ws.Frame{Header: ws.Header{Fin: true, OpCode: ws.OpContinuation, Length: 2}, Payload: []byte("lo")})
		ws.WriteFrame(s, ws.NewBinaryFrame(make([]byte, 300))) // 16-bit length
		ws.WriteFrame(s, ws.NewTextFrame(big))
		ws.WriteFrame(s, ws.MaskFrame(ws.NewTextFrame([]byte("masked"))))
		ws.WriteFrame(s, ws.NewCloseFrame(ws.NewCloseFrameBody(4001, "replaced")))
	}()
	// The client answers the ping with a pong carrying the same payload.
	pong := make(chan ws.Frame, 1)
	go func() {
		f, _ := ws.ReadFrame(s)
		pong <- f
	}()
	var pongs []string
	onPong := func(p []byte) { pongs = append(pongs, string(p)) }
	op, p, err := c.readMessage(onPong)
	if err != nil || op != ws.OpText || string(p) != "hello" {
		t.Fatalf("fragmented: %v %q %v", op, p, err)
	}
	if f := <-pong; f.Header.OpCode != ws.OpPong || !f.Header.Masked {
		t.Fatalf("answer to ping: %+v", f.Header)
	} else if ws.Cipher(f.Payload, f.Header.Mask, 0); string(f.Payload) != "p1" {
		t.Fatalf("pong payload %q", f.Payload)
	}
	if len(pongs) != 1 || pongs[0] != "p2" {
		t.Fatalf("pongs %q", pongs)
	}
	if op, p, err = c.readMessage(nil); err != nil || op != ws.OpBinary || len(p) != 300 {
		t.Fatalf("binary: %v %d %v", op, len(p), err)
	}
	if op, p, err = c.readMessage(nil); err != nil || op != ws.OpText || string(p) != string(big) {
		t.Fatalf("big: %v %d %v", op, len(p), err)
	}
	if _, p, err = c.readMessage(nil); err != nil || string(p) != "masked" {
		t.Fatalf("masked: %q %v", p, err)
	}
	var ce *closeError
	if _, _, err = c.readMessage(nil); !errors.As(err, &ce) || ce.code != 4001 || errKind(err) != "close-4001" {
		t.Fatalf("close: %v", err)
	}
}

func TestReadMessageProtocolErrors(t *testing.T) {
	for name, raw := range map[string][]byte{
		"rsv bits":          {0xc1, 0x00},
		"unknown opcode":    {0x83, 0x00},
		"fragmented ping":   {0x09, 0x00},
		"long ping":         {0x89, 126, 0, 200},
		"orphan continue":   {0x80, 0x00},
		"huge frame":        {0x82, 127, 0, 0, 0, 0, 0x7f, 0, 0, 0},
		"text inside frags": {0x01, 0x01, 'a', 0x81, 0x01, 'b'},
	} {
		t.Run(name, func(t *testing.T) {
			c, s := pipe(t)
			go s.Write(raw)
			if _, _, err := c.readMessage(nil); !errors.Is(err, errProtocol) {
				t.Fatalf("got %v, want a protocol error", err)
			}
		})
	}
}

func TestWriteFrame(t *testing.T) {
	c, s := pipe(t)
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i)
		}
		go c.writeFrame(ws.OpText, p)
		f, err := ws.ReadFrame(s)
		if err != nil {
			t.Fatal(err)
		}
		if !f.Header.Masked || !f.Header.Fin || f.Header.OpCode != ws.OpText || int(f.Header.Length) != n {
			t.Fatalf("%d: header %+v", n, f.Header)
		}
		ws.Cipher(f.Payload, f.Header.Mask, 0)
		for i := range f.Payload {
			if f.Payload[i] != byte(i) {
				t.Fatalf("%d: payload differs at %d", n, i)
			}
		}
	}
}

func TestErrKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ws.StatusError(503), "http-503"},
		{&closeError{1008}, "close-1008"},
		{errProtocol, "protocol"},
		{net.ErrClosed, "closed"},
		{errors.New("something"), "other"},
	} {
		if got := errKind(tc.err); got != tc.want {
			t.Errorf("errKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	_, err := net.DialTimeout("tcp", "127.0.0.1:1", time.Second)
	if got := errKind(err); got != "refused" {
		t.Errorf("refused dial: %q (%v)", got, err)
	}
}

func BenchmarkReadMessage(b *testing.B) {
	frame := ws.MustCompileFrame(ws.NewTextFrame(make([]byte, 256)))
	r := &repeatReader{b: frame}
	c := &wsConn{Conn: &readOnlyConn{r: r}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.readMessage(nil); err != nil {
			b.Fatal(err)
		}
	}
}

type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m := copy(p[n:], r.b[r.off:])
		n += m
		r.off = (r.off + m) % len(r.b)
	}
	return n, nil
}

type readOnlyConn struct {
	net.Conn
	r *repeatReader
}

func (c *readOnlyConn) Read(p []byte) (int, error) { return c.r.Read(p) }
