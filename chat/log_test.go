package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct{ t atomic.Int64 }

func newClock() *clock {
	c := new(clock)
	c.t.Store(time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *clock) add(d time.Duration) { c.t.Add(int64(d)) }
func epochs(names ...string) func() string {
	var mu sync.Mutex
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		e := names[0]
		if len(names) > 1 {
			names = names[1:]
		}
		return e
	}
}

// reader records what a join got.
type reader struct {
	seqs     []uint64
	frames   []string
	attached *Info
}

func (r *reader) Replay(e Entry) {
	r.seqs = append(r.seqs, e.Seq)
	r.frames = append(r.frames, string(e.Frame))
}
func (r *reader) Attach(i Info) { r.attached = &i }

type sink struct {
	seqs   []uint64
	frames []string
}

func (s *sink) Publish(room string, st Stamp, f []byte) {
	s.seqs = append(s.seqs, st.Seq)
	s.frames = append(s.frames, string(f))
}

func appendN(t *testing.T, r *Ring, room string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := r.Append(Message{Room: room, From: "k", Text: []byte(fmt.Sprint("m", i))}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func seqRange(a, b uint64) []uint64 {
	var s []uint64
	for i := a; i <= b; i++ {
		s = append(s, i)
	}
	return s
}

func TestRingAppendStampsAndPublishes(t *testing.T) {
	c := newClock()
	r := NewRing(RingConfig{Now: c.now, NewEpoch: epochs("ep1")})
	var s sink
	for i := 1; i <= 3; i++ {
		st, err := r.Append(Message{Room: "a", From: "k", ID: []byte("c"), Text: []byte("hi"), Stamp: Stamp{Seq: 99}}, &s)
		if err != nil || st.Seq != uint64(i) || st.Epoch != "ep1" || st.TS != c.now().UnixMilli() {
			t.Fatalf("append %d: %+v %v", i, st, err)
		}
		c.add(time.Millisecond)
	}
	if fmt.Sprint(s.seqs) != "[1 2 3]" {
		t.Fatalf("published %v", s.seqs)
	}
	var m struct {
		Type, Room, Epoch, From, ID, Text string
		Seq                               uint64
		TS                                int64
	}
	if err := json.Unmarshal([]byte(s.frames[2]), &m); err != nil {
		t.Fatal(err)
	}
	if m.Type != "message" || m.Seq != 3 || m.Epoch != "ep1" || m.From != "k" || m.ID != "c" || m.Text != "hi" || m.TS != c.now().UnixMilli()-1 {
		t.Fatalf("envelope %+v", m)
	}
	// Another room counts on its own.
	if st, _ := r.Append(Message{Room: "b"}, nil); st.Seq != 1 {
		t.Fatalf("room b seq %d", st.Seq)
	}
}

func TestRingSince(t *testing.T) {
	for _, tc := range []struct {
		name    string
		since   uint64
		epoch   string
		want    []uint64
		err     error
		appends int
	}{
		{"from the start", 0, "e", seqRange(1, 5), nil, 5},
		{"middle", 3, "e", []uint64{4, 5}, nil, 5},
		{"at the top", 5, "e", nil, nil, 5},
		{"empty room", 0, "e", nil, nil, 0},
		{"ahead", 6, "e", nil, ErrAhead, 5},
		{"other epoch", 3, "x", nil, ErrEpoch, 5},
		{"oldest retained is since+1", 150 - 100, "e", seqRange(51, 150), nil, 150},
		{"one older than retained", 49, "e", nil, ErrTooOld, 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRing(RingConfig{NewEpoch: epochs("e")})
			appendN(t, r, "a", tc.appends)
			var rd reader
			info, err := r.Since("a", tc.since, tc.epoch, &rd)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if fmt.Sprint(rd.seqs) != fmt.Sprint(tc.want) {
				t.Fatalf("replayed %v, want %v", rd.seqs, tc.want)
			}
			if Recoverable(info, tc.since, tc.epoch) != (err == nil) {
				t.Fatalf("Recoverable disagrees with Since's %v", err)
			}
			if rd.attached == nil || *rd.attached != info || info.Seq != uint64(tc.appends) || info.Epoch != "e" {
				t.Fatalf("attach %+v, info %+v", rd.attached, info)
			}
		})
	}
}

func TestRingBounds(t *testing.T) {
	c := newClock()
	var charged atomic.Int64
	r := NewRing(RingConfig{MaxMessages: 10, MaxBytes: 1000, MaxAge: time.Minute, Now: c.now, NewEpoch: epochs("e"),
		Charge: func(d int64) { charged.Add(d) }})
	appendN(t, r, "a", 25)
	info, _ := r.Info("a")
	if info.Len != 10 || info.First != 16 || info.Seq != 25 {
		t.Fatalf("count bound: %+v", info)
	}
	if charged.Load() != r.Bytes() || r.Bytes() < info.Bytes {
		t.Fatalf("charged %d, Bytes %d, envelopes %d", charged.Load(), r.Bytes(), info.Bytes)
	}

	// Bytes: each envelope of 200 bytes of text is > 200, so at most 4 fit in 1000.
	big := strings.Repeat("x", 200)
	for i := 0; i < 6; i++ {
		r.Append(Message{Room: "b", Text: []byte(big)}, nil)
	}
	info, _ = r.Info("b")
	if info.Len != 3 || info.Bytes > 1000 || info.First != 4 {
		t.Fatalf("byte bound: %+v", info)
	}
	// A message over the byte bound is stamped and published, not kept.
	var s sink
	st, _ := r.Append(Message{Room: "b", Text: []byte(strings.Repeat("y", 2000))}, &s)
	info, _ = r.Info("b")
	if st.Seq != 7 || len(s.seqs) != 1 || info.Len != 0 || info.Seq != 7 {
		t.Fatalf("oversized: %+v %+v", st, info)
	}
	var rd reader
	if _, err := r.Since("b", 6, "e", &rd); err != ErrTooOld {
		t.Fatalf("since before an unkept message: %v", err)
	}

	// Age: messages older than MaxAge go; the seq and epoch stay.
	appendN(t, r, "c", 3)
	c.add(30 * time.Second)
	appendN(t, r, "c", 2)
	c.add(31 * time.Second)
	info, _ = r.Info("c")
	if info.Len != 2 || info.First != 4 || info.Seq != 5 {
		t.Fatalf("age bound: %+v", info)
	}
	c.add(30 * time.Second)
	rd = reader{}
	info, err := r.Since("c", 5, "e", &rd)
	if err != nil || info.Len != 0 || info.Seq != 5 {
		t.Fatalf("quiet room at its top is still recovered: %+v %v", info, err)
	}
	if charged.Load() != r.Bytes() {
		t.Fatalf("charged %d, Bytes %d", charged.Load(), r.Bytes())
	}
}

func TestRingMaxTotalBytes(t *testing.T) {
	r := NewRing(RingConfig{MaxTotalBytes: 20_000, NewEpoch: epochs("e")})
	text := []byte(strings.Repeat("x", 500))
	for i := 0; i < 200; i++ {
		for _, room := range []string{"a", "b", "c"} {
			r.Append(Message{Room: room, Text: text}, nil)
		}
		if r.Bytes() > 20_000+600 {
			t.Fatalf("ring holds %d bytes, over its bound", r.Bytes())
		}
	}
	for _, room := range []string{"a", "b", "c"} {
		if info, _ := r.Info(room); info.Seq != 200 || info.Len == 0 {
			t.Fatalf("room %s: %+v", room, info)
		}
	}
}

func TestRingLast(t *testing.T) {
	r := NewRing(RingConfig{NewEpoch: epochs("e")})
	appendN(t, r, "a", 5)
	for _, tc := range []struct {
		k    int
		want []uint64
	}{{0, nil}, {-3, nil}, {2, []uint64{4, 5}}, {5, seqRange(1, 5)}, {50, seqRange(1, 5)}} {
		var rd reader
		info, err := r.Last("a", tc.k, &rd)
		if err != nil || fmt.Sprint(rd.seqs) != fmt.Sprint(tc.want) || rd.attached == nil || info.Seq != 5 {
			t.Fatalf("Last(%d): %v %v %+v", tc.k, rd.seqs, err, info)
		}
	}
	var rd reader
	if info, _ := r.Last("new", 10, &rd); info.Seq != 0 || info.Epoch != "e" || len(rd.seqs) != 0 || rd.attached == nil {
		t.Fatalf("new room: %+v", info)
	}
}

func TestRingSweepStartsANewEpoch(t *testing.T) {
	c := newClock()
	var charged atomic.Int64
	r := NewRing(RingConfig{MaxAge: time.Minute, MetaTTL: time.Hour, Now: c.now, NewEpoch: epochs("e1", "e2"),
		Charge: func(d int64) { charged.Add(d) }})
	appendN(t, r, "a", 3)
	c.add(59 * time.Minute)
	r.Sweep(nil)
	if info, ok := r.Info("a"); !ok || info.Len != 0 || info.Seq != 3 || info.Epoch != "e1" {
		t.Fatalf("kept meta: %+v %v", info, ok)
	}
	c.add(time.Minute)
	r.Sweep(func(room string) bool { return room == "a" }) // members keep it
	if info, ok := r.Info("a"); !ok || info.Epoch != "e1" {
		t.Fatal("a room in use was forgotten")
	}
	r.Sweep(func(string) bool { return false })
	if _, ok := r.Info("a"); ok || r.Rooms() != 0 || charged.Load() != 0 || r.Bytes() != 0 {
		t.Fatalf("swept room still there; charged %d", charged.Load())
	}
	var rd reader
	info, err := r.Since("a", 3, "e1", &rd)
	if err != ErrEpoch || info.Epoch != "e2" || info.Seq != 0 {
		t.Fatalf("after sweep: %+v %v", info, err)
	}
}

// joiner is a member joining while traffic flows: what it got replayed
// and then live, with the live side fed by a sink that delivers to
// attached members only, as the session's fan-out does.
type liveRoom struct {
	mu      sync.Mutex
	members []*joiner
}

type joiner struct {
	got      []uint64
	attached bool
	upTo     uint64
}

func (j *joiner) Replay(e Entry) { j.got = append(j.got, e.Seq) }
func (j *joiner) Attach(i Info)  { j.attached, j.upTo = true, i.Seq }

func (l *liveRoom) Publish(room string, st Stamp, f []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, j := range l.members {
		if st.Seq > j.upTo { // the seam rule: skip what the replay had
			j.got = append(j.got, st.Seq)
		}
	}
}

// TestRingJoinDuringTraffic: members join with since while another
// goroutine appends at full rate; each must see every seq after its since
// exactly once, in order.
func TestRingJoinDuringTraffic(t *testing.T) {
	r := NewRing(RingConfig{MaxMessages: 1000, NewEpoch: epochs("e")})
	live := &liveRoom{}
	const total = 3000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < total; i++ {
			r.Append(Message{Room: "a", Text: []byte("x")}, live)
		}
	}()
	var joiners []*joiner
	var sinces []uint64
	for i := 0; i < 50; i++ {
		info, _ := r.Info("a")
		since := info.Seq
		if since > 5 {
			since -= 5
		}
		j := &joiner{}
		// Attach runs under the room's lock; registering in live takes
		// live.mu, which Publish (also under the room's lock) takes too.
		_, err := r.Since("a", since, "e", readerFunc{j, live})
		if err != nil {
			t.Fatal(err)
		}
		joiners = append(joiners, j)
		sinces = append(sinces, since)
	}
	<-done
	for i, j := range joiners {
		want := seqRange(sinces[i]+1, total)
		if fmt.Sprint(j.got) != fmt.Sprint(want) {
			t.Fatalf("joiner %d since %d: got %d messages, want %d (first %v)", i, sinces[i], len(j.got), len(want), j.got[:min(5, len(j.got))])
		}
	}
}

