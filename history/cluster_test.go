package history

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/chat"
)

// Two boxes on one JetStream submitting at once: every box delivers the
// same gap-free order per room, and each done's stamp is the delivered one.
func TestTwoBoxesOrder(t *testing.T) {
	for _, tc := range []struct {
		name         string
		rooms, perBx int
	}{
		{"one room", 1, 300},
		{"many rooms", 40, 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MaxMsgsPerRoom = 1000 // all kept: a consumer behind by more would see evicted holes
			a := openEmbedded(t, cfg)
			b := secondBox(t, a, cfg)
			ra, rb := newRecorder(), newRecorder()
			if err := a.Start(ra); err != nil {
				t.Fatal(err)
			}
			if err := b.Start(rb); err != nil {
				t.Fatal(err)
			}
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				stamps = map[string]chat.Stamp{} // text -> stamp
			)
			for bi, l := range []*Log{a, b} {
				for i := range tc.perBx {
					for r := range tc.rooms {
						wg.Add(1)
						txt := fmt.Sprintf("box%d-%d-%d", bi, r, i)
						m := chat.Message{Room: fmt.Sprintf("room%d", r), From: fmt.Sprintf("k%d", bi), Text: []byte(txt)}
						l.Submit(&m, func(st chat.Stamp, dup bool, err error) {
							defer wg.Done()
							if err != nil || dup {
								t.Errorf("%s: dup %v err %v", txt, dup, err)
							}
							mu.Lock()
							stamps[txt] = st
							mu.Unlock()
						})
					}
				}
			}
			wg.Wait()
			n := 2 * tc.perBx * tc.rooms
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("a: %+v resets %v", a.Stats(), ra.resetList())
					t.Logf("b: %+v resets %v", b.Stats(), rb.resetList())
				}
			})
			ma, mb := ra.wait(t, n), rb.wait(t, n)
			checkRoomOrder(t, ma)
			ga, gb := byRoom(ma), byRoom(mb)
			for room, ms := range ga {
				if !slices.Equal(ms, gb[room]) {
					t.Fatalf("room %s: the boxes delivered different orders", room)
				}
				for _, g := range ms {
					if st := stamps[g.Text]; st.Seq != g.Seq || st.Epoch != g.Epoch || st.TS != g.TS {
						t.Fatalf("%s: done %+v, delivered %+v", g.Text, st, g)
					}
				}
			}
			if len(ga) != tc.rooms {
				t.Fatalf("%d rooms delivered, want %d", len(ga), tc.rooms)
			}
			sa, sb := a.Stats(), b.Stats()
			t.Logf("conflicts: a %d b %d of %d submits; foreign %d %d", sa.Conflicts, sb.Conflicts, n, sa.Foreign, sb.Foreign)
			if sa.Foreign+sb.Foreign != 0 || sa.Stored+sb.Stored != uint64(n) {
				t.Fatalf("stats a %+v b %+v", sa, sb)
			}
		})
	}
}

// A send repeated through the other box is a duplicate with the
// original's stamp, delivered once.
func TestDedupAcrossBoxes(t *testing.T) {
	cfg := testConfig(t)
	a := openEmbedded(t, cfg)
	b := secondBox(t, a, cfg)
	ra, rb := newRecorder(), newRecorder()
	a.Start(ra)
	b.Start(rb)
	first := submit(t, a, chat.Message{Room: "r", From: "alice", ID: []byte("c1"), Text: []byte("hi")})
	if first.err != nil || first.dup {
		t.Fatalf("first: %+v", first)
	}
	// Another message in between, so the repeat's expected position is
	// stale on box a too (conflict first, then the duplicate).
	submit(t, b, chat.Message{Room: "r", From: "bob", Text: []byte("x")})
	for _, l := range []*Log{b, a} {
		again := submit(t, l, chat.Message{Room: "r", From: "alice", ID: []byte("c1"), Text: []byte("hi")})
		if again.err != nil || !again.dup || again.st != first.st {
			t.Fatalf("repeat: %+v, want dup of %+v", again, first.st)
		}
	}
	// Same id from another key, and another id from the same key: new.
	for _, m := range []chat.Message{
		{Room: "r", From: "bob", ID: []byte("c1"), Text: []byte("other key")},
		{Room: "r", From: "alice", ID: []byte("c2"), Text: []byte("other id")},
	} {
		if r := submit(t, b, m); r.err != nil || r.dup {
			t.Fatalf("%s: %+v", m.Text, r)
		}
	}
	for _, rec := range []*recorder{ra, rb} {
		ms := rec.wait(t, 4)
		checkRoomOrder(t, ms)
		if len(ms) != 4 || ms[0].Text != "hi" || ms[0].ID != "c1" {
			t.Fatalf("delivered %+v", ms)
		}
	}
	if s := a.Stats(); s.Duplicates != 1 {
		t.Fatalf("a: %d duplicates", s.Duplicates)
	}
}

// blocker holds its first delivery until released.
type blocker struct {
	*recorder
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (b *blocker) Deliver(m *chat.Message) {
	b.once.Do(func() { close(b.entered); <-b.release })
	b.recorder.Deliver(m)
}

// A consumer that falls behind a room's history limit finds the evicted
// messages gone: it says Reset("") and goes on with what is there.
func TestLaggingConsumerResets(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxMsgsPerRoom = 5
	l := openEmbedded(t, cfg)
	b := &blocker{recorder: newRecorder(), entered: make(chan struct{}), release: make(chan struct{})}
	if err := l.Start(b); err != nil {
		t.Fatal(err)
	}
	submit(t, l, chat.Message{Room: "r", Text: text(0)})
	<-b.entered
	// More than the consumer's pull buffer (500 messages), so most are
	// evicted before they are fetched.
	const n = 2000
	for i := 1; i < n; i++ {
		submit(t, l, chat.Message{Room: "r", Text: text(i)})
	}
	close(b.release)
	var ms []got
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ms = b.all()
		if len(ms) > 0 && ms[len(ms)-1].Seq == n || time.Now().After(deadline) {
			break
		}
	}
	if len(ms) >= n || ms[len(ms)-1].Seq != n {
		t.Fatalf("delivered %d, the last seq %d", len(ms), ms[len(ms)-1].Seq)
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].Seq <= ms[i-1].Seq {
			t.Fatalf("out of order: %d after %d", ms[i].Seq, ms[i-1].Seq)
		}
	}
	t.Logf("delivered %d of %d", len(ms), n)
	if r := b.resetList(); len(r) == 0 || r[0] != "" {
		t.Fatalf("resets %q", r)
	}
}
