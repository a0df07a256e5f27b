package server_test

import (
	"bytes"
	"math/rand/v2"
	"strings"
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

// TestInflateRatioBothCodings: -inflate-ratio (InflateRatio, 100 by
// default, past a 64 KiB floor) bounds a permessage-deflate message as it
// bounds a gzip'd one: 1 MiB of one letter, about 1 KB either way, is
// refused 1009 and reaches nobody; honest compressed messages pass.
func TestInflateRatioBothCodings(t *testing.T) {
	_, addr, _ := start(t, deflateConfig(0))
	watcher := dialDeflate(t, addr, "specialKey=watcher", browser)
	bombText := strings.Repeat("a", 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	noisy := make([]byte, 200<<10) // compresses about 1.3 times
	for i := range noisy {
		noisy[i] = byte('a' + rng.IntN(26))
	}
	for _, tc := range []struct {
		name string
		gzip bool
		text string
		code int // 0: delivered
	}{
		{"deflate, 1 MiB from 1 KB", false, bombText, 1009},
		{"gzip, 1 MiB from 1 KB", true, bombText, 1009},
		{"deflate under the floor", false, bombText[:60<<10], 0},
		{"deflate within the ratio", false, string(noisy), 0},
		{"gzip within the ratio", true, string(noisy), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *wstest.Client
			var send []byte
			if tc.gzip {
				c = dialDeflate(t, addr, "specialKey=sender&support_gzip=1")
				send = wstest.RawFrame(0x82, true, wstest.Gzip(tc.text))
			} else {
				c = dialDeflate(t, addr, "specialKey=sender", browser)
				send = wstest.RawFrame(0xC1, true, zDeflate(tc.text))
			}
			t.Logf("%d bytes on the wire for %d", len(send), len(tc.text))
			if err := c.WriteRaw(send); err != nil {
				t.Fatal(err)
			}
			if tc.code != 0 {
				expectCloseFrame(t, c, tc.name, tc.code, "compressed message inflates past the allowed ratio")
			} else if got, _ := readDeflated(t, watcher, "watcher"); got != tc.text {
				t.Fatalf("watcher got %d bytes, want the %d sent", len(got), len(tc.text))
			}
			c.Conn.Close()
			watcher.WriteText("still here")
			if got, _ := readDeflated(t, watcher, "watcher"); got != "still here" {
				t.Fatalf("watcher got %.40q, want only what passed", got)
			}
		})
	}
}
