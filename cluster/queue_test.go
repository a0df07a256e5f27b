package cluster

import (
	"bytes"
	"testing"
)

// The publish queue is bounded in bytes as well as in messages: a stalled
// NATS connection must not hold QueueLimit large messages.
func TestPublishQueueBytes(t *testing.T) {
	b, err := New(Config{URL: "nats://127.0.0.1:1", QueueBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	b.stats.Connected.Store(true) // as if connected; nothing drains the queue
	m := func() *message {
		return &message{Kind: kindRoom, BoxID: "a", Target: "r", Text: bytes.Repeat([]byte("x"), 900)}
	}
	if !b.publish("wsd.room.r", m()) || !b.publish("wsd.room.r", m()) {
		t.Fatal("two messages under the byte bound were refused")
	}
	if b.publish("wsd.room.r", m()) {
		t.Fatal("a third message past 2,000 queued bytes was taken")
	}
	if got := b.stats.Dropped(DropQueueFull); got != 1 {
		t.Fatalf("dropped as queue full: %d, want 1", got)
	}
}
