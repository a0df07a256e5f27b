package session

import (
	"fmt"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/chat"
	"github.com/wsd-chat/wsd/poller"
)

// startedLog is a chat.Log that only keeps its Deliverer, for driving
// Deliver by hand.
type startedLog struct{ d chat.Deliverer }

func (l *startedLog) Start(d chat.Deliverer) error { l.d = d; return nil }
func (l *startedLog) Submit(m *chat.Message, done func(chat.Stamp, bool, error)) {
	go done(chat.Stamp{}, false, chat.ErrUnavailable)
}
func (l *startedLog) Read(string, uint64, int, func(*chat.Message)) (chat.Info, error) {
	return chat.Info{}, chat.ErrUnavailable
}
func (l *startedLog) Close() error { return nil }

// logBenchHub is benchHubV1's members (v1, half gzip, deflate on every
// third) and as many seed members, on a Hub with a Log.
func logBenchHub(b testing.TB, n int) (*Hub, *startedLog) {
	b.Helper()
	r, err := poller.New(poller.Config{})
	if err != nil {
		b.Fatal(err)
	}
	lg := &startedLog{}
	h := NewHub(Config{Log: lg}, r)
	b.Cleanup(func() { h.Close(); r.Close() })
	sink := devNull(b)
	for i := 0; i < 2*n; i++ {
		c := &Conn{hub: h, member: -1, key: fmt.Sprintf("m-%d", i), gzip: i%2 == 0}
		fd := addSink(b, r, c, sink)
		b.Cleanup(func() { closeFd(fd) })
		c.lastSeen.Store(time.Now().Add(time.Hour).UnixNano())
		c.state.Store(stOpen)
		if i < n {
			h.table.insertV1(c)
		} else {
			h.table.insert(c)
		}
	}
	return h, lg
}

// runDeliveries delivers b.N messages as the Log would, one fan-out at a
// time, and returns the time per delivery.
func runDeliveries(h *Hub, lg *startedLog, m *chat.Message, n int) {
	for range n {
		m.Seq++
		m.TS = time.Now().UnixMilli()
		lg.d.Deliver(m)
		waitFanout(h)
	}
}

// TestLogDeliverAllocs: a room message the Log delivers is built and
// fanned out to seed and v1 members with no allocation once the room's
// ring is full, as a Ring-stamped broadcast is.
func TestLogDeliverAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	h, lg := logBenchHub(t, 100)
	payload := make([]byte, 512)
	for i := range payload {
		payload[i] = 'a' + byte(i%7)
	}
	m := &chat.Message{From: "k", Text: payload, Stamp: chat.Stamp{Epoch: "logepoch"}}
	runDeliveries(h, lg, m, DefaultHistorySize+1)
	if a := testing.AllocsPerRun(200, func() { runDeliveries(h, lg, m, 1) }); a != 0 {
		t.Fatalf("%.2f allocations per delivered message, want 0", a)
	}
	if got := h.stats.LogDelivered.Load(); got != m.Seq {
		t.Fatalf("%d delivered, want %d", got, m.Seq)
	}
}

// BenchmarkLogDeliver is BenchmarkBroadcastV1 for a message the Log
// delivers: 5,000 v1 and 5,000 seed members.
func BenchmarkLogDeliver(b *testing.B) {
	h, lg := logBenchHub(b, 5000)
	payload := make([]byte, 128)
	m := &chat.Message{From: "k", Text: payload, Stamp: chat.Stamp{Epoch: "logepoch"}}
	runDeliveries(h, lg, m, DefaultHistorySize+1)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	runDeliveries(h, lg, m, b.N)
	b.ReportMetric(float64(b.N*10000)/time.Since(start).Seconds(), "deliveries/s")
}