type readerFunc struct {
	j    *joiner
	live *liveRoom
}

func (r readerFunc) Replay(e Entry) { r.j.Replay(e) }
func (r readerFunc) Attach(i Info) {
	r.j.Attach(i)
	r.live.mu.Lock()
	r.live.members = append(r.live.members, r.j)
	r.live.mu.Unlock()
}

// TestRingConcurrentAppendsPublishInOrder: appends racing on one room
// reach the sink in seq order, with no seq twice or missing.
func TestRingConcurrentAppendsPublishInOrder(t *testing.T) {
	r := NewRing(RingConfig{})
	var s sink // Publish runs under the room's lock: no lock of its own needed
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				r.Append(Message{Room: "a", Text: []byte("x")}, &s)
			}
		}()
	}
	wg.Wait()
	if fmt.Sprint(s.seqs) != fmt.Sprint(seqRange(1, 2000)) {
		t.Fatalf("published out of order or with holes: %d seqs", len(s.seqs))
	}
	infos := r.Infos(nil)
	if len(infos) != 1 || infos[0].Seq != 2000 || infos[0].Room != "a" || infos[0].Len != DefaultMaxMessages {
		t.Fatalf("Infos %+v", infos)
	}
}

func TestNewEpoch(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		e := NewEpoch()
		if len(e) != EpochLen || strings.Trim(e, epochAlphabet) != "" || seen[e] {
			t.Fatalf("epoch %q", e)
		}
		seen[e] = true
	}
}

