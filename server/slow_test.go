package server_test

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/session"
)

// numbered is message i of a stream: a 4-digit sequence number, padded to size.
func numbered(i, size int) string {
	s := fmt.Sprintf("%04d", i)
	return s + strings.Repeat(".", size-len(s))
}

// streamTo has sender send n numbered messages of size bytes while readers
// read them; every reader must get all n, in order. The sender stays at
// most window messages ahead of the slowest reader, so readers are never
// slow consumers themselves however loaded the machine is.
func streamTo(t *testing.T, sender *wstest.Client, readers []*wstest.Client, n, size, window int) {
	t.Helper()
	type progress struct {
		i   int
		err error
	}
	chans := make([]chan progress, len(readers))
	for r, c := range readers {
		ch := make(chan progress, n+1)
		chans[r] = ch
		go func() {
			for i := 0; i < n; i++ {
				text, _, err := c.ReadMessage(10 * time.Second)
				if err == nil && text != numbered(i, size) {
					err = fmt.Errorf("message %d: got %.10q…", i, text)
				}
				if err != nil {
					ch <- progress{i, fmt.Errorf("reader %d: %w", r, err)}
					return
				}
				ch <- progress{i, nil}
			}
		}()
	}
	wait := func(ch chan progress) {
		select {
		case p := <-ch:
			if p.err != nil {
				t.Fatal(p.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a reader is stuck")
		}
	}
	for i := 0; i < n; i++ {
		if i >= window {
			for _, ch := range chans {
				wait(ch)
			}
		}
		if err := sender.WriteText(numbered(i, size)); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range chans {
		for range min(window, n) {
			wait(ch)
		}
	}
}

// streamSize returns a message size for n messages that passes what the
// kernel may buffer for one stalled socket (the server's send buffer
// autotunes up to tcp_wmem's maximum, 4 MiB by default) by extra bytes.
func streamSize(t *testing.T, n, extra int) int {
	t.Helper()
	wmem := 4 << 20
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 3 {
			if v, err := strconv.Atoi(f[2]); err == nil {
				wmem = v
			}
		}
	}
	return max(1024, (wmem+256<<10+extra)/n)
}

// neverReader dials a client that will not read: a small receive buffer,
// and nobody reading it.
func neverReader(t *testing.T, addr, query string) *wstest.Client {
	t.Helper()
	c := wstest.Dial(t, addr, query)
	if err := c.Conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	return c
}

// expectPrefix reads the first k frames a stalled client was sent (already
// in its socket buffer) and checks they start the stream, in order.
func expectPrefix(t *testing.T, c *wstest.Client, k, size int) {
	t.Helper()
	for i := 0; i < k; i++ {
		f, err := c.ReadFrame(wstest.DefaultTimeout)
		if err != nil {
			t.Fatalf("stalled reader, message %d: %v", i, err)
		}
		if f.Op != ws.OpText || string(f.Payload) != numbered(i, size) {
			t.Fatalf("stalled reader, message %d: op %v %.10q…", i, f.Op, f.Payload)
		}
	}
}

// TestStalledReaderDoesNotHoldBackOthers: a client that never reads (small
// SO_RCVBUF) while 2,000 broadcasts, more than the kernel buffers, flow.
// The others get everything in order at full speed; under MaxQueue the
// backlog waits in the stalled client's queue, from the start of the
// stream; when it goes away, the queue is released.
func TestStalledReaderDoesNotHoldBackOthers(t *testing.T) {
	const n = 2000
	size := streamSize(t, n, 1<<20)
	srv, addr, stats := start(t, session.Config{MaxQueue: 64 << 20})
	stalled := neverReader(t, addr, "specialKey=stalled")
	sender := wstest.Dial(t, addr, "specialKey=sender")
	reader := wstest.Dial(t, addr, "specialKey=reader&support_gzip=1")

	streamTo(t, sender, []*wstest.Client{sender, reader}, n, size, 32)

	if q := stats.QueuedBytes.Load(); q < 1<<20 {
		t.Fatalf("QueuedBytes = %d with a stalled reader %d bytes behind; the test did not stall it", q, n*size)
	}
	if got := stats.SlowConsumers.Load(); got != 0 {
		t.Fatalf("SlowConsumers = %d under MaxQueue", got)
	}
	if got := stats.Open.Load(); got != 3 {
		t.Fatalf("Open = %d, want 3", got)
	}
	// (Reading all of it through a 4 KiB window would take minutes.)
	expectPrefix(t, stalled, 20, size)

	// It vanishes (RST): its queue goes with it.
	stalled.Conn.(*net.TCPConn).SetLinger(0)
	stalled.Conn.Close()
	wstest.Eventually(t, 5*time.Second, "queue released", func() bool {
		return stats.QueuedBytes.Load() == 0 && srv.Hub().Live() == 2 && stats.Open.Load() == 2
	})
	if err := reader.WriteText("after"); err != nil {
		t.Fatal(err)
	}
	expectGzip(t, reader, "reader", "after")
	expectText(t, sender, "sender", "after")
}

// TestSlowConsumerClosed: with a 64 KiB MaxQueue the never-reading client
// is closed as a slow consumer (1008 queued behind what it was sent, a
// gap-free prefix) while the others get all 2,000 messages in order; as it
// never answers the close, it is cut at the close timeout and its queue is
// released.
func TestSlowConsumerClosed(t *testing.T) {
	const n, maxQueue = 2000, 64 << 10
	size := streamSize(t, n, 4*maxQueue)
	srv, addr, stats := start(t, session.Config{MaxQueue: maxQueue, CloseTimeout: 500 * time.Millisecond})
	stalled := neverReader(t, addr, "specialKey=stalled")
	sender := wstest.Dial(t, addr, "specialKey=sender&support_gzip=1")
	reader := wstest.Dial(t, addr, "specialKey=reader")

	streamTo(t, sender, []*wstest.Client{sender, reader}, n, size, 16)

	wstest.Eventually(t, 5*time.Second, "the stalled reader closed as a slow consumer", func() bool {
		return stats.SlowConsumers.Load() == 1
	})
	sent := map[uint16]uint64{}
	stats.CloseCodesSent(func(code uint16, n uint64) { sent[code] = n })
	if sent[1008] != 1 {
		t.Errorf("close frames with 1008: %d, want 1", sent[1008])
	}
	wstest.Eventually(t, 5*time.Second, "its queue released at the close timeout", func() bool {
		return stats.QueuedBytes.Load() == 0 && srv.Hub().Live() == 2 && stats.Open.Load() == 2 &&
			stats.Closing.Load() == 0
	})
	// What it had been sent starts the stream; then the connection ends.
	expectPrefix(t, stalled, 20, size)

	// The others chat on.
	if err := reader.WriteText("after"); err != nil {
		t.Fatal(err)
	}
	expectText(t, reader, "reader", "after")
	expectGzip(t, sender, "sender", "after")
}
