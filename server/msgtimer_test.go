package server_test

import (
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/session"
)

// A message's start and a close deadline share one field in a connection
// (a connection has at most one of them at a time): a message begun and
// never finished is still closed at -message-timeout, and the bytes that
// arrive while the close is in flight, finishing the message, do not undo
// the close deadline: a peer that never answers the close frame is cut at
// -close-timeout, not kept until its idle timeout.
func TestMessageTimeoutThenCloseDeadline(t *testing.T) {
	const msgTimeout, closeTimeout = 300 * time.Millisecond, time.Second
	srv, addr, stats := start(t, session.Config{MessageTimeout: msgTimeout, CloseTimeout: closeTimeout,
		IdleTimeout: time.Minute, PingInterval: 30 * time.Second})
	c := wstest.Dial(t, addr, "specialKey=slowmsg")
	frame := wstest.RawFrame(0x81, true, make([]byte, 100))
	if err := c.WriteRaw(frame[:20]); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	f, err := c.ReadClose(5 * time.Second)
	if err != nil {
		t.Fatalf("waiting for the message timeout's close: %v", err)
	}
	if d := time.Since(t0); f.CloseCode() != 1008 || d < msgTimeout/2 || stats.MessageTimeouts.Load() != 1 {
		t.Fatalf("close %d after %v, %d message timeouts; want 1008 after about %v", f.CloseCode(), d, stats.MessageTimeouts.Load(), msgTimeout)
	}
	// The rest of the message, and no answer to the close.
	t1 := time.Now()
	if err := c.WriteRaw(frame[20:]); err != nil {
		t.Fatal(err)
	}
	wstest.Eventually(t, 5*time.Second, "the socket closed at the close timeout", func() bool { return srv.Hub().Live() == 0 })
	if d := time.Since(t1); d < closeTimeout/2 {
		t.Fatalf("closed %v after the close frame, before the close timeout %v", d, closeTimeout)
	}
}
