package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// reconnectingClient is what a well-behaved client does: on any
// disconnect it retries with full-jitter exponential back-off (50 ms
// doubling to 2 s), so a restart does not turn into a thundering herd.
type reconnectingClient struct {
	addr, key string
	up        atomic.Bool
	goingAway atomic.Int64 // 1001 closes seen
	stop      chan struct{}
}

func (c *reconnectingClient) run(connected *atomic.Int64, wg *sync.WaitGroup) {
	defer wg.Done()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		conn, _, err := wstest.TryDial(c.addr, "specialKey="+c.key)
		if err != nil {
			sleep := time.Duration(rand.Int64N(int64(backoff)))
			backoff = min(2*backoff, 2*time.Second)
			select {
			case <-c.stop:
				return
			case <-time.After(sleep):
			}
			continue
		}
		backoff = 50 * time.Millisecond
		c.up.Store(true)
		connected.Add(1)
		for {
			f, err := conn.ReadFrame(time.Hour)
			if err != nil {
				break
			}
			if f.Op == 0x8 && f.CloseCode() == 1001 {
				c.goingAway.Add(1)
			}
		}
		conn.Conn.Close()
		c.up.Store(false)
		connected.Add(-1)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRestartReconnectStorm restarts wsd under connected clients: SIGTERM
// closes everyone with 1001 and exits 0, a new process takes the same
// address, and every client is back within the back-off. The time until
// all are back is logged; WSD_RESTART_N raises the client count.
func TestRestartReconnectStorm(t *testing.T) {
	n := 300
	if v, err := strconv.Atoi(os.Getenv("WSD_RESTART_N")); err == nil && v > 0 {
		n = v
	}
	addr := freeAddr(t)
	// Every client closed at once (no lame-duck spread): the storm case.
	first := wstest.StartBinary(t, "-addr", addr, "-shutdown-timeout", "10s", "-lame-duck-duration", "0s")

	var connected atomic.Int64
	var wg sync.WaitGroup
	clients := make([]*reconnectingClient, n)
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	t.Cleanup(halt)
	for i := range clients {
		clients[i] = &reconnectingClient{addr: addr, key: fmt.Sprintf("r%d", i), stop: stop}
		wg.Add(1)
		go clients[i].run(&connected, &wg)
	}
	wstest.Eventually(t, 30*time.Second, "all clients connected", func() bool { return connected.Load() == int64(n) })

	if err := first.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.Wait(15 * time.Second); code != 0 {
		t.Fatalf("first wsd exited %d", code)
	}
	start := time.Now()
	second := wstest.StartBinary(t, "-addr", addr)
	wstest.Eventually(t, 30*time.Second, "all clients back", func() bool { return connected.Load() == int64(n) })
	back := time.Since(start)
	var away int64
	for _, c := range clients {
		away += min(c.goingAway.Load(), 1)
	}
	if away != int64(n) {
		t.Errorf("%d of %d clients saw close 1001 on the restart", away, n)
	}
	t.Logf("%d clients: all back %v after the new process started", n, back.Round(time.Millisecond))
	halt() // clients leave at their next disconnect
	second.Signal(syscall.SIGTERM)
	second.Wait(15 * time.Second)
	wg.Wait()
}
