package history

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsd-chat/wsd/chat"
)

// got is one delivered message, copied.
type got struct {
	Room, Epoch, From, ID, Text string
	Seq                         uint64
	TS                          int64
}

// recorder is a Deliverer that keeps what it is handed.
type recorder struct {
	mu     sync.Mutex
	msgs   []got
	resets []string
	ch     chan struct{} // a tick per Deliver
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1<<20)} }

func (r *recorder) Deliver(m *chat.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, got{m.Room, m.Epoch, m.From, string(m.ID), string(m.Text), m.Seq, m.TS})
	r.mu.Unlock()
	r.ch <- struct{}{}
}

func (r *recorder) Reset(room string) {
	r.mu.Lock()
	r.resets = append(r.resets, room)
	r.mu.Unlock()
}

func (r *recorder) all() []got {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]got(nil), r.msgs...)
}

func (r *recorder) resetList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.resets...)
}

// wait waits for n deliveries in all.
func (r *recorder) wait(t testing.TB, n int) []got {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		k := len(r.msgs)
		r.mu.Unlock()
		if k >= n {
			return r.all()
		}
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("delivered %d of %d", k, n)
		}
	}
}

// byRoom groups deliveries per room, in delivery order.
func byRoom(msgs []got) map[string][]got {
	m := make(map[string][]got)
	for _, g := range msgs {
		m[g.Room] = append(m[g.Room], g)
	}
	return m
}

type result struct {
	st  chat.Stamp
	dup bool
	err error
}

// submit submits m and waits for done.
func submit(t testing.TB, l *Log, m chat.Message) result {
	t.Helper()
	ch := make(chan result, 1)
	l.Submit(&m, func(st chat.Stamp, dup bool, err error) { ch <- result{st, dup, err} })
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("done not called")
		return result{}
	}
}

func testConfig(t testing.TB) Config {
	return Config{Dir: t.TempDir(), PublishTimeout: 5 * time.Second, Logf: t.Logf}
}

// openEmbedded opens a Log on a fresh dir (or cfg.Dir) and closes it at
// the end of the test.
func openEmbedded(t testing.TB, cfg Config) *Log {
	t.Helper()
	l, err := OpenEmbedded(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// secondBox opens another Log on a's embedded server through its own
// connection: another box of the same cluster.
func secondBox(t testing.TB, a *Log, cfg Config) *Log {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(a.ns))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(); nc.Close() })
	return b
}

// checkRoomOrder fails unless each room's deliveries are seq 1..n of one
// epoch, in order.
func checkRoomOrder(t testing.TB, msgs []got) {
	t.Helper()
	for room, ms := range byRoom(msgs) {
		for i, g := range ms {
			if g.Seq != uint64(i+1) || g.Epoch != ms[0].Epoch {
				t.Fatalf("room %q: delivery %d is seq %d epoch %s (first epoch %s)", room, i, g.Seq, g.Epoch, ms[0].Epoch)
			}
		}
	}
}

func text(i int) []byte { return fmt.Appendf(nil, "message %d", i) }
