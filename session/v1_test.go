package session

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/chat"
	"github.com/wsd-chat/wsd/codec"
)

// insertV1 puts c in the table as a v1 connection in its first room, as
// the first join does without the Ring and the frames.
func (t *table) insertV1(c *Conn) {
	if c.v1 == nil {
		c.v1 = &v1Conn{}
	}
	s := t.shardOf(c.key)
	s.mu.Lock()
	s.replaceLocked(c)
	s.addSub(c, c.room, 0, nil)
	s.mu.Unlock()
}

// The cost of one more room for a v1 connection, in rooms that exist
// already: the sub, its slot in the room's list and in the connection's,
// and what presence keeps for it (nothing: the table is its Roster).
func TestSubscriptionBytes(t *testing.T) {
	h := &Hub{}
	h.table = newTable(h, DefaultShards)
	h.presence = chat.NewPresence(chat.PresenceConfig{Roster: h.table})
	const conns, extra = 2000, 10
	cs := make([]*Conn, conns)
	for i := range cs {
		cs[i] = &Conn{hub: h, member: -1, key: fmt.Sprintf("k%d", i), room: "base"}
		h.table.insertV1(cs[i])
	}
	rooms := make([]string, extra)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("room-%d", i)
	}
	// The other tests of the package leave hubs whose sweepers may still
	// free memory while this measures: the heap is read after two
	// collections, and the figure is the heap's growth, as a signed number.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, c := range cs {
		s := h.table.shardOf(c.key)
		for _, r := range rooms {
			h.presence.Enter(r, c.key, func(int) bool { // as a join does (Attach)
				s.mu.Lock()
				s.addSub(c, r, 0, nil)
				s.mu.Unlock()
				return true
			})
		}
	}
	h.presence.Flush(func(*chat.PresenceEvent) {})
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (conns * extra)
	t.Logf("%.0f bytes per extra subscription, table and presence (%d connections in %d more rooms each)", per, conns, extra)
	if per > subscriptionBytes {
		t.Fatalf("%.0f bytes per extra subscription, want at most %d", per, subscriptionBytes)
	}
	for _, r := range rooms {
		if n := h.presence.Count(r); n != conns {
			t.Fatalf("%s counts %d members, want %d", r, n, conns)
		}
	}
	runtime.KeepAlive(cs)
}

// subscriptionBytes bounds a v1 connection's further room in live heap;
// the goal for it, 128 B, is of the server's RSS (docs/performance.md).
const subscriptionBytes = 64

// A message fanned out to a sub whose join covered its seq is skipped:
// the seam between replay and live has no duplicate.
func TestSubSkipsReplayed(t *testing.T) {
	h, r := testHub(t, Config{})
	c, _ := stalledMember(t, h, r, "v", false)
	h.table.remove(c)
	c.v1 = &v1Conn{}
	h.table.insertV1(c)
	s := h.table.shardOf(c.key)
	h.Publish(c.room, []byte("one")) // seq 1
	waitIdle(t, h)
	s.mu.Lock()
	// As if a join had replayed through the next message (seq 2): after
	// is the Hub's order of published messages.
	s.rooms[c.room].subs[c.v1.subs[0].idx].after = h.order.Load() + 1
	s.mu.Unlock()
	h.Publish(c.room, []byte("two"))   // seq 2: skipped
	h.Publish(c.room, []byte("three")) // seq 3: delivered
	waitIdle(t, h)
	c.wmu.Lock()
	var seqs []string
	for _, it := range c.outq {
		if it.msg != nil {
			seqs = append(seqs, fmt.Sprint(it.msg.seq))
		}
	}
	c.wmu.Unlock()
	// The queue may have written some frames already; what it holds of the
	// room must not include seq 2.
	for _, q := range seqs {
		if q == "2" {
			t.Fatalf("seq 2 queued for a member whose join covered it: %v", seqs)
		}
	}
	if got := h.stats.FramesOut.Load(); got != 2 {
		t.Fatalf("%d frames out, want 2 (seq 1 and 3)", got)
	}
}

