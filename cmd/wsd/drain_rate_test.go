package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// TestDrainReconnectRate measures what a drain does to the box the clients
// move to: N clients on box A reconnect to box B the moment A closes them
// (no back-off, the worst case), and B's arrivals are counted in 100 ms and
// 1 s windows — once with -lame-duck-duration 0 (every connection closed at
// once) and once with the spread. Opt-in, loopback only:
//
//	WSD_DRAIN_N=10000 go test ./cmd/wsd -run TestDrainReconnectRate -v
//
// WSD_DRAIN_SPREAD sets the spread (default 10s). With the spread, the
// busiest second must see at most spreadSlack times the even rate (n per
// spread) and the reconnects must take at least half the spread; both
// bounds are loose enough for a shared 2-core box, and the run without
// the spread shows what they are measured against.
func TestDrainReconnectRate(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("WSD_DRAIN_N"))
	if n <= 0 {
		t.Skip("set WSD_DRAIN_N (e.g. 10000) to measure the reconnect rate a drain causes")
	}
	spread := 10 * time.Second
	if d, err := time.ParseDuration(os.Getenv("WSD_DRAIN_SPREAD")); err == nil {
		spread = d
	}
	raiseNoFile(t)
	for _, d := range []time.Duration{0, spread} {
		r := measureDrain(t, n, d)
		t.Logf("lame-duck-duration %-4v %d clients: peak %d reconnects in 100 ms (%d/s), peak %d in 1 s; first to last reconnect %v",
			d, n, r.peak100, r.peak100*10, r.peak1s, r.span.Round(time.Millisecond))
		if d == 0 {
			continue
		}
		if bound := spreadBound(n, d); r.peak1s > bound {
			t.Errorf("lame-duck-duration %v: %d reconnects in the busiest second, over %d (%d× the even rate of %d clients over %v)",
				d, r.peak1s, bound, spreadSlack, n, d)
		}
		if r.span < d/2 {
			t.Errorf("lame-duck-duration %v: the reconnects took %v, less than half the spread", d, r.span)
		}
	}
}

// spreadSlack is how far above the even rate the busiest second of a
// spread drain may go: batches are closed in ticks, and a loaded box
// delivers several ticks' closes at once. WSD_DRAIN_N=2000
// WSD_DRAIN_SPREAD=4s measured 600 in the busiest second (1.2× the even
// 500/s) with the spread and all 2000 within 0.5 s without it.
const spreadSlack = 2

// spreadBound is the most reconnects one second of a drain spread over d
// may see: spreadSlack times n per d, never less than one tick's batch
// can hold on a small run, never more than n.
func spreadBound(n int, d time.Duration) int {
	even := float64(n) * float64(time.Second) / float64(d)
	return min(n, max(int(spreadSlack*even), 50))
}

type drainResult struct {
	peak100, peak1s int
	span            time.Duration
}

func raiseNoFile(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// dialFrom upgrades a connection to addr from the loopback address local.
func dialFrom(local net.IP, addr, key string) (net.Conn, *bufio.Reader, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /?specialKey=%s HTTP/1.1\r\nHost: wsd\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	br := bufio.NewReaderSize(conn, 256)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if resp.StatusCode != 101 {
		conn.Close()
		return nil, nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	conn.SetDeadline(time.Time{})
	return conn, br, nil
}

func measureDrain(t *testing.T, n int, spread time.Duration) drainResult {
	a := wstest.StartBinary(t, "-lame-duck-duration", spread.String(), "-backlog", "65535")
	b := wstest.StartBinary(t, "-backlog", "65535")
	local := func(i int) net.IP { return net.IPv4(127, 0, 1, byte(1+i%16)) }

	type client struct {
		conn net.Conn
		br   *bufio.Reader
	}
	clients := make([]client, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, br, err := dialFrom(local(i), a.Addr, fmt.Sprintf("c%d", i))
				if err != nil {
					failed.Add(1)
					continue
				}
				clients[i] = client{c, br}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d clients could not connect to box A", f, n)
	}
	wstest.Eventually(t, 30*time.Second, "all on box A", func() bool { return wstest.Scrape(t, a.AdminAddr).Get("wsd_connections") == float64(n) })

	// Each client waits for A's close frame and reconnects to B at once.
	start := time.Now()
	at := make([]time.Duration, n)
	var back sync.WaitGroup
	for i := range clients {
		back.Add(1)
		go func() {
			defer back.Done()
			c := clients[i]
			defer c.conn.Close()
			c.conn.SetReadDeadline(time.Now().Add(spread + 60*time.Second))
			for {
				h, err := ws.ReadHeader(c.br)
				if err != nil {
					break
				}
				if _, err := c.br.Discard(int(h.Length)); err != nil || h.OpCode == ws.OpClose {
					break
				}
			}
			at[i] = time.Since(start)
			conn, _, err := dialFrom(local(i), b.Addr, fmt.Sprintf("c%d", i))
			if err != nil {
				failed.Add(1)
				return
			}
			conn.Close()
		}()
	}
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	back.Wait()
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d reconnects to box B failed", f, n)
	}
	a.Wait(spread + 30*time.Second)
	b.Cmd.Process.Kill()

	sort.Slice(at, func(i, j int) bool { return at[i] < at[j] })
	peak := func(window time.Duration) int {
		best, lo := 0, 0
		for hi := range at {
			for at[hi]-at[lo] >= window {
				lo++
			}
			best = max(best, hi-lo+1)
		}
		return best
	}
	return drainResult{peak100: peak(100 * time.Millisecond), peak1s: peak(time.Second), span: at[n-1] - at[0]}
}
