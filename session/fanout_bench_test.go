package session

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/poller"
)

// benchHub returns a Hub with n open members writing to /dev/null, half of
// them gzip-capable: the fan-out machinery without the kernel's TCP cost.
func benchHub(b testing.TB, n int) *Hub {
	b.Helper()
	r, err := poller.New(poller.Config{})
	if err != nil {
		b.Fatal(err)
	}
	h := NewHub(Config{}, r)
	sink, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	fds := make([]int, 0, n)
	b.Cleanup(func() {
		h.Close()
		r.Close()
		for _, fd := range fds {
			unix.Close(fd)
		}
		unix.Close(sink)
	})
	for i := 0; i < n; i++ {
		c := &Conn{hub: h, member: -1, key: fmt.Sprintf("peer-%d", i), gzip: i%2 == 0}
		fds = append(fds, addSink(b, r, c, sink))
		c.lastSeen.Store(time.Now().Add(time.Hour).UnixNano()) // keep the sweeper away
		c.state.Store(stOpen)
		h.table.insert(c)
	}
	return h
}

// addSink binds c to the reactor through Add, as Hub.Accept does, and
// leaves its descriptor writing to /dev/null. epoll cannot watch /dev/null,
// so an unarmed timerfd (never ready, so it raises no event) is registered
// in its place, taken off epoll again, and then replaced by a duplicate of
// sink under the same number. It returns that number, for the cleanup.
func addSink(b testing.TB, r *poller.Reactor, c *Conn, sink int) int {
	b.Helper()
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Add(&c.Desc, fd, c); err != nil {
		b.Fatal(err)
	}
	if err := r.Remove(&c.Desc); err != nil {
		b.Fatal(err)
	}
	if err := unix.Dup3(sink, fd, unix.O_CLOEXEC); err != nil {
		b.Fatal(err)
	}
	return fd
}

func waitFanout(h *Hub) {
	for !h.fanoutIdle() {
		runtime.Gosched()
	}
}

// BenchmarkBroadcast measures one broadcast to 10,000 members: one text
// frame and one gzip frame built, then one write per member.
func BenchmarkBroadcast(b *testing.B) {
	for _, size := range []int{128, 1024} {
		b.Run(fmt.Sprintf("peers=10000/size=%d", size), func(b *testing.B) {
			runBroadcasts(b, benchHub(b, 10000), 10000, size)
		})
	}
}

// runBroadcasts times b.N broadcasts of size bytes to the global room of
// h, whose members number peers, one fan-out at a time, and checks that
// each was gzip'd once.
func runBroadcasts(b *testing.B, h *Hub, peers, size int) {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	for range DefaultHistorySize + 1 { // warm pools, fill the room's history ring
		h.Publish("", payload)
		waitFanout(h)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		h.Publish("", payload)
		waitFanout(h)
	}
	el := time.Since(start)
	b.ReportMetric(float64(b.N*peers)/el.Seconds(), "deliveries/s")
	if enc, bc := h.stats.GzipEncodings.Load(), h.stats.Broadcasts.Load(); enc != bc {
		b.Fatalf("%d gzip encodings for %d broadcasts", enc, bc)
	}
}
