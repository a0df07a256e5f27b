package server_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

// TestFileLimitBackOffAndRecover runs wsd with a file limit of 64: accept
// hits EMFILE, backs off without spinning or exiting, existing clients keep
// chatting, and the waiting clients are upgraded once descriptors free up.
func TestFileLimitBackOffAndRecover(t *testing.T) {
	p := wstest.StartBinary(t, "-max-conns", "10000")
	var orig unix.Rlimit
	if err := unix.Prlimit(p.Cmd.Process.Pid, unix.RLIMIT_NOFILE, nil, &orig); err != nil {
		t.Skipf("prlimit: %v", err)
	}
	lim := unix.Rlimit{Cur: 64, Max: orig.Max}
	if err := unix.Prlimit(p.Cmd.Process.Pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Skipf("prlimit: %v", err)
	}

	const clients = 100
	type result struct {
		c   *wstest.Client
		err error
	}
	results := make(chan result, clients)
	for i := 0; i < clients; i++ {
		go func(i int) {
			c, _, err := wstest.TryDialHeaders(p.Addr, fmt.Sprintf("/?specialKey=c%d", i), nil)
			results <- result{c, err}
		}(i)
	}
	// Some get in before the limit; the rest wait in the backlog.
	var upgraded []*wstest.Client
	deadline := time.After(3 * time.Second)
collect:
	for len(upgraded) < clients {
		select {
		case r := <-results:
			if r.err == nil {
				upgraded = append(upgraded, r.c)
			}
		case <-deadline:
			break collect
		}
	}
	t.Cleanup(func() {
		for _, c := range upgraded {
			c.Conn.Close()
		}
	})
	if len(upgraded) == 0 || len(upgraded) == clients {
		t.Fatalf("%d of %d upgraded under a 64-file limit; want some but not all", len(upgraded), clients)
	}
	// The connected clients are untouched.
	if err := upgraded[0].WriteText("still chatting"); err != nil {
		t.Fatal(err)
	}
	for _, c := range upgraded[:3] {
		if got, _, err := c.ReadMessage(5 * time.Second); err != nil || got != "still chatting" {
			t.Fatalf("connected client: %q, %v", got, err)
		}
	}
	// Free descriptors: lift the limit; the backlog drains within the back-off.
	if err := unix.Prlimit(p.Cmd.Process.Pid, unix.RLIMIT_NOFILE, &orig, nil); err != nil {
		t.Fatal(err)
	}
	waiting := clients - len(upgraded)
	for i := 0; i < waiting; i++ {
		select {
		case r := <-results:
			if r.err != nil {
				t.Fatalf("waiting client after recovery: %v", r.err)
			}
			upgraded = append(upgraded, r.c)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d clients still waiting 5s after descriptors freed", waiting-i)
		}
	}
	if n := wstest.Scrape(t, p.AdminAddr).Get("wsd_accept_errors_total"); n == 0 {
		t.Errorf("wsd_accept_errors_total is 0 after hitting the file limit")
	}
	if n := wstest.Scrape(t, p.AdminAddr).Get("wsd_connections"); n != clients {
		t.Errorf("wsd_connections = %v, want %d", n, clients)
	}
}

// TestMaxConnsRefusesWith503 fills -max-conns: newcomers get 503 before
// upgrading and the connected clients are untouched.
func TestMaxConnsRefusesWith503(t *testing.T) {
	srv := testserver.Start(t, server.Config{Session: session.Config{MaxConns: 5}})
	addr := srv.Addr().String()
	var conns []*wstest.Client
	for i := 0; i < 5; i++ {
		conns = append(conns, wstest.Dial(t, addr, fmt.Sprintf("specialKey=k%d", i)))
	}
	for i := 0; i < 3; i++ {
		_, status, err := wstest.TryDial(addr, fmt.Sprintf("specialKey=extra%d", i))
		if err == nil || status != http.StatusServiceUnavailable {
			t.Fatalf("dial over max-conns: status %d, err %v; want 503", status, err)
		}
	}
	conns[0].WriteText("hi")
	for _, c := range conns {
		if got, _, err := c.ReadMessage(5 * time.Second); err != nil || got != "hi" {
			t.Fatalf("connected client: %q, %v", got, err)
		}
	}
	// A free slot is usable again.
	conns[4].Close(1000)
	wstest.Eventually(t, 5*time.Second, "slot freed", func() bool { return srv.Hub().Stats().Open.Load() == 4 })
	wstest.Dial(t, addr, "specialKey=late")
}

// TestManySlowPeersBoundedMemory has 1,000 clients that never read while
// large broadcasts flow: each is closed as a slow consumer once its queue
// passes MaxQueue, queued bytes stay within N × (MaxQueue + one frame),
// and a reading client gets everything, in order.
func TestManySlowPeersBoundedMemory(t *testing.T) {
	const (
		slow     = 1000
		maxQueue = 128 << 10
		msgSize  = 8 << 10
		messages = 400
		window   = 4 // the sender keeps at most this many messages ahead of the reader
	)
	// 400 messages into a room of 1,002 cost the sender 400,000 deliveries,
	// past -max-delivery-rate's burst: off, so that queues are what is tested.
	srv := testserver.Start(t, server.Config{Session: session.Config{MaxQueue: maxQueue, MaxDeliveryRate: -1}})
	addr := srv.Addr().String()
	stats := srv.Hub().Stats()

	var stalled []net.Conn
	for i := 0; i < slow; i++ {
		c := wstest.Dial(t, addr, fmt.Sprintf("specialKey=slow%d", i))
		c.Conn.(*net.TCPConn).SetReadBuffer(4096)
		stalled = append(stalled, c.Conn)
	}
	reader := wstest.Dial(t, addr, "specialKey=reader")
	sender := wstest.Dial(t, addr, "specialKey=sender")
	var peak int64
	var mu sync.Mutex
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				q := stats.QueuedBytes.Load()
				mu.Lock()
				peak = max(peak, q)
				mu.Unlock()
			}
		}
	}()
	got := make(chan int, messages)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < messages; i++ {
			text, _, err := reader.ReadMessage(10 * time.Second)
			if err != nil {
				done <- fmt.Errorf("reader message %d: %w", i, err)
				return
			}
			if !strings.HasPrefix(text, fmt.Sprintf("%04d", i)) {
				done <- fmt.Errorf("reader message %d: got %.8q", i, text)
				return
			}
			got <- i
		}
		done <- nil
	}()
	go io.Copy(io.Discard, sender.Conn) // the sender reads its echoes
	pad := strings.Repeat("x", msgSize-4)
	for i := 0; i < messages; i++ {
		if i >= window {
			select {
			case <-got:
			case err := <-done:
				t.Fatal(err)
			}
		}
		if err := sender.WriteText(fmt.Sprintf("%04d", i) + pad); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wstest.Eventually(t, 10*time.Second, "every stalled peer closed as a slow consumer", func() bool {
		return stats.SlowConsumers.Load() == slow
	})
	close(stop)
	mu.Lock()
	defer mu.Unlock()
	if bound := int64(slow) * (maxQueue + msgSize + 64); peak > bound {
		t.Errorf("peak queued bytes %d over the bound %d", peak, bound)
	}
	wstest.Eventually(t, 5*time.Second, "queues released", func() bool { return stats.QueuedBytes.Load() == 0 })
	t.Logf("peak queued %d bytes for %d stalled peers (cap %d each)", peak, slow, maxQueue)
	for _, c := range stalled {
		c.Close()
	}
}
