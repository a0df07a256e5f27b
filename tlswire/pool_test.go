package tlswire_test

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/tlswire"
)

// discard is an Owner whose client never answers: it drops the server's
// flight and reports how the handshake ended.
type discard struct {
	srv  *tlswire.Conn
	done chan error
}

func (d *discard) FlushTLS()                  { d.srv.TakeOutput(nil) }
func (d *discard) TLSHandshakeDone(err error) { d.done <- err }

// hello is the first flight of a Go TLS client.
func hello(t *testing.T) []byte {
	t.Helper()
	cc, sc := net.Pipe()
	defer sc.Close()
	go func() {
		tls.Client(cc, &tls.Config{InsecureSkipVerify: true}).Handshake()
		cc.Close()
	}()
	buf := make([]byte, 64<<10)
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := sc.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// stall starts a handshake on pool for a client that sent its ClientHello
// and nothing after.
func stall(t *testing.T, cfg *tls.Config, pool *tlswire.Pool, ch []byte) *discard {
	t.Helper()
	d := &discard{done: make(chan error, 1)}
	d.srv = tlswire.NewConn(cfg, pool, d)
	t.Cleanup(d.srv.Close)
	if err := d.srv.Feed(ch); err != nil {
		t.Fatal(err)
	}
	return d
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func ended(d *discard) (error, bool) {
	select {
	case err := <-d.done:
		return err, true
	default:
		return nil, false
	}
}

// A full pool: a queued handshake takes the goroutine of the one parked
// longest, once that one has waited the grace, and only then; the others
// keep waiting while the pool has room.
func TestPool_StalledHandshakeGivesWayWhenFull(t *testing.T) {
	cfg, ch := serverConfig(t), hello(t)
	const grace = 100 * time.Millisecond
	pool := tlswire.NewPool(1, 3)
	pool.SetStallGrace(grace)
	var stalled []*discard
	for i := 0; i < 3; i++ {
		stalled = append(stalled, stall(t, cfg, pool, ch))
		// Parked one after another, so the first is the oldest.
		waitFor(t, "the handshake parked", func() bool { return pool.Parked() == i+1 })
	}
	time.Sleep(2 * grace)
	for i, d := range stalled {
		if err, done := ended(d); done {
			t.Fatalf("stalled handshake %d ended (%v) while the pool had room for all", i, err)
		}
	}

	newcomer := stall(t, cfg, pool, ch)
	select {
	case err := <-stalled[0].done:
		if !errors.Is(err, tlswire.ErrStalled) {
			t.Fatalf("oldest stalled handshake ended with %v, want ErrStalled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the oldest stalled handshake did not give way to a queued one")
	}
	// The evicted client's socket may stay (the owner's timeout ends it);
	// anything more it sends is refused.
	if err := stalled[0].srv.Feed([]byte{20, 3, 3, 0, 1, 1}); !errors.Is(err, tlswire.ErrStalled) {
		t.Fatalf("Feed after giving way = %v, want ErrStalled", err)
	}
	waitFor(t, "the newcomer's handshake parked", func() bool { return pool.Handshakes.Load() == 4 && pool.Parked() == 3 })
	for i, d := range append(stalled[1:], newcomer) {
		if err, done := ended(d); done {
			t.Fatalf("handshake %d ended (%v): one eviction per queued handshake", i+1, err)
		}
	}
	if n := pool.Stalled.Load(); n != 1 {
		t.Fatalf("Stalled = %d, want 1", n)
	}

	// Within the grace nobody is evicted: the next newcomer queues, and
	// takes a goroutine as soon as a parked one has waited long enough.
	pool.SetStallGrace(time.Hour)
	late := stall(t, cfg, pool, ch)
	waitFor(t, "the late handshake queued", func() bool { return pool.Waiting() == 1 })
	time.Sleep(2 * grace)
	if pool.Waiting() != 1 || pool.Stalled.Load() != 1 {
		t.Fatalf("waiting %d, stalled %d: a handshake parked within the grace was evicted", pool.Waiting(), pool.Stalled.Load())
	}
	pool.SetStallGrace(grace)
	stall(t, cfg, pool, ch) // a second arrival finds the oldest past the grace
	waitFor(t, "both queued handshakes running", func() bool { return pool.Waiting() == 0 && pool.Stalled.Load() == 3 })
	if err := <-stalled[1].done; !errors.Is(err, tlswire.ErrStalled) {
		t.Fatalf("second oldest ended with %v, want ErrStalled", err)
	}
	if err, done := ended(late); done {
		t.Fatalf("the late handshake ended: %v", err)
	}
}

// A queued handshake whose connection closed while it waited is reported
// done without taking a goroutine or doing any cryptography.
func TestPool_ClosedWhileQueued(t *testing.T) {
	cfg, ch := serverConfig(t), hello(t)
	pool := tlswire.NewPool(1, 1)
	pool.SetStallGrace(time.Hour)
	first := stall(t, cfg, pool, ch)
	waitFor(t, "the first parked", func() bool { return pool.Parked() == 1 })
	queued := stall(t, cfg, pool, ch)
	waitFor(t, "the second queued", func() bool { return pool.Waiting() == 1 })
	queued.srv.Close()
	first.srv.Close()
	for _, d := range []*discard{first, queued} {
		select {
		case err := <-d.done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("closed handshake ended with %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a closed handshake was not reported done")
		}
	}
	if n := pool.Handshakes.Load(); n != 1 {
		t.Fatalf("%d handshakes ran, want 1 (the closed queued one must not run)", n)
	}
	waitFor(t, "the pool idle", func() bool { return pool.Running() == 0 })
}

// Before the ClientHello is complete, each record header is checked as it
// arrives: what cannot start a TLS handshake is refused at once, without
// a handshake on the pool.
func TestFeed_RefusesWhatNoClientHelloStartsWith(t *testing.T) {
	ch := hello(t)
	tests := []struct {
		name  string
		feeds [][]byte
		want  error  // from the last feed
		alert []byte // output left for the owner
	}{
		{name: "whole hello", feeds: [][]byte{ch}},
		{name: "hello a byte at a time", feeds: bytesOf(ch)},
		{name: "plain HTTP", feeds: [][]byte{[]byte("GET / HTTP/1.1\r\n")}, want: tlswire.ErrNotTLS},
		{name: "first byte not a handshake record", feeds: [][]byte{{'G'}}, want: tlswire.ErrNotTLS},
		{name: "application data first", feeds: [][]byte{{23, 3, 3, 0, 5}}, want: tlswire.ErrNotTLS},
		{name: "SSLv2 hello", feeds: [][]byte{{0x80, 0x2e, 1, 3, 1}}, want: tlswire.ErrNotTLS},
		{name: "not version 3.x", feeds: [][]byte{{22, 0x47, 0x45}}, want: tlswire.ErrNotTLS},
		{name: "longest record", feeds: [][]byte{{22, 3, 1, 0x41, 0x00}}}, // 16 KiB + 256: waits for its body
		{name: "oversized record header", feeds: [][]byte{{22, 3, 1, 0x41, 0x01}}, want: tlswire.ErrRecordOverflow, alert: []byte{21, 3, 1, 0, 2, 2, 22}},
		{name: "oversized header in pieces", feeds: [][]byte{{22, 3}, {1, 0xff}, {0xff}}, want: tlswire.ErrRecordOverflow, alert: []byte{21, 3, 1, 0, 2, 2, 22}},
		{name: "oversized second record", feeds: [][]byte{append(fragment(ch[5:9]), 22, 3, 1, 0xff, 0xff)}, want: tlswire.ErrRecordOverflow, alert: []byte{21, 3, 1, 0, 2, 2, 22}},
	}
	cfg := serverConfig(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := tlswire.NewPool(1, 1)
			d := &discard{done: make(chan error, 1)}
			d.srv = tlswire.NewConn(cfg, pool, d)
			defer d.srv.Close()
			var err error
			for i, f := range tt.feeds {
				if err = d.srv.Feed(f); err != nil && i < len(tt.feeds)-1 {
					t.Fatalf("feed %d: %v", i, err)
				}
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Feed = %v, want %v", err, tt.want)
			}
			if out := d.srv.TakeOutput(nil); string(out) != string(tt.alert) {
				t.Fatalf("output %x, want %x", out, tt.alert)
			}
			if tt.want != nil && pool.Handshakes.Load() != 0 {
				t.Fatal("a refused client got a handshake on the pool")
			}
		})
	}
}

func bytesOf(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

// fragment wraps part of a handshake message in a record of its own.
func fragment(body []byte) []byte {
	return append([]byte{22, 3, 1, byte(len(body) >> 8), byte(len(body))}, body...)
}
