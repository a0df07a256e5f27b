package client

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

const waitTimeout = 10 * time.Second

// startWsd runs wsd in-process with the delivery and handshake limits
// lifted (the tests make bursts of both) and returns its ws:// URL.
func startWsd(t testing.TB, cfg session.Config) string {
	t.Helper()
	cfg.MaxDeliveryRate, cfg.MaxHandshakesPerIP = -1, -1
	srv := testserver.Start(t, server.Config{Session: cfg})
	return "ws://" + srv.Addr().String() + "/"
}

// fastBackoff keeps reconnects quick in tests.
var fastBackoff = Backoff{Min: 5 * time.Millisecond, Max: 50 * time.Millisecond}

func dial(t testing.TB, u string, o Options) *Client {
	t.Helper()
	if o.Backoff == (Backoff{}) {
		o.Backoff = fastBackoff
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := Dial(ctx, u, o)
	if err != nil {
		t.Fatalf("dial %s as %s: %v", u, o.Key, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recorder drains a client's Events, keeping them for the test.
type recorder struct {
	mu     sync.Mutex
	events []Event
	done   chan struct{}
}

func record(c *Client) *recorder {
	r := &recorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ev := range c.Events() {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *recorder) messages(room string) []*Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Message
	for _, ev := range r.events {
		if m, ok := ev.(*Message); ok && m.Room == room {
			out = append(out, m)
		}
	}
	return out
}

func (r *recorder) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// waitFor fails the test unless cond holds within waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitTimeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// proxy forwards TCP to a server and can cut every connection at once
// (an RST both ways), or mute the server's side of them.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]net.Conn
	mute   bool
	wg     sync.WaitGroup
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]net.Conn{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) url() string { return "ws://" + p.ln.Addr().String() + "/" }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c] = s
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(s, c); s.Close() }()
		go func() {
			defer p.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				p.mu.Lock()
				mute := p.mute
				p.mu.Unlock()
				if n > 0 && !mute {
					if _, werr := c.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			c.Close()
		}()
	}
}

// cut resets every connection through the proxy.
func (p *proxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for c, s := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
		s.Close()
		delete(p.conns, c)
	}
	return n
}

func (p *proxy) setMute(m bool) {
	p.mu.Lock()
	p.mute = m
	p.mu.Unlock()
}

func isProtocolError(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe)
}
