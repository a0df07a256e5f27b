package session

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/codec"
)

// replayHub is a Hub whose room "r" retains msgs messages of size bytes,
// and one v1 member in the global room, gzip or not, writing to
// /dev/null, for rejoin to resync into "r".
func replayHub(b testing.TB, msgs, size int, gzip bool) (*Hub, *Conn) {
	h := benchHub(b, 0)
	c := &Conn{hub: h, member: -1, key: "rejoiner", gzip: gzip}
	fd := addSink(b, h.reactor, c, devNull(b))
	b.Cleanup(func() { closeFd(fd) })
	c.lastSeen.Store(time.Now().Add(time.Hour).UnixNano())
	c.state.Store(stOpen)
	h.table.insertV1(c)
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	for range msgs {
		h.Publish("r", payload)
	}
	waitFanout(h)
	return h, c
}

// rejoin has c run the join command cmd (copied into buf: the parser
// unescapes in place).
func rejoin(b testing.TB, c *Conn, cmd, buf []byte) {
	buf = append(buf[:0], cmd...)
	if err := c.command(buf); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkReplay times a join with since 0 into a room that retains 100
// messages of 256 B (the recover bench's shape), by a text or a gzip
// member: Attach, joined, the replayed frames queued and written in one
// writev (to /dev/null: the kernel's TCP cost, which the single writev
// saves, is not in it). Every replayed frame is one the ring shares
// (Entry.Encoded): allocs/op is the join's own, none per message.
//
// conn=fresh is the recover bench's case, every join a connection's first
// replay: nothing a previous join left in the v1Conn (its replay batch)
// is there to reuse. conn=same is one connection resyncing again and again.
func BenchmarkReplay(b *testing.B) {
	const msgs = 100
	for _, fresh := range []bool{true, false} {
		for _, gzip := range []bool{false, true} {
			name := map[bool]string{true: "fresh", false: "same"}[fresh]
			b.Run(fmt.Sprintf("msgs=%d/size=256/gzip=%v/conn=%s", msgs, gzip, name), func(b *testing.B) {
				benchReplay(b, msgs, gzip, fresh)
			})
		}
	}
}

func benchReplay(b *testing.B, msgs int, gzip, fresh bool) {
	h, c := replayHub(b, msgs, 256, gzip)
	info, _ := h.ring.Info("r")
	cmd := []byte(`{"type":"join","room":"r","since":0,"epoch":"` + info.Epoch + `"}`)
	buf := make([]byte, 0, len(cmd))
	rejoin(b, c, cmd, buf) // the first join adds the sub; later ones resync
	rejoin(b, c, cmd, buf)
	out0 := h.stats.BytesOut.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if fresh {
			c.v1.batch = nil // as a new connection's v1Conn has it
		}
		rejoin(b, c, cmd, buf)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*msgs), "ns/replayed")
	if got, least := h.stats.BytesOut.Load()-out0, uint64(b.N*msgs*100); got < least {
		b.Fatalf("%d bytes out for %d joins of %d messages", got, b.N, msgs)
	}
}

// A join's frames go out in one write: joined and the 100 replayed
// messages (Conn.hold, flushed at the end of the join), with no
// allocation per replayed message, and the connection keeps nothing of
// the replay's scratch afterwards.
func TestJoinIsOneWrite(t *testing.T) {
	for _, gzip := range []bool{false, true} {
		h, c := replayHub(t, 100, 256, gzip)
		info, _ := h.ring.Info("r")
		cmd := []byte(`{"type":"join","room":"r","since":0,"epoch":"` + info.Epoch + `"}`)
		buf := make([]byte, 0, len(cmd))
		rejoin(t, c, cmd, buf)
		w0, b0 := h.stats.WriteSyscalls.Load(), h.stats.BytesOut.Load()
		rejoin(t, c, cmd, buf)
		if w := h.stats.WriteSyscalls.Load() - w0; w != 1 {
			t.Errorf("gzip %v: a join replaying 100 messages took %d writes, want 1", gzip, w)
		}
		if b := h.stats.BytesOut.Load() - b0; !gzip && b < 100*256 {
			t.Errorf("gzip %v: %d bytes written", gzip, b)
		}
		if w := c.v1.v1Work; w != nil {
			t.Errorf("gzip %v: the connection keeps its join's work (a replay batch of cap %d) after the join", gzip, cap(w.batch))
		}
		if raceEnabled {
			continue
		}
		// Every join starts as a reconnect's does, with no batch left by
		// an earlier one to reuse.
		one := testing.AllocsPerRun(50, func() { rejoin(t, c, cmd, buf) })
		if one > 3 {
			t.Errorf("gzip %v: %.1f allocations per join of 100 messages", gzip, one)
		}
	}
}

// Frames delivered while a join holds its own (another room's message, a
// presence frame) go out after them, and nothing is written before the
// hold is flushed.
func TestHoldKeepsOrder(t *testing.T) {
	h, r := testHub(t, Config{MaxQueue: 64 << 20})
	c, peer := stalledMember(t, h, r, "k", false)
	frame := func(s string) outItem {
		f := newOwnFrame(func(b []byte) []byte { return codec.AppendFrame(b, codec.OpText, []byte(s)) })
		return outItem{b: f.b, own: f}
	}
	w0 := h.stats.WriteSyscalls.Load()
	held := []outItem{frame("joined"), frame("replay 1"), frame("replay 2")}
	if !c.hold(held) {
		t.Fatal("hold refused")
	}
	later := []outItem{frame("live")}
	if !c.deliver(later) {
		t.Fatal("deliver refused")
	}
	if w := h.stats.WriteSyscalls.Load() - w0; w != 0 {
		t.Fatalf("%d writes before the hold was flushed", w)
	}
	if !c.flushHeld() {
		t.Fatal("flushHeld failed")
	}
	if w := h.stats.WriteSyscalls.Load() - w0; w != 1 {
		t.Fatalf("%d writes for the held frames and the one behind them, want 1", w)
	}
	got := make([]byte, 256)
	n, err := unix.Read(peer, got)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, s := range []string{"joined", "replay 1", "replay 2", "live"} {
		want = codec.AppendFrame(want, codec.OpText, []byte(s))
	}
	if !bytes.Equal(got[:n], want) {
		t.Fatalf("wire % x, want % x", got[:n], want)
	}
	if q := c.queued.Load(); q != 0 {
		t.Fatalf("%d bytes still charged to the queue", q)
	}
}