// benchHubV1 is benchHub with every member on v1 (half gzip, as there),
// and with deflate on every third member when deflate is set.
func benchHubV1(b testing.TB, n int, deflate bool) *Hub {
	h := benchHub(b, 0)
	p, _ := codec.NegotiateDeflate([]byte("permessage-deflate"), codec.DeflateConfig{Enabled: true})
	sink := devNull(b)
	for i := 0; i < n; i++ {
		c := &Conn{hub: h, member: -1, key: fmt.Sprintf("v1-%d", i), gzip: i%2 == 0}
		if deflate && i%3 == 0 {
			c.gzip, c.deflate = false, p
		}
		fd := addSink(b, h.reactor, c, sink)
		b.Cleanup(func() { closeFd(fd) })
		c.lastSeen.Store(time.Now().Add(time.Hour).UnixNano())
		c.state.Store(stOpen)
		h.table.insertV1(c)
	}
	return h
}

// BenchmarkBroadcastV1 is BenchmarkBroadcast to v1 members: each
// broadcast is stamped by the Ring, its envelope built once, gzip'd once
// and (with deflate members) compressed once, then one write per member.
func BenchmarkBroadcastV1(b *testing.B) {
	for _, deflate := range []bool{false, true} {
		for _, size := range []int{128, 1024} {
			b.Run(fmt.Sprintf("peers=10000/size=%d/deflate=%v", size, deflate), func(b *testing.B) {
				runBroadcasts(b, benchHubV1(b, 10000, deflate), 10000, size)
			})
		}
	}
}

// TestBroadcastV1Allocs: a broadcast to seed and v1 members (text, gzip
// and deflate, of the text and of the envelope) allocates nothing once the
// room's history ring is full.
func TestBroadcastV1Allocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	h := benchHubV1(t, 100, true)
	p, _ := codec.NegotiateDeflate([]byte("permessage-deflate"), codec.DeflateConfig{Enabled: true})
	sink := devNull(t)
	for i := 0; i < 100; i++ { // seed members beside them
		c := &Conn{hub: h, member: -1, key: fmt.Sprintf("seed-%d", i), gzip: i%2 == 0}
		if i%3 == 0 {
			c.gzip, c.deflate = false, p
		}
		fd := addSink(t, h.reactor, c, sink)
		t.Cleanup(func() { closeFd(fd) })
		c.lastSeen.Store(time.Now().Add(time.Hour).UnixNano())
		c.state.Store(stOpen)
		h.table.insert(c)
	}
	payload := make([]byte, 512)
	for i := range payload {
		payload[i] = 'a' + byte(i%7)
	}
	broadcast := func() {
		h.Publish("", payload)
		waitFanout(h)
	}
	for range DefaultHistorySize + 1 {
		broadcast()
	}
	if a := testing.AllocsPerRun(200, broadcast); a != 0 {
		t.Fatalf("%.2f allocations per broadcast to seed and v1 members, want 0", a)
	}
	if h.stats.DeflateEncodings.Load() == 0 || h.stats.GzipEncodings.Load() == 0 {
		t.Fatal("the deflate and gzip variants were not built")
	}
}

// Deflate members on v1 count what their compressed envelopes saved,
// as seed ones do (wsd_deflate_bytes_saved_total).
func TestDeflateSavedV1(t *testing.T) {
	h := benchHubV1(t, 6, true) // members 0 and 3 on deflate
	payload := bytes.Repeat([]byte("compressible "), 40)
	h.Publish("", payload)
	waitFanout(h)
	if h.stats.DeflateEncodings.Load() == 0 {
		t.Fatal("no deflate frame was built")
	}
	if saved := h.stats.DeflateBytesSaved.Load(); saved < uint64(len(payload)) {
		t.Fatalf("%d bytes saved for two deflate members of a %d-byte compressible envelope", saved, len(payload))
	}
}

// devNull opens /dev/null for a bench's sinks, closed when b ends.
func devNull(b testing.TB) int {
	fd, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	return fd
}

func closeFd(fd int) { unix.Close(fd) }

