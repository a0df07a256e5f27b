package chat

import (
	"reflect"
	"testing"
	"time"
)

// TestRingPut: externally stamped messages are kept under their stamp; a
// seq that does not follow, or another epoch, restarts the retained run;
// one already put is neither kept nor published again.
func TestRingPut(t *testing.T) {
	type put struct {
		seq   uint64
		epoch string
	}
	cases := []struct {
		name      string
		puts      []put
		kept      []bool
		retained  []uint64 // seqs retained at the end
		epoch     string
		published []uint64
	}{
		{"contiguous", []put{{5, "A"}, {6, "A"}, {7, "A"}}, []bool{true, true, true}, []uint64{5, 6, 7}, "A", []uint64{5, 6, 7}},
		{"gap restarts", []put{{1, "A"}, {2, "A"}, {4, "A"}, {5, "A"}}, []bool{true, true, true, true}, []uint64{4, 5}, "A", []uint64{1, 2, 4, 5}},
		{"epoch restarts", []put{{1, "A"}, {2, "A"}, {1, "B"}}, []bool{true, true, true}, []uint64{1}, "B", []uint64{1, 2, 1}},
		{"again is stale", []put{{1, "A"}, {2, "A"}, {2, "A"}, {1, "A"}, {3, "A"}}, []bool{true, true, false, false, true}, []uint64{1, 2, 3}, "A", []uint64{1, 2, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			r := NewRing(RingConfig{Now: clk.now, NewEpoch: epochs("local")})
			s := &sink{}
			for i, p := range tc.puts {
				m := Message{Room: "r", Stamp: Stamp{Seq: p.seq, Epoch: p.epoch, TS: clk.now().UnixMilli() + int64(p.seq)}, Text: []byte("x")}
				if got := r.Put(&m, s); got != tc.kept[i] {
					t.Fatalf("put %d (%d %s): kept %v, want %v", i, p.seq, p.epoch, got, tc.kept[i])
				}
			}
			rd := &reader{}
			info, _ := r.Last("r", 100, rd)
			if !reflect.DeepEqual(rd.seqs, tc.retained) || info.Epoch != tc.epoch {
				t.Errorf("retained %v in %s, want %v in %s", rd.seqs, info.Epoch, tc.retained, tc.epoch)
			}
			if info.Seq != tc.retained[len(tc.retained)-1] || info.First != tc.retained[0] {
				t.Errorf("info %+v", info)
			}
			if !reflect.DeepEqual(s.seqs, tc.published) {
				t.Errorf("published %v, want %v", s.seqs, tc.published)
			}
			// The envelope carries the Log's stamp, not the ring's clock.
			want := string(AppendMessage(nil, &Message{Room: "r", Stamp: Stamp{Seq: info.Seq, Epoch: info.Epoch, TS: clk.now().UnixMilli() + int64(info.Seq)}, Text: []byte("x")}))
			if rd.frames[len(rd.frames)-1] != want {
				t.Errorf("frame %s, want %s", rd.frames[len(rd.frames)-1], want)
			}
		})
	}
}

// TestRingAppendIn: a local epoch restarts the run at 1, and a Put of the
// Log's epoch afterwards restarts it again from the Log's seq.
func TestRingAppendIn(t *testing.T) {
	clk := newClock()
	r := NewRing(RingConfig{Now: clk.now})
	s := &sink{}
	for seq := uint64(1); seq <= 3; seq++ {
		r.Put(&Message{Room: "r", Stamp: Stamp{Seq: seq, Epoch: "LOG", TS: clk.now().UnixMilli()}}, s)
	}
	st := r.AppendIn("mine", Message{Room: "r"}, s)
	st2 := r.AppendIn("mine", Message{Room: "r"}, s)
	if st.Seq != 1 || st.Epoch != "mine" || st2.Seq != 2 {
		t.Fatalf("local stamps %+v %+v", st, st2)
	}
	r.Put(&Message{Room: "r", Stamp: Stamp{Seq: 4, Epoch: "LOG", TS: clk.now().UnixMilli()}}, s)
	info, _ := r.Info("r")
	if info.Epoch != "LOG" || info.Seq != 4 || info.Len != 1 {
		t.Fatalf("back to the Log: %+v", info)
	}
}

// TestRingLockedView: Replay after a seq, and a room without a log.
func TestRingLockedView(t *testing.T) {
	r := NewRing(RingConfig{MaxMessages: 4})
	for seq := uint64(1); seq <= 6; seq++ {
		r.Put(&Message{Room: "r", Stamp: Stamp{Seq: seq, Epoch: "E", TS: time.Now().UnixMilli()}}, nil)
	}
	for _, tc := range []struct {
		after uint64
		want  []uint64
	}{{0, []uint64{3, 4, 5, 6}}, {3, []uint64{4, 5, 6}}, {6, nil}, {9, nil}} {
		rd := &reader{}
		var n int
		r.Locked("r", func(v View) { n = v.Replay(rd, tc.after) })
		if !reflect.DeepEqual(rd.seqs, tc.want) || n != len(tc.want) {
			t.Errorf("after %d: %v (%d), want %v", tc.after, rd.seqs, n, tc.want)
		}
	}
	r.Locked("none", func(v View) {
		if _, ok := v.Info(); ok {
			t.Error("a room without a log has an Info")
		}
	})
	if _, ok := r.Info("none"); ok {
		t.Error("Locked created a log")
	}
	held := r.Bytes()
	r.Drop("r")
	if _, ok := r.Info("r"); ok || r.Bytes() != 0 || held == 0 {
		t.Errorf("after Drop: bytes %d (held %d)", r.Bytes(), held)
	}
}

