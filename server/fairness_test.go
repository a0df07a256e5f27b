package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
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
	var honestMsgs atomic.Int64
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
					honestMsgs.Add(1)
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
		return echoes.Load() == honestMsgs.Load()
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

// idleSockets opens n TCP connections to addr from local that never send a
// byte, and closes them when the test ends.
func idleSockets(t *testing.T, addr string, local net.IP, n int) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}, Timeout: wstest.DefaultTimeout}
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle socket %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

// TestHandshakingSocketsGiveWay: sockets that connect and send nothing
// cannot keep newcomers out. One address holds at most
// MaxHandshakesPerIP (64 by default) of them, the rest get 429 at accept;
// and at the connection cap (MaxConns + 64 sockets) the oldest handshaking
// socket is dropped for each newcomer, so a client from another address
// (127.0.0.2) still upgrades.
func TestHandshakingSocketsGiveWay(t *testing.T) {
	const idle = 150
	for _, tc := range []struct {
		name          string
		perIP         int   // Config.MaxHandshakesPerIP
		handshaking   int64 // idle sockets wsd holds once they are all in
		wantEvictions bool
	}{
		{"per-address handshake cap (default)", 0, session.DefaultMaxHandshakesPerIP, false},
		{"oldest dropped at the cap", -1, 20 + 64, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr, stats := start(t, session.Config{MaxConns: 20, MaxHandshakesPerIP: tc.perIP, HandshakeTimeout: time.Minute})
			idleSockets(t, addr, net.IPv4(127, 0, 0, 1), idle)
			wstest.Eventually(t, 5*time.Second, "idle sockets accepted", func() bool {
				return stats.Accepted.Load() == idle && stats.Handshaking.Load() == tc.handshaking
			})
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: wstest.DefaultTimeout}
			c, status, err := wstest.TryDialWith(d, addr, "/?specialKey=newcomer", nil)
			if err != nil {
				t.Fatalf("newcomer from 127.0.0.2 beside %d idle sockets from 127.0.0.1: %d %v", idle, status, err)
			}
			defer c.Conn.Close()
			if err := c.WriteText("in"); err != nil {
				t.Fatal(err)
			}
			expectText(t, c, "newcomer", "in")
			evicted := stats.HandshakesEvicted.Load()
			if (evicted > 0) != tc.wantEvictions {
				t.Fatalf("%d handshaking sockets evicted", evicted)
			}
			t.Logf("%d idle sockets: %d held, %d evicted, newcomer upgraded", idle, tc.handshaking, evicted)
		})
	}
}

