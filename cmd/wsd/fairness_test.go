package main

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// A flood that obeys the message limits: ten senders at 9,000 empty
// messages a second each (under -max-msg-rate's 10,000) into a room of 20
// members that never read, at the default flags. Each message costs 21
// deliveries, so each sender asks for 189,000 a second, past
// -max-delivery-rate's 100,000: it is closed 1008 within a few seconds.
// Meanwhile an honest pair in another room keeps chatting, every message
// delivered, the echo p99 under honestP99.
func TestHostileFanoutFlood(t *testing.T) {
	const (
		sinks, senders = 20, 10
		perSecond      = 9000
		flood          = 4 * time.Second
	)
	// The server's fairness is what is measured: a wsd built without the
	// race detector, as the other hostile tests use.
	p := wstest.StartPlainBinary(t)
	ch := startChat(t, p.Addr, "calm", 2, 2)
	for i := range sinks {
		dialAttacker(t, p.Addr, fmt.Sprintf("specialKey=sink-%d&room=flood", i))
	}
	batch := bytes.Repeat(wstest.RawFrame(0x81, true, nil), perSecond/100)
	var limited, flooding atomic.Int32
	var wg sync.WaitGroup
	start := time.Now()
	for i := range senders {
		c := dialAttacker(t, p.Addr, fmt.Sprintf("specialKey=flooder-%d&room=flood", i))
		wg.Add(2)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			written, counted := 0, false
			for time.Since(start) < flood {
				<-tick.C
				if !counted && time.Since(start) >= time.Second {
					// A loaded client (the race detector's) may not
					// reach the rate: only a sender that did must be
					// closed.
					counted = true
					if written >= perSecond*8/10 {
						flooding.Add(1)
					}
				}
				c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Conn.Write(batch); err != nil {
					if !counted && written >= perSecond*8/10 {
						flooding.Add(1)
					}
					return
				}
				written += len(batch) / 6
			}
		}()
		go func() {
			defer wg.Done()
			code, reason, err := closeOf(c, flood+5*time.Second)
			if err == nil && code == 1008 && reason == "delivery rate limit" {
				limited.Add(1)
			}
		}()
	}
	wg.Wait()
	m := wstest.Scrape(t, p.AdminAddr)
	t.Logf("after %v: %d of %d flooders reached 80%% of the rate in their first second, %d closed 1008 delivery rate limit; %v messages in; %v slow consumers; %v fan-out holds",
		time.Since(start).Round(time.Millisecond), flooding.Load(), senders, limited.Load(), m.Get("wsd_received_messages_total"),
		m.Get("wsd_slow_consumer_closes_total"), m.Get("wsd_fanout_holds_total"))
	if limited.Load() < flooding.Load() {
		t.Errorf("%d flooders reached the rate, %d closed 1008 delivery rate limit", flooding.Load(), limited.Load())
	}
	ch.finish(t)
}