// TestRingSeed: what a Read returned is kept as the room's run when it
// reaches the run (or the room has none), at either end; a seeded
// message the Log delivers afterwards is published once and not kept
// again, and one it delivered already is still stale.
func TestRingSeed(t *testing.T) {
	type put struct {
		seq   uint64
		epoch string
	}
	cases := []struct {
		name      string
		before    []put    // delivered before the Read is merged
		seed      []uint64 // the Read's seqs, in epoch A, the last one its top
		kept      int
		seeded    uint64
		after     []put // delivered after
		retained  []uint64
		published []uint64 // by the puts after the seed
	}{
		{"no log", nil, []uint64{3, 4, 5}, 3, 5, []put{{4, "A"}, {5, "A"}, {5, "A"}, {6, "A"}}, []uint64{3, 4, 5, 6}, []uint64{4, 5, 6}},
		{"past the top", []put{{1, "A"}, {2, "A"}}, []uint64{1, 2, 3, 4}, 4, 4, []put{{2, "A"}, {3, "A"}, {4, "A"}}, []uint64{1, 2, 3, 4}, []uint64{3, 4}},
		{"before the run", []put{{5, "A"}, {6, "A"}}, []uint64{2, 3, 4, 5}, 4, 0, []put{{4, "A"}, {7, "A"}}, []uint64{2, 3, 4, 5, 6, 7}, []uint64{7}},
		{"other epoch", []put{{1, "B"}}, []uint64{1, 2}, 0, 0, []put{{2, "B"}}, []uint64{1, 2}, []uint64{2}},
		{"hole before the run", []put{{8, "A"}}, []uint64{2, 3, 4, 5}, 0, 0, nil, []uint64{8}, nil},
		{"not contiguous", nil, []uint64{2, 4}, 0, 0, nil, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			r := NewRing(RingConfig{Now: clk.now, NewEpoch: epochs("local")})
			msg := func(seq uint64, epoch string) *Message {
				return &Message{Room: "r", Stamp: Stamp{Seq: seq, Epoch: epoch, TS: clk.now().UnixMilli()}, Text: []byte("x")}
			}
			for _, p := range tc.before {
				r.Put(msg(p.seq, p.epoch), nil)
			}
			var es []Entry
			for _, seq := range tc.seed {
				es = append(es, Entry{Seq: seq, TS: clk.now().UnixMilli(), Frame: AppendMessage(nil, msg(seq, "A"))})
			}
			r.Merging("r", func(v View) {
				if got := v.Seed("A", tc.seed[len(tc.seed)-1], es); got != tc.kept {
					t.Errorf("kept %d, want %d", got, tc.kept)
				}
				if got := v.Seeded(); got != tc.seeded {
					t.Errorf("seeded %d, want %d", got, tc.seeded)
				}
			})
			s := &sink{}
			for _, p := range tc.after {
				r.Put(msg(p.seq, p.epoch), s)
			}
			rd := &reader{}
			if tc.retained == nil {
				if _, ok := r.Info("r"); ok {
					t.Fatal("a room nothing was seeded in has a log")
				}
				return
			}
			r.Last("r", 100, rd)
			if !reflect.DeepEqual(rd.seqs, tc.retained) {
				t.Errorf("retained %v, want %v", rd.seqs, tc.retained)
			}
			if !reflect.DeepEqual(s.seqs, tc.published) {
				t.Errorf("published %v, want %v", s.seqs, tc.published)
			}
		})
	}
}

// TestRingSeedCharge: a seeded room is charged as one that was put, and a
// Merging that seeds nothing leaves no charge behind.
func TestRingSeedCharge(t *testing.T) {
	var held int64
	r := NewRing(RingConfig{Charge: func(d int64) { held += d }})
	r.Merging("empty", func(View) {})
	if held != 0 || r.Rooms() != 0 {
		t.Fatalf("after a Merging with no seed: %d bytes held, %d rooms", held, r.Rooms())
	}
	now := time.Now().UnixMilli()
	var es []Entry
	for seq := uint64(1); seq <= 3; seq++ {
		es = append(es, Entry{Seq: seq, TS: now, Frame: AppendMessage(nil, &Message{Room: "r", Stamp: Stamp{Seq: seq, Epoch: "A", TS: now}, Text: []byte("hello")})})
	}
	r.Merging("r", func(v View) { v.Seed("A", 3, es) })
	if held <= 0 || held != r.Bytes() {
		t.Fatalf("seeded room: %d bytes charged, ring says %d", held, r.Bytes())
	}
	r.Drop("r")
	if held != 0 {
		t.Fatalf("%d bytes still charged after Drop", held)
	}
}

// BenchmarkRingPut is a Log's delivery into a room whose ring is full:
// the path every delivered message takes (with or without a seeded run
// behind it), 0 allocations.
func BenchmarkRingPut(b *testing.B) {
	r := NewRing(RingConfig{})
	m := Message{Room: "r", Stamp: Stamp{Epoch: "A", TS: time.Now().UnixMilli()}, From: "k", Text: make([]byte, 128)}
	for range DefaultMaxMessages {
		m.Seq++
		r.Put(&m, nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		m.Seq++
		r.Put(&m, nil)
	}
}
