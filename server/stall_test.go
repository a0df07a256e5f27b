package server_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

// isClosed reports whether err is how a closed or reset connection reads.
func isClosed(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}

// TestStallersDoNotDelayOthers: clients that sent half a frame and clients
// dribbling their handshake one byte at a time, more of each than wsd has
// workers, hold no worker: two other clients chat without delay
// meanwhile. The dribblers are cut at the handshake timeout, not before;
// the half frames complete later and are delivered.
func TestStallersDoNotDelayOthers(t *testing.T) {
	const hsTimeout = 1500 * time.Millisecond
	srv := testserver.Start(t, server.Config{Session: session.Config{
		HandshakeTimeout: hsTimeout,
		CloseTimeout:     time.Second,
	}})
	addr, stats := srv.Addr().String(), srv.Hub().Stats()
	k := srv.Workers() + 2
	alice := wstest.Dial(t, addr, "specialKey=alice")
	bob := wstest.Dial(t, addr, "specialKey=bob&support_gzip=1")

	// Half a frame: the header and 10 of 100 payload bytes. Each staller
	// is in a room of its own, to be checked alone at the end.
	payload := []byte(fmt.Sprintf("%-100s", "completed later"))
	full := wstest.RawFrame(0x81, true, payload)
	cut := len(full) - 90
	stallers := make([]*wstest.Client, k)
	for i := range stallers {
		stallers[i] = wstest.Dial(t, addr, fmt.Sprintf("specialKey=staller%d&room=stall%d", i, i))
		if err := stallers[i].WriteRaw(full[:cut]); err != nil {
			t.Fatal(err)
		}
	}

	// The dribblers: one byte every 10ms of a head that would take seconds.
	type ending struct {
		after time.Duration
		n     int64
		err   error
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	cutOff := make(chan ending, k)
	dialed := time.Now()
	for i := 0; i < k; i++ {
		d, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		req := wstest.UpgradeRequest(addr, fmt.Sprintf("/?specialKey=dribbler%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < len(req)-1; j++ { // never the last byte
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				if _, err := d.Write([]byte{req[j]}); err != nil {
					return
				}
			}
		}()
		go func() {
			d.SetReadDeadline(time.Now().Add(15 * time.Second))
			n, err := io.Copy(io.Discard, d)
			cutOff <- ending{time.Since(dialed), n, err}
		}()
	}
	wstest.Eventually(t, 5*time.Second, "the dribblers accepted", func() bool { return stats.Handshaking.Load() == int64(k) })

	// Meanwhile: 40 round trips each way. Were stallers or dribblers
	// holding workers, nothing would move until the dribblers are cut
	// (or, for the half frames, ever).
	var rtts []time.Duration
	var early bool
	for i := 0; i < 40; i++ {
		for j, from := range []*wstest.Client{alice, bob} {
			msg := fmt.Sprintf("%s %d", []string{"alice", "bob"}[j], i)
			t0 := time.Now()
			if err := from.WriteText(msg); err != nil {
				t.Fatal(err)
			}
			expectText(t, alice, "alice", msg)
			expectGzip(t, bob, "bob", msg)
			rtts = append(rtts, time.Since(t0))
		}
		if i == 4 {
			early = stats.HandshakeTimeouts.Load() == 0 && stats.Handshaking.Load() == int64(k)
		}
	}
	chatted := time.Since(dialed)
	if !early {
		t.Errorf("the first round trips only completed once the dribblers were cut (%v after they connected)", chatted)
	}
	slices.Sort(rtts)
	p50, p90, slowest := rtts[len(rtts)/2], rtts[len(rtts)*9/10], rtts[len(rtts)-1]
	if p90 > 500*time.Millisecond {
		t.Errorf("round trips while stallers held on: p50 %v, p90 %v, slowest %v", p50, p90, slowest)
	}
	if got := stats.HandshakeTimeouts.Load(); got != 0 && chatted < hsTimeout {
		t.Errorf("%d handshakes timed out %v after dial, before the %v timeout", got, chatted, hsTimeout)
	}

	// The dribblers are cut at the handshake timeout: not before, and not
	// long after (the sweep runs every HandshakeTimeout/4; the bound leaves
	// room for a loaded machine).
	for i := 0; i < k; i++ {
		select {
		case e := <-cutOff:
			// A reset is as good as EOF: a byte dribbled in after the
			// server's close is answered with RST.
			if e.n > 0 || (e.err != nil && !isClosed(e.err)) {
				t.Errorf("dribbler: %d bytes, %v instead of EOF", e.n, e.err)
			}
			if e.after < hsTimeout-50*time.Millisecond || e.after > hsTimeout+3*time.Second {
				t.Errorf("dribbler cut off %v after its dial; handshake timeout %v", e.after, hsTimeout)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("dribbler never cut off")
		}
	}
	wstest.Eventually(t, 5*time.Second, "handshake timeouts counted", func() bool {
		return stats.HandshakeTimeouts.Load() == uint64(k) && stats.Handshaking.Load() == 0
	})
	if got := stats.HandshakesFailed.Load(); got != 0 {
		t.Errorf("HandshakesFailed = %d; a timeout is not a refusal", got)
	}

	// The stallers finish their frames: each is delivered, in its room.
	for i, s := range stallers {
		if err := s.WriteRaw(full[cut:]); err != nil {
			t.Fatal(err)
		}
		expectText(t, s, fmt.Sprintf("staller%d", i), string(payload))
	}
	if got := stats.Open.Load(); got != int64(2+k) {
		t.Errorf("Open = %d, want %d", got, 2+k)
	}
	t.Logf("%d stallers, %d dribblers; round trips p50 %v, p90 %v, slowest %v; chat took %v",
		k, k, p50, p90, slowest, chatted)
}
