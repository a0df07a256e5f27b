package session

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/poller"
)

// stalledMember adds an open member to h whose peer never reads: its
// socket's send buffer is as small as the kernel allows, so frames queue
// in wsd almost at once. It returns the member and the peer's fd.
func stalledMember(t *testing.T, h *Hub, r *poller.Reactor, key string, gzip bool) (*Conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4096)
	c := &Conn{hub: h, member: -1, key: key, gzip: gzip}
	c.lastSeen.Store(time.Now().Add(time.Hour).UnixNano()) // keep the sweeper away
	c.setState(stHandshake)
	if err := r.Add(&c.Desc, fds[0], c); err != nil {
		t.Fatal(err)
	}
	c.setState(stOpen)
	h.table.join(c, nil)
	t.Cleanup(func() { unix.Close(fds[1]) })
	return c, fds[1]
}

func testHub(t *testing.T, cfg Config) (*Hub, *poller.Reactor) {
	t.Helper()
	r, err := poller.New(poller.Config{})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHub(cfg, r)
	t.Cleanup(func() {
		h.killAll()
		h.Close()
		r.Close()
	})
	return h, r
}

func waitIdle(t *testing.T, h *Hub) {
	t.Helper()
	wstest.Eventually(t, 5*time.Second, "the fan-out to finish", h.fanoutIdle)
}

// A queue of gzip frames must not keep each broadcast's text frame alive:
// that is what let one client pin gigabytes with small gzip messages that
// inflate big.
func TestQueuedGzipDoesNotPinText(t *testing.T) {
	h, r := testHub(t, Config{MaxQueue: 64 << 20})
	c, _ := stalledMember(t, h, r, "gz", true)
	const n, size = 40, 256 << 10
	text := bytes.Repeat([]byte("a"), size)
	for range n {
		h.Publish("", text)
	}
	waitIdle(t, h)
	held, queued := h.stats.OutboundHeld.Load(), c.queued.Load()
	if queued == 0 {
		t.Fatal("nothing queued: the stalled member took everything")
	}
	// Without dropping the text variant the budget would hold n × 256 KiB.
	if held > n*size/8 {
		t.Fatalf("outbound budget holds %d bytes for %d queued gzip bytes: text frames pinned", held, queued)
	}
	if held < queued {
		t.Fatalf("outbound budget holds %d bytes, less than the %d queued", held, queued)
	}
	h.killAll()
}

// What a text member still needs stays; dropping must not touch it.
func TestTrimKeepsQueuedVariants(t *testing.T) {
	h, r := testHub(t, Config{MaxQueue: 64 << 20})
	gz, _ := stalledMember(t, h, r, "gz", true)
	txt, _ := stalledMember(t, h, r, "txt", false)
	const size = 128 << 10
	rnd := rand.New(rand.NewPCG(1, 2))
	payload := make([]byte, size)
	for range 20 {
		for i := range payload {
			payload[i] = 'a' + byte(rnd.IntN(26)) // compresses little: both variants queue
		}
		h.Publish("", payload)
	}
	waitIdle(t, h)
	txt.wmu.Lock()
	for i, it := range txt.outq {
		if it.msg != nil && !bytes.Equal(it.b, it.msg.seed.text[len(it.msg.seed.text)-len(it.b):]) {
			t.Errorf("text item %d no longer matches its message's text frame", i)
		}
	}
	txt.wmu.Unlock()
	if gz.queued.Load() == 0 || txt.queued.Load() == 0 {
		t.Fatal("expected both members to have queued frames")
	}
}