// TestInboundBudgetShared: connections from 127.0.0.1 each hold most of a
// 1 MiB message, enough to spend a 16 MiB inbound budget; an honest client
// from 127.0.0.2 sending a whole 1 MB message (in 64 KiB writes, so wsd
// buffers it) still gets it through. With the default share (25%) the
// attackers' address is refused 1013 past 4 MiB; with no share, the budget
// fills and the biggest holders are closed 1013 to make room.
func TestInboundBudgetShared(t *testing.T) {
	const budget = 16 << 20
	for _, tc := range []struct {
		name      string
		share     float64 // Config.InboundSharePerIP
		attackers int
	}{
		{"address share (default)", 0, 10},
		{"biggest holders first", -1, 24},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr, stats := start(t, session.Config{InboundBudget: budget, InboundSharePerIP: tc.share})
			partial := wstest.RawFrame(0x81, true, bytes.Repeat([]byte("a"), 1<<20))[:700<<10]
			refused := make(chan int, tc.attackers)
			for i := 0; i < tc.attackers; i++ {
				c := wstest.Dial(t, addr, fmt.Sprintf("specialKey=holder%d&room=holders", i))
				defer c.Conn.Close()
				if err := c.WriteRaw(partial); err != nil {
					t.Fatal(err)
				}
				go func() {
					code, _ := waitClose(c, time.Minute)
					refused <- code
				}()
				time.Sleep(5 * time.Millisecond) // one at a time: the budget fills in order
			}
			wstest.Eventually(t, 5*time.Second, "attackers' messages held", func() bool {
				return stats.InboundHeld.Load() > budget/5
			})
			held, evictedBefore := stats.InboundHeld.Load(), stats.BudgetEvictions.Load()

			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: wstest.DefaultTimeout}
			honest, status, err := wstest.TryDialWith(d, addr, "/?specialKey=honest", nil)
			if err != nil {
				t.Fatalf("honest dial: %d %v", status, err)
			}
			defer honest.Conn.Close()
			msg := strings.Repeat("b", 1_000_000)
			f := wstest.RawFrame(0x81, true, []byte(msg))
			for i := 0; i < len(f); i += 64 << 10 {
				if err := honest.WriteRaw(f[i:min(i+64<<10, len(f))]); err != nil {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Millisecond)
			}
			got, err := honest.ReadFrame(wstest.DefaultTimeout)
			if err != nil || got.Op != ws.OpText || len(got.Payload) != len(msg) {
				t.Fatalf("honest 1 MB message beside %d MiB held from one address: op %v, %d bytes (%.40q), %v",
					held>>20, got.Op, len(got.Payload), got.Payload, err)
			}
			codes := map[int]int{}
			for len(refused) > 0 {
				codes[<-refused]++
			}
			if codes[1013] == 0 {
				t.Fatalf("no attacker refused 1013: %v", codes)
			}
			t.Logf("%d attackers, %.1f MiB held before the honest message: %d closed 1013 (%d for the address share, %d to make room, %d of them for the honest message); honest 1 MB echoed",
				tc.attackers, float64(held)/(1<<20), codes[1013], stats.ShareRefusals.Load(), stats.BudgetEvictions.Load(),
				stats.BudgetEvictions.Load()-evictedBefore)
		})
	}
}

// readAllFor reads c until EOF, an error or d, and returns what came and
// how the read ended.
func readAllFor(c net.Conn, d time.Duration) ([]byte, time.Duration, error) {
	start := time.Now()
	c.SetReadDeadline(start.Add(d))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, time.Since(start), err
		}
	}
}

// TestWSSEarlyInput: what the wss port does with input that is no TLS
// handshake, before any handshake goroutine is spent on it. A first record
// announcing 64 KiB (more than a TLS record may hold) is refused at its 5-byte
// header with the record_overflow alert, not buffered up to
// -handshake-timeout; a plain ws:// upgrade
// request is closed at once with no answer, counted as a failed TLS
// handshake.
func TestWSSEarlyInput(t *testing.T) {
	w := startTLS(t, session.Config{HandshakeTimeout: 10 * time.Second})
	for i, tc := range []struct {
		name  string
		send  []byte
		reply []byte // what wsd writes before closing
	}{
		// The record_overflow alert crypto/tls itself would send.
		{"oversized first record", []byte{22, 3, 1, 0xff, 0xff}, []byte{21, 3, 1, 0, 2, 2, 22}},
		{"plain ws:// upgrade", []byte(wstest.UpgradeRequest(w.addr, "/?specialKey=plain")), nil},
	} {
		c, err := net.Dial("tcp", w.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(tc.send); err != nil {
			t.Fatal(err)
		}
		got, took, err := readAllFor(c, 5*time.Second)
		c.Close()
		closed := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
		if !closed || took > time.Second || !bytes.Equal(got, tc.reply) {
			t.Fatalf("%s: %d bytes %q, %v after %v; want the connection closed at once after %q", tc.name, len(got), got, err, took, tc.reply)
		}
		wstest.Eventually(t, time.Second, "TLS handshake failure counted", func() bool {
			return w.stats.TLSHandshakeFailures.Load() == uint64(i+1)
		})
		t.Logf("%s: closed (%v) after %v, %d bytes written", tc.name, err, took.Round(time.Millisecond), len(got))
	}
}
