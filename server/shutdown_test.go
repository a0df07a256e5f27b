package server_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/session"
)

// TestShutdownDrains: Shutdown during a stream of broadcasts. Every client
// gets every message accepted before the drain (per sender, a gap-free
// sequence), then 1001, then EOF; afterwards nothing is left and new dials
// fail.
func TestShutdownDrains(t *testing.T) {
	const senders = 2
	srv, addr, stats := start(t, session.Config{CloseTimeout: 5 * time.Second, MaxMsgRate: -1})

	type result struct {
		name  string
		got   []int // messages received from each sender
		close int
		err   error
	}
	var clients []*wstest.Client
	for i := 0; i < 6; i++ {
		q := fmt.Sprintf("specialKey=c%d", i)
		if i%2 == 1 {
			q += "&support_gzip=1"
		}
		clients = append(clients, wstest.Dial(t, addr, q))
	}
	// A socket that never finishes its handshake is closed too.
	halfOpen, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer halfOpen.Close()
	wstest.Eventually(t, 5*time.Second, "all connected", func() bool {
		return stats.Open.Load() == 6 && stats.Handshaking.Load() == 1
	})

	// A client's frames are written whole, one writer at a time, and none
	// after its close reply (gobwas/ws writes header and payload apart).
	type guard struct {
		sync.Mutex
		closed bool
	}
	guards := make([]guard, len(clients))
	results := make(chan result, len(clients))
	for i, c := range clients {
		go func() {
			r := result{name: fmt.Sprintf("c%d", i), got: make([]int, senders)}
			defer func() { results <- r }()
			for {
				f, err := c.ReadFrame(10 * time.Second)
				if err != nil {
					r.err = fmt.Errorf("after %v: %v", r.got, err)
					return
				}
				switch f.Op {
				case ws.OpClose:
					r.close = f.CloseCode()
					// Answer the close; the server then closes TCP.
					guards[i].Lock()
					guards[i].closed = true
					c.WriteFrame(true, ws.OpClose, f.Payload[:min(2, len(f.Payload))])
					guards[i].Unlock()
					r.err = c.WaitEOF(5 * time.Second)
					return
				case ws.OpPing, ws.OpPong:
					continue
				}
				text := string(f.Payload)
				if f.Op == ws.OpBinary {
					if text, err = wstest.Gunzip(f.Payload); err != nil {
						r.err = err
						return
					}
				}
				var s, seq int
				if _, err := fmt.Sscanf(text, "s%d %d", &s, &seq); err != nil || s < 0 || s >= senders {
					r.err = fmt.Errorf("unexpected message %q", text)
					return
				}
				if seq != r.got[s] {
					r.err = fmt.Errorf("from sender %d: seq %d, want %d", s, seq, r.got[s])
					return
				}
				r.got[s]++
			}
		}()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				g := &guards[s]
				g.Lock()
				err := errors.New("closed")
				if !g.closed {
					err = clients[s].WriteText(fmt.Sprintf("s%d %d", s, seq))
				}
				g.Unlock()
				if err != nil {
					return // the server closed us
				}
				if seq%16 == 15 {
					time.Sleep(time.Millisecond) // a stream, not a flood
				}
			}
		}()
	}
	wstest.Eventually(t, 10*time.Second, "the stream flowing", func() bool { return stats.Broadcasts.Load() >= 300 })

	accepted := stats.Broadcasts.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	took := time.Since(t0)
	close(stop)
	wg.Wait()

	for range clients {
		r := <-results
		total := 0
		for _, n := range r.got {
			total += n
		}
		switch {
		case r.err != nil:
			t.Errorf("%s: %v", r.name, r.err)
		case r.close != 1001:
			t.Errorf("%s: closed with %d, want 1001", r.name, r.close)
		case uint64(total) < accepted:
			t.Errorf("%s: got %d messages %v, but %d were accepted before Shutdown", r.name, total, r.got, accepted)
		}
	}
	if took > 4*time.Second {
		t.Errorf("Shutdown took %v; the clients answered the close at once", took)
	}
	halfOpen.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := halfOpen.Read(make([]byte, 1)); n > 0 || !isClosed(err) {
		t.Errorf("half-open socket after Shutdown: %d bytes, %v; want EOF", n, err)
	}
	if srv.Ready() {
		t.Error("Ready after Shutdown")
	}
	if open, live, q := stats.Open.Load(), srv.Hub().Live(), stats.QueuedBytes.Load(); open != 0 || live != 0 || q != 0 {
		t.Errorf("after Shutdown: Open %d, Live %d, QueuedBytes %d; want all 0", open, live, q)
	}
	if c, status, err := wstest.TryDial(addr, "specialKey=late"); err == nil {
		c.Conn.Close()
		t.Error("dial after Shutdown upgraded")
	} else if status != 0 {
		t.Errorf("dial after Shutdown got HTTP %d; want the connection refused", status)
	}
	t.Logf("%d broadcasts accepted before Shutdown, %d in all; Shutdown took %v", accepted, stats.Broadcasts.Load(), took)
}

// TestShutdownDeadline: when clients do not answer the close, Shutdown
// returns the context's error at its deadline, and every socket is closed
// anyway.
func TestShutdownDeadline(t *testing.T) {
	srv, addr, stats := start(t, session.Config{CloseTimeout: time.Minute})
	var clients []*wstest.Client
	for i := 0; i < 3; i++ {
		clients = append(clients, wstest.Dial(t, addr, fmt.Sprintf("specialKey=mute%d", i)))
	}
	wstest.Eventually(t, 5*time.Second, "all connected", func() bool { return stats.Open.Load() == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	err := srv.Shutdown(ctx)
	if err != context.DeadlineExceeded {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("Shutdown took %v with a 300ms deadline", d)
	}
	if live := srv.Hub().Live(); live != 0 {
		t.Errorf("Live = %d after Shutdown", live)
	}
	for i, c := range clients {
		// 1001 was sent; then the socket was closed without waiting.
		f, err := c.ReadClose(wstest.DefaultTimeout)
		if err != nil || f.CloseCode() != 1001 {
			t.Errorf("client %d: %s, %v; want close 1001", i, event(f), err)
			continue
		}
		if err := c.WaitEOF(wstest.DefaultTimeout); err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
}