func BenchmarkRingAppend(b *testing.B) {
	r := NewRing(RingConfig{})
	m := Message{Room: "lobby", From: "user-42", ID: []byte("8f14e45f-ceea-467f-a0e6"), Text: []byte("hello everyone, the meeting moved to 3pm")}
	var s discard
	b.ReportAllocs()
	for b.Loop() {
		r.Append(m, &s)
	}
}

type discard struct{ n int }

func (d *discard) Publish(room string, st Stamp, f []byte) { d.n += len(f) }

// TestRingSweepRacesAppend: rooms forgotten while appended to either go on
// in their epoch or restart at seq 1 in a new one, never a hole.
func TestRingSweepRacesAppend(t *testing.T) {
	c := newClock()
	r := NewRing(RingConfig{MaxAge: time.Millisecond, MetaTTL: time.Millisecond, Now: c.now})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.add(time.Millisecond)
			r.Sweep(nil)
		}
	}()
	var last [4]Stamp
	for i := 0; i < 4000; i++ {
		k := i % 4
		st, _ := r.Append(Message{Room: fmt.Sprint("r", k), Text: []byte("x")}, nil)
		p := last[k]
		if !(st.Epoch == p.Epoch && st.Seq == p.Seq+1) && !(st.Epoch != p.Epoch && st.Seq == 1) {
			t.Fatalf("room r%d: %+v after %+v", k, st, p)
		}
		last[k] = st
	}
	close(stop)
	wg.Wait()
}

