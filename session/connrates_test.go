package session

import (
	"testing"
	"time"

	"github.com/wsd-chat/wsd/codec"
)

// A connection's byte and delivery rate states are made by its first
// message, not before, and dropped at a ping or pong once they owe
// nothing; the limit holds across: one over its delivery rate stays
// limited until it has paid, and one idle long enough gets its whole
// burst back, as a connection that kept its state would.
func TestConnRatesFirstUseAndIdle(t *testing.T) {
	h := &Hub{byteRate: newRateLimit(1000, 1000), deliveries: newRateLimit(10, 10)}
	c := &Conn{hub: h}
	now := int64(time.Hour)
	if err := h.deliveryAllowed(c, now); err != nil || c.rates != nil {
		t.Fatalf("before any message: %v, rates %v; want allowed and none made", err, c.rates)
	}
	c.OnControl(codec.OpPong, nil)
	if c.rates != nil {
		t.Fatal("a pong made rate states")
	}
	var kept rateState // the same limit, never dropped
	h.chargeDeliveries(c, now, 10)
	h.deliveries.charge(&kept, now, 10)
	if c.rates == nil {
		t.Fatal("a charged message made no rate state")
	}
	c.trimRates(now + int64(500*time.Millisecond))
	if c.rates == nil {
		t.Fatal("rate states dropped while they owe a second")
	}
	if err := h.deliveryAllowed(c, now); err != errDeliveryRateLimited {
		t.Fatalf("past the burst: %v, want %v", err, errDeliveryRateLimited)
	}
	later := now + int64(time.Second)
	c.trimRates(later)
	if c.rates != nil {
		t.Fatal("rate states kept once they owe nothing")
	}
	// The whole burst again, refused at the same unit as the kept state.
	for i := 1; i <= 11; i++ {
		got, want := h.deliveryAllowed(c, later) == nil, !h.deliveries.ahead(int64(kept), later)
		if got != want || got != (i <= 10) {
			t.Fatalf("delivery %d after the idle second: allowed %v, kept state allows %v", i, got, want)
		}
		h.chargeDeliveries(c, later, 1)
		h.deliveries.charge(&kept, later, 1)
	}
	// The byte rate's state counts the same way, and a pong is where it goes.
	c.rates = nil
	if !h.byteRate.allow(&c.ratesOf().byteRate, now, 500) {
		t.Fatal("500 bytes refused within a 1000-byte burst")
	}
	c.trimRates(now + int64(400*time.Millisecond))
	if c.rates == nil {
		t.Fatal("byte rate state dropped while it owes 100 ms")
	}
	c.trimRates(now + int64(500*time.Millisecond))
	if c.rates != nil {
		t.Fatal("byte rate state kept once it owes nothing")
	}
}

// BenchmarkSenderMessage is a steady sender's message into a room of one
// member: its rate states are made once, so a message costs no allocation
// of them (allocs/op is the whole path's).
func BenchmarkSenderMessage(b *testing.B) {
	h := benchHub(b, 1)
	h.byteRate.set(1e15, 1e15)
	h.deliveries.set(1e12, 1e12)
	c := &Conn{hub: h, member: -1, key: "sender"}
	c.state.Store(stOpen)
	payload := []byte("a steady sender's message")
	send := func() {
		if err := c.OnMessage(codec.OpText, payload); err != nil {
			b.Fatal(err)
		}
		waitFanout(h)
	}
	for range DefaultHistorySize + 1 { // warm pools, fill the room's history ring
		send()
	}
	if c.rates == nil {
		b.Fatal("a sender holds no rate state")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		send()
	}
}
