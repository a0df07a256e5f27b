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
