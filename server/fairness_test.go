package server_test

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/session"
)

// waitClose reads c until its close frame and returns the code (0 and the
// error if the connection ended without one or timeout passed).
func waitClose(c *wstest.Client, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.ReadFrame(time.Until(deadline))
		if err != nil {
			return 0, err
		}
		if f.Op == ws.OpClose {
			return f.CloseCode(), nil
		}
	}
}

// TestEveryFrameCharged: frames that carry nothing still cost the
// per-connection rate, so a client streaming empty continuations or
// unsolicited empty pongs at full speed is closed 1008 within a bounded
// time (at the default 10,000 frames/s, burst 10,000), while a client
// sending messages and pings just under the default rate is not.
func TestEveryFrameCharged(t *testing.T) {
	_, addr, _ := start(t, session.Config{})

	// The honest client runs through every attack, in its own room.
	honest := wstest.Dial(t, addr, "specialKey=honest&room=quiet")
	const honestRate = 8000 // frames per second: half messages, half pings
	var honestClosed atomic.Int32
	var echoes atomic.Int64
	go func() {
		for {
			f, err := honest.ReadFrame(time.Minute)
			if err != nil {
				return
			}
			switch f.Op {
			case ws.OpClose:
				honestClosed.Store(int32(f.CloseCode()))
				return
			case ws.OpText:
				echoes.Add(1)
			}
		}
	}()
	honestDone := make(chan error, 1)
	honestFor := 3 * time.Second
	go func() {
		msg := wstest.RawFrame(0x81, true, []byte("hi"))
		ping := wstest.RawFrame(0x89, true, nil)
		var batch []byte
		start, sent := time.Now(), 0
		for time.Since(start) < honestFor {
			due := int(time.Since(start).Seconds()*honestRate) - sent
			batch = batch[:0]
			for i := 0; i < due; i++ {
				if (sent+i)%2 == 0 {
					batch = append(batch, msg...)
				} else {
					batch = append(batch, ping...)
				}
			}
			sent += due
			if err := honest.WriteRaw(batch); err != nil {
				honestDone <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		honestDone <- nil
	}()

	for _, tc := range []struct {
		name   string
		prefix []byte // sent once
		frame  []byte // then repeated
	}{
		{"empty continuations", wstest.RawFrame(0x01, true, []byte("a")), wstest.RawFrame(0x00, true, nil)},
		{"unsolicited empty pongs", nil, wstest.RawFrame(0x8A, true, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := wstest.Dial(t, addr, "specialKey=attacker&room=loud")
			defer c.Conn.Close()
			batch := append(tc.prefix, bytes.Repeat(tc.frame, 1000)...)
			stop := make(chan struct{})
			var frames atomic.Int64
			go func() {
				b := batch
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := c.WriteRaw(b); err != nil {
						return
					}
					frames.Add(int64(bytes.Count(b, tc.frame)))
					b = batch[len(tc.prefix):]
				}
			}()
			began := time.Now()
			code, err := waitClose(c, 5*time.Second)
			took := time.Since(began)
			close(stop)
			if err != nil {
				t.Fatalf("not closed after %v and %d frames: %v", took, frames.Load(), err)
			}
			if code != 1008 {
				t.Fatalf("closed %d, want 1008", code)
			}
			t.Logf("closed 1008 after %v, about %d frames sent", took.Round(time.Millisecond), frames.Load())
		})
	}

	if err := <-honestDone; err != nil {
		t.Fatalf("honest client: %v", err)
	}
	if code := honestClosed.Load(); code != 0 {
		t.Fatalf("honest client at %d frames/s closed %d", honestRate, code)
	}
	wstest.Eventually(t, 5*time.Second, "honest echoes", func() bool {
		return echoes.Load() >= int64(honestFor.Seconds()*honestRate/2)-100
	})
	t.Logf("honest client: %d echoes at %d frames/s, not closed", echoes.Load(), honestRate)
}