// A ping flood against a connection that does not read costs one pong.
func TestOnePendingPong(t *testing.T) {
	h, r := testHub(t, Config{MaxQueue: 64 << 20, MaxMsgRate: -1})
	c, _ := stalledMember(t, h, r, "pinger", false)
	for range 200 {
		h.Publish("", bytes.Repeat([]byte("x"), 4096))
	}
	waitIdle(t, h)
	c.wmu.Lock()
	before := len(c.outq)
	c.wmu.Unlock()
	if before == 0 {
		t.Fatal("nothing queued")
	}
	for i := range 10000 {
		if err := c.OnControl(codec.OpPing, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.outq) != before {
		t.Fatalf("queue grew from %d to %d items under a ping flood", before, len(c.outq))
	}
	if c.pong == nil || !bytes.Equal(c.pong.b, codec.AppendFrame(nil, codec.OpPong, []byte("9999"))) {
		t.Fatal("the waiting pong does not answer the latest ping")
	}
}

// Once the socket drains, the waiting pong goes out ahead of the rest.
func TestPendingPongFlushedFirst(t *testing.T) {
	h, r := testHub(t, Config{MaxQueue: 64 << 20, MaxMsgRate: -1})
	c, peer := stalledMember(t, h, r, "pinger", false)
	for range 50 {
		h.Publish("", bytes.Repeat([]byte("y"), 4096))
	}
	waitIdle(t, h)
	_ = c.OnControl(codec.OpPing, []byte("first"))
	_ = c.OnControl(codec.OpPing, []byte("last"))
	want := codec.AppendFrame(nil, codec.OpPong, []byte("last"))
	var got []byte
	buf := make([]byte, 64<<10)
	wstest.Eventually(t, 5*time.Second, "the pong for the latest ping", func() bool {
		for {
			n, _ := unix.Read(peer, buf)
			if n <= 0 {
				return bytes.Contains(got, want)
			}
			got = append(got, buf[:n]...)
		}
	})
	if bytes.Contains(got, codec.AppendFrame(nil, codec.OpPong, []byte("first"))) {
		t.Fatal("a pong for a superseded ping was sent")
	}
}

// Past the outbound budget the largest queue is closed first.
func TestOutboundBudgetShedsLargest(t *testing.T) {
	h, r := testHub(t, Config{MaxQueue: 64 << 20, OutboundBudget: 4 << 20})
	big, _ := stalledMember(t, h, r, "big", false)
	h.table.remove(big) // only big gets the large room's traffic
	big.room = "large"
	h.table.join(big, nil)
	small, _ := stalledMember(t, h, r, "small", false)
	for range 30 {
		h.Publish("large", bytes.Repeat([]byte("z"), 256<<10))
	}
	h.Publish("", []byte("hi"))
	waitIdle(t, h)
	wstest.Eventually(t, 5*time.Second, "the largest consumer to be closed", func() bool { return big.closeReq.Load() != nil })
	if got := big.closeReq.Load(); got != errOutboundBudget {
		t.Fatalf("largest consumer closed with %v, want the outbound budget close", got)
	}
	if small.closeReq.Load() != nil {
		t.Fatal("a small consumer was closed too")
	}
	if h.stats.BudgetSheds.Load() == 0 {
		t.Fatal("no budget shed counted")
	}
}

// A pooled message keeps the buffers of earlier broadcasts; only what was
// built for it may be charged and refunded, or the budget drifts.
func TestOutboundBudgetReturnsToZero(t *testing.T) {
	h, r := testHub(t, Config{MaxQueue: 64 << 20})
	gz, gzPeer := stalledMember(t, h, r, "gz", true)
	payload := bytes.Repeat([]byte("pooled "), 1000)
	for range 50 {
		h.Publish("", payload) // builds text and gzip frames
	}
	waitIdle(t, h)
	h.table.remove(gz)
	unix.Close(gzPeer)
	txt, _ := stalledMember(t, h, r, "txt", false)
	for range 50 {
		h.Publish("", payload) // reuses pooled messages: text only
	}
	waitIdle(t, h)
	h.table.remove(txt)
	txt.wmu.Lock()
	txt.dropQueueLocked()
	txt.wmu.Unlock()
	gz.wmu.Lock()
	gz.dropQueueLocked()
	gz.wmu.Unlock()
	// What stays charged is the rooms' history (v1.go), and exactly that.
	if held := h.stats.OutboundHeld.Load() - h.historyHeld(); held != 0 || h.historyHeld() == 0 {
		t.Fatalf("outbound budget holds %d bytes beyond the history's %d with nothing queued or in flight", held, h.historyHeld())
	}
}

// A spent outbound budget pauses input instead of refusing it: the bytes
// wait in the kernel and are read once the budget is back under.
func TestSpentOutboundBudgetPausesInput(t *testing.T) {
	h, r := testHub(t, Config{OutboundBudget: 1 << 20})
	c, peer := stalledMember(t, h, r, "sender", false)
	h.out.add(2 << 20) // as if broadcasts held twice the budget
	frame := wstest.RawFrame(0x81, true, []byte("held back"))
	if _, err := unix.Write(peer, frame); err != nil {
		t.Fatal(err)
	}
	c.Notify(readyEvent)
	wstest.Eventually(t, 5*time.Second, "a read pause", func() bool { return h.stats.ReadPauses.Load() != 0 })
	if h.stats.ReadPauses.Load() != 1 || !c.flags.has(flagPaused) {
		t.Fatal("input not paused while the outbound budget is spent")
	}
	time.Sleep(50 * time.Millisecond)
	if n := h.stats.MessagesIn.Load(); n != 0 {
		t.Fatalf("%d messages read while paused", n)
	}
	h.out.add(-2 << 20)
	h.resumeReaders()
	wstest.Eventually(t, 5*time.Second, "the paused message to be read", func() bool { return h.stats.MessagesIn.Load() != 0 })
	if h.stats.MessagesIn.Load() != 1 || c.flags.has(flagPaused) {
		t.Fatal("the paused message was not read once the budget was back under")
	}
}
