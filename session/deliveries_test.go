package session

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/poller"
)

// TestDeliveryLimit: a delivery limit is checked before a message and
// booked with what the message cost after it. A connection may spend a
// second's worth at once, one message to a room larger than that passes
// and is owed, and the limit refuses only once what is owed passes the
// burst.
func TestDeliveryLimit(t *testing.T) {
	const rate = 1000 // deliveries/s, burst 1000
	type msg struct {
		at      time.Duration // since the start
		members int
		ahead   bool // refused before it is sent
	}
	for _, tc := range []struct {
		name string
		msgs []msg
	}{
		{"within the rate", []msg{{0, 500, false}, {500 * time.Millisecond, 500, false}, {time.Second, 500, false}, {1500 * time.Millisecond, 500, false}}},
		{"the burst at once", []msg{{0, 999, false}, {0, 1, false}, {0, 1, true}}},
		{"one message past the burst passes, the next waits", []msg{{0, 5000, false}, {4 * time.Second, 1, true}, {4100 * time.Millisecond, 1, false}}},
		{"a steady flood past the rate", []msg{{0, 600, false}, {100 * time.Millisecond, 600, false}, {200 * time.Millisecond, 600, true}}},
		{"nothing delivered costs nothing", []msg{{0, 0, false}, {0, 0, false}, {0, 1000, false}, {0, 0, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newRateLimit(rate, deliveryBurst(rate))
			var s rateState
			start := time.Now().UnixNano()
			for i, m := range tc.msgs {
				now := start + int64(m.at)
				if got := l.ahead(int64(s), now); got != m.ahead {
					t.Fatalf("message %d: ahead %v, want %v", i, got, m.ahead)
				}
				if !m.ahead {
					l.charge(&s, now, m.members)
				}
			}
		})
	}
	unlimited := newRateLimit(-1, 0)
	var s rateState
	unlimited.charge(&s, 0, 1<<30)
	if unlimited.ahead(int64(s), 0) {
		t.Error("an unlimited rate refused")
	}
}

// TestAddrRates: an address's connections share one entry, booked from
// any of them, and the table holds only addresses with a socket open.
func TestAddrRates(t *testing.T) {
	if newAddrRates(0) != nil {
		t.Fatal("a table without a limit")
	}
	a := newAddrRates(1000)
	ip1, ip2 := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("::1")
	e1, e2, e3 := a.join(ip1), a.join(ip1), a.join(ip2)
	if e1 != e2 || e1 == e3 || a.len() != 2 {
		t.Fatalf("entries %p %p %p, %d addresses", e1, e2, e3, a.len())
	}
	now := time.Now().UnixNano()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 250 {
				a.limit.chargeShared(&e1.tat, now, 1)
			}
		}()
	}
	wg.Wait()
	if !a.limit.ahead(e2.tat.Load(), now) || a.limit.ahead(e3.tat.Load(), now) {
		t.Error("1,000 deliveries from two connections of one address should spend its burst, and only its")
	}
	a.leave(ip1, e1)
	if a.len() != 2 {
		t.Error("an address left the table with a socket still open")
	}
	a.leave(ip1, e2)
	a.leave(ip2, e3)
	if a.len() != 0 {
		t.Errorf("%d addresses left with no socket open", a.len())
	}
}

type gateTask chan struct{}

func (g gateTask) Run() { <-g }

// TestFanoutYields: a shard with a long backlog yields its worker after
// a quantum, so another shard's broadcast, queued after the whole
// backlog, goes out after one quantum of it rather than all of it. One
// worker makes the order deterministic; the frames go to /dev/null.
func TestFanoutYields(t *testing.T) {
	r, err := poller.New(poller.Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	// At each fan-out chunk, the frames handed out so far: the worker is
	// the only writer.
	var h *Hub
	var frames []uint64
	h = NewHub(Config{OnFanout: func(time.Duration) { frames = append(frames, h.stats.FramesOut.Load()) }}, r)
	sink, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	t.Cleanup(func() {
		h.Close()
		r.Close()
		for _, fd := range fds {
			unix.Close(fd)
		}
		unix.Close(sink)
	})
	member := func(key, room string) *Conn {
		c := &Conn{hub: h, member: -1, key: key, room: room}
		fds = append(fds, addSink(t, r, c, sink))
		c.lastSeen.Store(time.Now().Add(time.Hour).UnixNano())
		c.state.Store(stOpen)
		h.table.insert(c)
		return c
	}
	flood := member("flood", "flood")
	var quietKey string
	for i := 0; quietKey == ""; i++ {
		if k := fmt.Sprintf("quiet-%d", i); h.table.shardOf(k) != h.table.shardOf(flood.key) {
			quietKey = k
		}
	}
	member(quietKey, "quiet")

	gate := make(gateTask)
	r.Submit(gate)
	const backlog = 50000
	for range backlog {
		h.Publish("flood", []byte("x"))
	}
	h.Publish("quiet", []byte("hello"))
	close(gate)
	waitIdle(t, h)

	if got := h.stats.FramesOut.Load(); got != backlog+1 {
		t.Fatalf("%d frames out, want %d", got, backlog+1)
	}
	// The quiet room's chunk is the one that handed out a single frame.
	at := -1
	for i, n := range frames {
		prev := uint64(0)
		if i > 0 {
			prev = frames[i-1]
		}
		if n-prev == 1 {
			at = int(prev)
			break
		}
	}
	if at < 0 {
		t.Fatal("no chunk of one frame")
	}
	if want := min(2*fanoutQuantum, backlog/4); at > want {
		t.Errorf("the quiet room's broadcast went out after %d of the %d flood frames queued before it; want at most %d", at, backlog, want)
	}
	t.Logf("the quiet room's broadcast went out after %d of %d flood frames", at, backlog)
}