// A flood of new send ids is bounded by DedupMax, oldest evicted first,
// and charged to the outbound budget; the newest ids still deduplicate.
func TestDedupFloodBounded(t *testing.T) {
	h, r := testHub(t, Config{DedupMax: 50, MaxQueue: 64 << 20})
	c, _ := stalledMember(t, h, r, "flooder", false)
	h.table.remove(c)
	c.v1 = &v1Conn{}
	h.table.insertV1(c)
	for i := range 500 {
		if err := c.command([]byte(fmt.Sprintf(`{"type":"send","room":"","id":"id-%d","text":"x"}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.dedup.Len(); n != 50 {
		t.Fatalf("%d ids remembered, want the bound 50", n)
	}
	if h.dedup.Bytes() <= 0 || h.dedup.Bytes() > 50*256 {
		t.Fatalf("dedup holds %d bytes for 50 ids", h.dedup.Bytes())
	}
	if _, ok := h.dedup.Check(c.key, []byte("id-499")); !ok {
		t.Fatal("the newest id is forgotten")
	}
	if _, ok := h.dedup.Check(c.key, []byte("id-0")); ok {
		t.Fatal("the oldest id survived a flood past the bound")
	}
	waitIdle(t, h)
	if got := h.stats.Broadcasts.Load(); got != 500 {
		t.Fatalf("%d broadcasts for 500 distinct ids", got)
	}
}

// An idle v1 connection holds no command state: each command takes its
// v1Work from the pool and gives it back, whatever the command did.
func TestV1IdleHoldsNoWork(t *testing.T) {
	h, r := testHub(t, Config{})
	c, _ := stalledMember(t, h, r, "idle", false)
	h.table.remove(c)
	c.v1 = &v1Conn{}
	h.table.insertV1(c)
	for _, cmd := range []string{
		`{"type":"join","room":"other"}`,
		`{"type":"send","room":"other","id":"a","text":"x"}`,
		`{"type":"send","room":"other","id":"a","text":"x"}`, // a duplicate: acked again
		`{"type":"members","room":"other"}`,
		`{"type":"leave","room":"other"}`,
		`{"type":"leave","room":"other"}`, // refused: not a member
		`{"type":"nope"}`,                 // refused: bad command
	} {
		if err := c.command([]byte(cmd)); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if c.v1.v1Work != nil {
			t.Fatalf("after %s the connection still holds its command's work", cmd)
		}
	}
	if got := h.stats.Broadcasts.Load(); got != 1 {
		t.Fatalf("%d broadcasts, want 1 (the duplicate is not sent again)", got)
	}
	w := v1Works.Get().(*v1Work)
	if w.cmd.Room != nil || w.join.room != "" || len(w.buf) != 0 {
		t.Fatalf("a pooled v1Work keeps its last command: %+v", w.cmd)
	}
	v1Works.Put(w)
}

// Subscriptions come and go in any order: every room's entries and every
// connection's list keep pointing at each other.
func TestSubsStayConsistent(t *testing.T) {
	h := &Hub{}
	h.table = newTable(h, 4)
	var cs []*Conn
	for i := range 40 {
		c := &Conn{hub: h, member: -1, key: fmt.Sprintf("k%d", i), room: "first"}
		h.table.insertV1(c)
		cs = append(cs, c)
	}
	rooms := []string{"a", "b", "c"}
	check := func(step int) {
		t.Helper()
		for _, s := range h.table.shards {
			for name, r := range s.rooms {
				for i, e := range r.subs {
					j := e.c.v1.subIndex([]byte(name))
					if j < 0 || e.c.v1.subs[j].idx != int32(i) {
						t.Fatalf("step %d: room %s entry %d (%s) not found back", step, name, i, e.c.key)
					}
				}
			}
		}
		for _, c := range cs {
			s := h.table.shardOf(c.key)
			for _, sb := range c.v1.subs {
				if r := s.rooms[sb.r.name]; r != sb.r || r.subs[sb.idx].c != c {
					t.Fatalf("step %d: %s's sub of %s points elsewhere", step, c.key, sb.r.name)
				}
			}
		}
	}
	for step := range 400 {
		c := cs[(step*7)%len(cs)]
		s := h.table.shardOf(c.key)
		s.mu.Lock()
		room := rooms[step%len(rooms)]
		if i := c.v1.subIndex([]byte(room)); i >= 0 {
			s.removeSub(c, i)
		} else {
			s.addSub(c, room, 0, nil)
		}
		s.mu.Unlock()
		check(step)
	}
	for _, c := range cs {
		h.table.remove(c)
	}
	if n := h.v1Subs.Load(); n != 0 {
		t.Fatalf("%d subscriptions counted after everyone left", n)
	}
	for _, s := range h.table.shards {
		if len(s.rooms) != 0 {
			t.Fatalf("rooms left behind: %v", s.rooms)
		}
	}
}

// heldReplay is a chat.Reader that has c replay without handing the frames
// over (expect is never reached), so a test can look at v.batch.
type heldReplay struct{ c *Conn }

func (r heldReplay) Attach(chat.Info)    { r.c.v1.join = pendingJoin{attached: true, expect: -1} }
func (r heldReplay) Replay(e chat.Entry) { r.c.reader().Replay(e) }

// Two gzip replays of the same retained messages share one gzip'd frame
// per message, and two text replays one text frame, byte for byte the
// frames envelopeFrame builds; a text member's replay builds no gzip.
func TestReplayGzipFrameShared(t *testing.T) {
	h, r := testHub(t, Config{})
	const room = "r"
	for _, text := range []string{"one", "two", "three"} {
		h.Publish(room, []byte(text))
	}
	waitIdle(t, h)
	_, envs, ok := h.RoomHistory(room)
	if !ok || len(envs) != 3 {
		t.Fatalf("history %q, want 3 envelopes", envs)
	}
	replay := func(key string, gzip bool) [][]byte {
		c, _ := stalledMember(t, h, r, key, gzip)
		// Under the shard lock the connection's close reads it with.
		sh := h.table.shardOf(c.key)
		sh.mu.Lock()
		c.v1 = &v1Conn{}
		c.v1.work() // as a command's join has it
		sh.mu.Unlock()
		h.ring.Last(room, 3, heldReplay{c})
		var frames [][]byte
		for _, it := range c.v1.batch {
			frames = append(frames, it.b)
		}
		t.Cleanup(func() { discardOwn(c.v1.batch) })
		return frames
	}
	enc0, held0 := h.stats.GzipEncodings.Load(), h.ring.Bytes()
	text, text2 := replay("text", false), replay("text-2", false)
	if n := h.stats.GzipEncodings.Load() - enc0; n != 0 {
		t.Fatalf("a text member's replay made %d gzip encodings", n)
	}
	a, b := replay("gz-a", true), replay("gz-b", true)
	if n := h.stats.GzipEncodings.Load() - enc0; n != 3 {
		t.Fatalf("two gzip replays of 3 messages made %d gzip encodings, want 3", n)
	}
	var encBytes int64
	for i, env := range envs {
		if want := appendGzipEnvelope(nil, env); !bytes.Equal(a[i], want) {
			t.Fatalf("message %d: replayed gzip frame % x, want appendGzipEnvelope's % x", i+1, a[i], want)
		}
		if own := (&Conn{gzip: true}).envelopeFrame(env); !bytes.Equal(a[i], own.b) {
			t.Fatalf("message %d: shared replay frame differs from envelopeFrame's", i+1)
		}
		if &a[i][0] != &b[i][0] {
			t.Fatalf("message %d: the second gzip replay got its own frame", i+1)
		}
		if want := codec.AppendFrame(nil, codec.OpText, env); !bytes.Equal(text[i], want) {
			t.Fatalf("message %d: text replay % x, want % x", i+1, text[i], want)
		}
		if own := (&Conn{}).envelopeFrame(env); !bytes.Equal(text[i], own.b) {
			t.Fatalf("message %d: shared text replay frame differs from envelopeFrame's", i+1)
		}
		if &text[i][0] != &text2[i][0] {
			t.Fatalf("message %d: the second text replay got its own frame", i+1)
		}
		encBytes += int64(cap(a[i])) + int64(cap(text[i]))
	}
	if got := h.ring.Bytes() - held0; got != encBytes {
		t.Fatalf("history charged %d more, want the %d bytes of the shared gzip and text frames", got, encBytes)
	}
}
