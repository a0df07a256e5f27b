package server_test

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/session"
)

// TestIdleConnectionsCostNoGoroutines: 2,000 upgraded, idle connections
// and the goroutine count does not move. The client side uses plain
// net.Conns and no reader goroutines, so every goroutine counted is wsd's.
func TestIdleConnectionsCostNoGoroutines(t *testing.T) {
	const n = 2000
	srv, addr, stats := start(t, session.Config{})
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	// Let the server's own goroutines (pollers, workers, sweeper) settle.
	first := wstest.Dial(t, addr, "specialKey=first")
	conns = append(conns, first.Conn)
	runtime.GC()
	before := runtime.NumGoroutine()
	peak := before
	for i := 1; i < n; i++ {
		c, _, err := wstest.TryDial(addr, fmt.Sprintf("specialKey=idle%d", i))
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c.Conn)
		if i%250 == 0 {
			peak = max(peak, runtime.NumGoroutine())
		}
	}
	wstest.Eventually(t, 10*time.Second, "all open", func() bool { return stats.Open.Load() == n })
	after := runtime.NumGoroutine()
	peak = max(peak, after)
	if srv.Hub().Live() != n {
		t.Errorf("Live = %d, want %d", srv.Hub().Live(), n)
	}
	// A few goroutines may come and go (timers, GC workers); one per
	// connection, or per hundred, would show.
	const slack = 8
	if peak > before+slack {
		t.Errorf("goroutines grew from %d to %d (peak %d) with %d connections", before, after, peak, n)
	}
	// They are all live: a broadcast reaches the last one.
	if err := first.WriteText("to all 2000"); err != nil {
		t.Fatal(err)
	}
	last := conns[n-1]
	last.SetReadDeadline(time.Now().Add(wstest.DefaultTimeout))
	h, err := ws.ReadHeader(last)
	if err != nil || h.OpCode != ws.OpText || h.Length != int64(len("to all 2000")) {
		t.Fatalf("last connection: header %+v, %v", h, err)
	}
	t.Logf("goroutines: %d before, %d after %d connections (peak %d)", before, after, n, peak)
}

// TestIdlePingsAndTimeout: quiet connections are pinged every
// PingInterval; one that never answers is closed with 1001 after
// IdleTimeout; one that answers pongs stays open however long it is quiet
// otherwise.
func TestIdlePingsAndTimeout(t *testing.T) {
	const (
		pingInterval = 100 * time.Millisecond
		idleTimeout  = 400 * time.Millisecond
	)
	srv, addr, stats := start(t, session.Config{
		PingInterval: pingInterval,
		IdleTimeout:  idleTimeout,
		CloseTimeout: 300 * time.Millisecond,
	})

	type outcome struct {
		name string
		err  error
	}
	done := make(chan outcome, 2)

	// The silent one: reads pings, never answers; gets 1001 at ~IdleTimeout.
	silent := wstest.Dial(t, addr, "specialKey=silent")
	silentStart := time.Now()
	go func() {
		pings := 0
		for {
			f, err := silent.ReadFrame(5 * time.Second)
			if err != nil {
				done <- outcome{"silent", fmt.Errorf("after %d pings: %v", pings, err)}
				return
			}
			switch f.Op {
			case ws.OpPing:
				pings++
				continue
			case ws.OpClose:
			default:
				done <- outcome{"silent", fmt.Errorf("unexpected %s", event(f))}
				return
			}
			d := time.Since(silentStart)
			switch {
			case f.CloseCode() != 1001:
				err = fmt.Errorf("closed with %d, want 1001", f.CloseCode())
			case pings == 0:
				err = fmt.Errorf("closed without a ping first")
			case d < idleTimeout-20*time.Millisecond || d > idleTimeout+time.Second:
				err = fmt.Errorf("closed after %v; IdleTimeout %v", d, idleTimeout)
			default:
				err = silent.WaitEOF(2 * time.Second)
			}
			done <- outcome{"silent", err}
			return
		}
	}()

	// The responsive one: answers every ping, sends nothing else, for
	// three idle timeouts.
	alive := wstest.Dial(t, addr, "specialKey=alive")
	go func() {
		pings := 0
		end := time.Now().Add(3 * idleTimeout)
		for time.Now().Before(end) {
			f, err := alive.ReadFrame(time.Until(end) + 500*time.Millisecond)
			if err != nil {
				done <- outcome{"alive", fmt.Errorf("after %d pings: %v", pings, err)}
				return
			}
			if f.Op != ws.OpPing {
				done <- outcome{"alive", fmt.Errorf("after %d pings: %s", pings, event(f))}
				return
			}
			pings++
			if err := alive.WriteFrame(true, ws.OpPong, f.Payload); err != nil {
				done <- outcome{"alive", err}
				return
			}
		}
		if pings < 3 {
			done <- outcome{"alive", fmt.Errorf("only %d pings in %v", pings, 3*idleTimeout)}
			return
		}
		done <- outcome{"alive", nil}
	}()

	for range 2 {
		select {
		case o := <-done:
			if o.err != nil {
				t.Errorf("%s: %v", o.name, o.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("idle clients did not finish")
		}
	}
	if t.Failed() {
		return
	}
	if got := stats.IdleTimeouts.Load(); got != 1 {
		t.Errorf("IdleTimeouts = %d, want 1", got)
	}
	if got := stats.PingsSent.Load(); got < 4 {
		t.Errorf("PingsSent = %d, want at least 4", got)
	}
	// The responsive one is still a member.
	if err := alive.WriteText("still here"); err != nil {
		t.Fatal(err)
	}
	if text, _, err := alive.ReadMessage(wstest.DefaultTimeout); err != nil || text != "still here" {
		t.Fatalf("alive: %q, %v", text, err)
	}
	wstest.Eventually(t, 5*time.Second, "only the responsive one left", func() bool {
		return srv.Hub().Live() == 1 && stats.Open.Load() == 1
	})
}
