package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/klauspost/compress/gzip"
)

// loopbackOnly refuses any target or source outside 127.0.0.0/8 and ::1.
func loopbackOnly(addr string, src []string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	for _, h := range append([]string{host}, src...) {
		ip, err := netip.ParseAddr(h)
		if err != nil || !ip.IsLoopback() {
			return fmt.Errorf("%q is not a loopback address: bench only loads this machine", h)
		}
	}
	return nil
}

// conn is one bench connection: a raw socket with a small read buffer.
type conn struct {
	net.Conn
	r    *bufio.Reader
	gzip bool
}

const handshakeTemplate = "GET /?specialKey=%s&support_gzip=%d HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n" +
	"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

// dial connects from src and upgrades with the seed protocol's query.
func dial(addr, src, key string, gz bool, timeout time.Duration) (*conn, error) {
	d := net.Dialer{Timeout: timeout}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	g := 0
	if gz {
		g = 1
	}
	nc.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(nc, handshakeTemplate, key, g, addr); err != nil {
		nc.Close()
		return nil, err
	}
	r := bufio.NewReaderSize(nc, 1024)
	status, err := r.ReadSlice('\n')
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 101")) {
		nc.Close()
		return nil, fmt.Errorf("handshake: %s", bytes.TrimSpace(status))
	}
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("handshake: %w", err)
		}
		if len(line) <= 2 {
			break
		}
	}
	nc.SetDeadline(time.Time{})
	return &conn{Conn: nc, r: r, gzip: gz}, nil
}

// writeText sends one masked text frame.
func (c *conn) writeText(p []byte) error {
	return ws.WriteFrame(c.Conn, ws.MaskFrame(ws.NewTextFrame(p)))
}

// reader decodes server frames for one connection, reusing its buffers.
type reader struct {
	buf  []byte
	text bytes.Buffer
	zr   *gzip.Reader
	br   bytes.Reader
}

var errClosed = errors.New("server closed the connection")

// next returns the next data message as text (gunzipped if binary),
// answering nothing and skipping control frames. The slice is valid until
// the next call.
func (rd *reader) next(c *conn) ([]byte, error) {
	for {
		h, err := ws.ReadHeader(c.r)
		if err != nil {
			return nil, err
		}
		if int64(cap(rd.buf)) < h.Length {
			rd.buf = make([]byte, h.Length)
		}
		p := rd.buf[:h.Length]
		if _, err := io.ReadFull(c.r, p); err != nil {
			return nil, err
		}
		switch h.OpCode {
		case ws.OpText:
			return p, nil
		case ws.OpBinary:
			rd.br.Reset(p)
			if rd.zr == nil {
				if rd.zr, err = gzip.NewReader(&rd.br); err != nil {
					return nil, fmt.Errorf("binary frame is not gzip: %w", err)
				}
			} else if err := rd.zr.Reset(&rd.br); err != nil {
				return nil, fmt.Errorf("binary frame is not gzip: %w", err)
			}
			rd.text.Reset()
			if _, err := rd.text.ReadFrom(rd.zr); err != nil {
				return nil, fmt.Errorf("gunzip: %w", err)
			}
			return rd.text.Bytes(), nil
		case ws.OpClose:
			return nil, errClosed
		}
	}
}

// dialAll opens n connections with bounded concurrency, spreading them
// over the source addresses, and reports progress.
func dialAll(o *options, n int, prefix string, gz func(i int) bool) ([]*conn, time.Duration, map[string]int, error) {
	conns := make([]*conn, n)
	errs := make(map[string]int)
	var mu sync.Mutex
	var next, up atomic.Int64
	start := time.Now()
	stop := progress(o, func() string { return fmt.Sprintf("connecting: %d/%d up", up.Load(), n) })
	var wg sync.WaitGroup
	for w := 0; w < o.dialers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				src := o.src[i%len(o.src)]
				c, err := dial(o.addr, src, fmt.Sprintf("%s%d", prefix, i), gz(i), 10*time.Second)
				if err != nil {
					mu.Lock()
					errs[errKind(err)]++
					mu.Unlock()
					continue
				}
				conns[i] = c
				up.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	stop()
	var failed int
	for _, v := range errs {
		failed += v
	}
	if failed > 0 {
		closeAll(conns)
		return nil, el, errs, fmt.Errorf("%d of %d connections failed: %v", failed, n, errs)
	}
	return conns, el, errs, nil
}

func closeAll(conns []*conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF):
		return "eof"
	}
	s := err.Error()
	for _, k := range []string{"connection refused", "connection reset", "address already in use",
		"cannot assign requested address", "too many open files", "handshake: HTTP/1.1 503", "handshake"} {
		if bytes.Contains([]byte(s), []byte(k)) {
			return k
		}
	}
	return "other"
}

// progress prints a status line about once a second until stopped.
func progress(o *options, line func() string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(o.progress, "  %s\n", line())
			}
		}
	}()
	return func() { close(done); <-finished }
}