// encReader asks every replayed entry for its encodings, Encoded as a gzip
// member does and Framed as a text member does, and keeps what it got.
type encReader struct{ encs, framed [][]byte }

func (r *encReader) Attach(Info) {}
func (r *encReader) Replay(e Entry) {
	r.encs = append(r.encs, e.Encoded())
	r.framed = append(r.framed, e.Framed())
}

func TestRingEncodedSharedOncePerMessage(t *testing.T) {
	var encodes int
	enc := func(dst, env []byte) []byte {
		encodes++
		return append(append(dst, "enc:"...), env...)
	}
	var frames int
	frame := func(dst, env []byte) []byte {
		frames++
		return append(append(dst, "frame:"...), env...)
	}
	r := NewRing(RingConfig{NewEpoch: epochs("ep"), Encode: enc, Frame: frame})
	appendN(t, r, "a", 3)
	if encodes != 0 {
		t.Fatalf("%d encodings at append, want none before a replay asks", encodes)
	}
	var plain reader
	r.Since("a", 0, "ep", &plain)
	if encodes != 0 {
		t.Fatalf("a reader that never asks made %d encodings", encodes)
	}
	var first, second encReader
	r.Since("a", 0, "ep", &first)
	r.Last("a", 2, &second)
	if encodes != 3 || frames != 3 {
		t.Fatalf("%d encodings and %d frames for two replays of 3 messages, want 3 of each (one per message)", encodes, frames)
	}
	for i, b := range second.encs {
		a := first.encs[i+1]
		if &a[0] != &b[0] {
			t.Fatalf("message %d: the second replay got its own encoding, not the shared one", i+2)
		}
		if want := "enc:" + plain.frames[i+1]; string(b) != want {
			t.Fatalf("message %d encoded %q, want %q", i+2, b, want)
		}
		f, g := first.framed[i+1], second.framed[i]
		if &f[0] != &g[0] || string(g) != "frame:"+plain.frames[i+1] {
			t.Fatalf("message %d: framed %q, not shared or not %q", i+2, g, "frame:"+plain.frames[i+1])
		}
	}
	// A ring without Encode has nothing to give.
	r2 := NewRing(RingConfig{NewEpoch: epochs("ep")})
	appendN(t, r2, "a", 1)
	var none encReader
	r2.Last("a", 1, &none)
	if none.encs[0] != nil || none.framed[0] != nil {
		t.Fatalf("Encoded, Framed without RingConfig.Encode, Frame = %q, %q, want nil", none.encs[0], none.framed[0])
	}
}

