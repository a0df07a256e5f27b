package cluster_test

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/internal/natstest"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/session"
)

// proxy forwards TCP connections to a NATS server. Blackholed, it
// swallows what either side sends without closing anything: a NATS server
// gone silent, which its clients notice only when their pings go
// unanswered.
type proxy struct {
	ln     net.Listener
	to     string
	hole   atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func startProxy(t testing.TB, to string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, to: to}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go p.pipe(c, up)
			go p.pipe(up, c)
		}
	}()
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) pipe(from, to net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 && !p.hole.Load() {
			if _, err := to.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			to.Close()
			return
		}
	}
}

// cut closes every proxied connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// NATS goes silent under a box, which publishes on: every one of those
// messages is counted as dropped, none as published, though the NATS
// client took them all; the counters agree with what arrived.
func TestOutageCountedExactly(t *testing.T) {
	ns := natstest.Start(t, nil)
	px := startProxy(t, ns.Addr().String())
	sender := startBox(t, px.url(), "sender")
	receiver := startBox(t, ns.ClientURL(), "receiver")
	boxes := []*box{sender, receiver}
	for _, b := range boxes {
		wstest.Eventually(t, 5*time.Second, "bridge connected", b.br.Stats().Connected.Load)
	}
	r := wstest.Dial(t, receiver.addr(), "specialKey=r&room=lobby")
	syncAll(t, boxes)
	received := 0
	publish := func(what string, n int) {
		for i := 0; i < n; i++ {
			if d := sender.hub().Publish("lobby", []byte(fmt.Sprintf("%s %d", what, i))); d.Cluster != session.ClusterSent {
				t.Logf("%s %d refused at once", what, i)
			}
		}
	}
	publish("before", 10)
	for i := 0; i < 10; i++ {
		expectText(t, r, fmt.Sprintf("before %d", i), false)
	}
	st := sender.br.Stats()
	wstest.Eventually(t, 5*time.Second, "before confirmed", func() bool { return st.Published.Load() == 10 })

	const n = 200
	px.hole.Store(true)
	publish("during", n)
	time.Sleep(200 * time.Millisecond)
	px.cut() // the client sees the connection go and reconnects
	px.hole.Store(false)
	wstest.Eventually(t, 10*time.Second, "sender back", func() bool {
		return st.Connected.Load() && st.Reconnects.Load() == 1
	})
	syncAll(t, boxes)
	publish("after", 1)
	for {
		got, _, err := r.ReadMessage(5 * time.Second)
		if err != nil {
			t.Fatalf("after the outage: %v", err)
		}
		if got == "after 0" {
			break
		}
		received++
	}
	wstest.Eventually(t, 5*time.Second, "after confirmed", func() bool { return st.Published.Load() >= 11 })
	lost := uint64(n - received)
	if d := st.Dropped(cluster.DropDisconnected); d != lost {
		t.Errorf("dropped (disconnected) %d, but %d of %d did not arrive", d, lost, n)
	}
	if p := st.Published.Load(); p != 11+uint64(received) {
		t.Errorf("published %d, want %d (10 before, 1 after, %d during that arrived)", p, 11+received, received)
	}
	if d := st.DroppedTotal() - st.Dropped(cluster.DropDisconnected); d != 0 {
		t.Errorf("%d dropped for other reasons", d)
	}
}
