package server_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

// bomb returns gzip'd zeros: n bytes inflated, a few KiB on the wire.
func bomb(n int) []byte {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	w.Write(make([]byte, n))
	w.Close()
	return b.Bytes()
}

// TestHostileClientsDoNotHurtOthers attacks wsd in every way issue-style
// hostile clients do while two well-behaved clients chat; the chatters must
// see every message, in order, and each attacker gets the right ending.
func TestHostileClientsDoNotHurtOthers(t *testing.T) {
	srv := testserver.Start(t, server.Config{Session: session.Config{
		HandshakeTimeout: time.Second,
		MaxMessage:       64 << 10,
		CloseTimeout:     time.Second,
		// Every attacker dials from 127.0.0.1, more than 64 of them at
		// once in their handshake.
		MaxHandshakesPerIP: -1,
	}})
	addr := srv.Addr().String()
	stats := srv.Hub().Stats()

	alice := wstest.Dial(t, addr, "specialKey=alice")
	bob := wstest.Dial(t, addr, "specialKey=bob&support_gzip=1")

	var wg sync.WaitGroup
	attack := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	expectCode := func(c *wstest.Client, want int) error {
		for {
			f, err := c.ReadFrame(5 * time.Second)
			if err != nil {
				return fmt.Errorf("want close %d: %v", want, err)
			}
			if f.Op == 0x8 {
				if got := f.CloseCode(); got != want {
					return fmt.Errorf("close %d, want %d", got, want)
				}
				return nil
			}
		}
	}

	// Slowloris: a handshake dribbled one byte every 200ms never completes
	// within the handshake timeout.
	for i := 0; i < 5; i++ {
		attack("slowloris", func() error {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			req := "GET /?specialKey=loris HTTP/1.1\r\nHost: x\r\n"
			for j := 0; j < len(req); j++ {
				if _, err := c.Write([]byte{req[j]}); err != nil {
					return nil // closed by the server: what we want
				}
				time.Sleep(200 * time.Millisecond)
			}
			return fmt.Errorf("dribbled the whole head without being cut off")
		})
	}
	// Half-open sockets: connect and send nothing.
	var idle []net.Conn
	for i := 0; i < 200; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// A frame header then silence: the worker moves on.
	for i := 0; i < 20; i++ {
		attack("header and stall", func() error {
			c, _, err := wstest.TryDial(addr, fmt.Sprintf("specialKey=stall%d", i))
			if err != nil {
				return err
			}
			defer c.Conn.Close()
			frame := wstest.RawFrame(0x81, true, make([]byte, 1000))
			return c.WriteRaw(frame[:30])
		})
	}
	// Giant declared length: 1009 at once, nothing allocated for it.
	attack("giant length", func() error {
		c, _, err := wstest.TryDial(addr, "specialKey=giant")
		if err != nil {
			return err
		}
		defer c.Conn.Close()
		hdr := []byte{0x81, 0x80 | 127, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 1, 2, 3, 4} // 16 TiB
		if err := c.WriteRaw(hdr); err != nil {
			return err
		}
		return expectCode(c, 1009)
	})
	// Zip bomb in a gzip'd binary message: 50 MiB inflated → 1009.
	attack("zip bomb", func() error {
		c, _, err := wstest.TryDial(addr, "specialKey=bomber&support_gzip=1")
		if err != nil {
			return err
		}
		defer c.Conn.Close()
		b := bomb(50 << 20)
		if len(b) > 64<<10 {
			return fmt.Errorf("bomb of %d bytes is over the wire cap", len(b))
		}
		if err := c.WriteRaw(wstest.RawFrame(0x82, true, b)); err != nil {
			return err
		}
		return expectCode(c, 1009)
	})
	// permessage-deflate frame without the extension (RSV1): 1002.
	attack("deflate frame", func() error {
		c, _, err := wstest.TryDial(addr, "specialKey=deflater")
		if err != nil {
			return err
		}
		defer c.Conn.Close()
		if err := c.WriteRaw(wstest.RawFrame(0xC1, true, []byte{0xf2, 0x48, 0x05, 0x00})); err != nil {
			return err
		}
		return expectCode(c, 1002)
	})

	// Meanwhile the chatters chat, and see everything in order.
	const n = 300
	recv := func(c *wstest.Client, name string) {
		defer wg.Done()
		for i := 0; i < 2*n; i++ {
			got, _, err := c.ReadMessage(10 * time.Second)
			if err != nil {
				t.Errorf("%s message %d: %v", name, i, err)
				return
			}
			sender, seq := "alice", i/2
			if i%2 == 1 {
				sender = "bob"
			}
			if want := fmt.Sprintf("%s %d", sender, seq); got != want {
				t.Errorf("%s message %d: %q, want %q", name, i, got, want)
				return
			}
		}
	}
	wg.Add(2)
	go recv(alice, "alice")
	go recv(bob, "bob")
	for i := 0; i < n; i++ {
		// Alternate strictly: each waits for the previous to be echoed back
		// to the same client before sending, so the global order is fixed.
		alice.WriteText(fmt.Sprintf("alice %d", i))
		wstest.Eventually(t, 5*time.Second, "alice's message fanned out", func() bool {
			return stats.Broadcasts.Load() >= uint64(2*i+1)
		})
		bob.WriteText(fmt.Sprintf("bob %d", i))
		wstest.Eventually(t, 5*time.Second, "bob's message fanned out", func() bool {
			return stats.Broadcasts.Load() >= uint64(2*i+2)
		})
	}
	wg.Wait()

	// The half-open sockets and slowloris handshakes are cut at the deadline.
	wstest.Eventually(t, 5*time.Second, "handshake timeouts", func() bool {
		return stats.HandshakeTimeouts.Load() >= 205
	})
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("half-open socket got data instead of EOF")
		}
		c.Close()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > 256<<20 {
		t.Errorf("heap in use %d MiB after hostile clients", ms.HeapInuse>>20)
	}
}