// TestRingEncodedCharge: an encoding is charged when built and refunded
// when its message goes, however it goes; the room's own bytes (Info.Bytes,
// MaxBytes) never count it.
func TestRingEncodedCharge(t *testing.T) {
	const pad = 100 // each encoding is 100 bytes beyond its envelope
	enc := func(dst, env []byte) []byte {
		b := make([]byte, len(env)+pad)
		copy(b, env)
		return b
	}
	for _, tc := range []struct {
		name string
		cfg  RingConfig
		// drop makes the ring drop what it retains of room "a".
		drop func(r *Ring, c *clock)
		left int // messages of "a" encoded after drop
	}{
		{"evicted by count", RingConfig{MaxMessages: 3}, func(r *Ring, _ *clock) { appendN(t, r, "a", 2) }, 1},
		{"evicted by room bytes", RingConfig{MaxBytes: 200}, func(r *Ring, _ *clock) {
			r.Append(Message{Room: "a", From: "k", Text: []byte(strings.Repeat("x", 150))}, nil)
		}, 0},
		{"evicted by total bytes", RingConfig{MaxTotalBytes: 1 << 20}, func(r *Ring, _ *clock) {
			r.cfg.MaxTotalBytes = 1 // every Append now drops all but nothing
			appendN(t, r, "a", 1)
		}, 0},
		{"aged out", RingConfig{MaxAge: time.Minute}, func(r *Ring, c *clock) {
			c.add(2 * time.Minute)
			r.Info("a")
		}, 0},
		{"room swept", RingConfig{MaxAge: time.Minute, MetaTTL: time.Minute}, func(r *Ring, c *clock) {
			c.add(2 * time.Minute)
			r.Sweep(nil)
			if r.Rooms() != 0 {
				t.Fatal("room not swept")
			}
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			var charged atomic.Int64
			cfg := tc.cfg
			cfg.Now, cfg.NewEpoch, cfg.Encode, cfg.Frame = c.now, epochs("ep"), enc, enc
			cfg.Charge = func(d int64) { charged.Add(d) }
			r := NewRing(cfg)
			appendN(t, r, "a", 3)
			before, info := r.Bytes(), r.mustInfo(t, "a")
			if r.audit() != before {
				t.Fatalf("charged %d, holds %d", before, r.audit())
			}
			var er encReader
			r.Last("a", 3, &er)
			var encBytes int64
			for _, b := range append(er.encs, er.framed...) {
				encBytes += int64(cap(b))
			}
			if got := r.Bytes() - before; got != encBytes || encBytes < 6*pad {
				t.Fatalf("replay charged %d, want the %d bytes of its 3 messages' two encodings", got, encBytes)
			}
			if after := r.mustInfo(t, "a"); after.Bytes != info.Bytes {
				t.Fatalf("Info.Bytes %d after encoding, want %d (envelopes only)", after.Bytes, info.Bytes)
			}
			// The same replay again charges nothing more.
			held := r.Bytes()
			r.Last("a", 3, &encReader{})
			if r.Bytes() != held {
				t.Fatalf("a second replay charged %d more", r.Bytes()-held)
			}
			tc.drop(r, c)
			if got := r.audit(); r.Bytes() != got {
				t.Fatalf("after the drop the ring is charged %d, holds %d: dropped encodings not refunded", r.Bytes(), got)
			}
			if got := r.encodedLeft("a"); got != tc.left {
				t.Fatalf("%d encodings retained, want %d", got, tc.left)
			}
			if charged.Load() != r.Bytes() {
				t.Fatalf("Charge saw %d, Bytes is %d", charged.Load(), r.Bytes())
			}
		})
	}
}

// audit recomputes what the ring holds from its rooms, for a test to
// compare with what it charged.
func (r *Ring) audit() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var n int64
	for name, l := range r.rooms {
		l.mu.Lock()
		n += roomLogSize + int64(len(name)) + int64(len(l.slots))*slotSize
		for _, s := range l.slots {
			n += int64(cap(s.frame))
			for _, e := range s.enc {
				n += int64(cap(e))
			}
		}
		l.mu.Unlock()
	}
	return n
}

// encodedLeft is how many of room's slots hold an encoding.
func (r *Ring) encodedLeft(room string) int {
	l := r.lock(room, false)
	if l == nil {
		return 0
	}
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.slots {
		if s.enc[encEncode] != nil || s.enc[encFrame] != nil {
			n++
		}
	}
	return n
}

func (r *Ring) mustInfo(t *testing.T, room string) Info {
	t.Helper()
	i, ok := r.Info(room)
	if !ok {
		t.Fatalf("room %q has no log", room)
	}
	return i
}
