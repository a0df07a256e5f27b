package server_test

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

func openFDs(t testing.TB) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// churnKinds are the ways a connection ends in TestChurn.
var churnKinds = []struct {
	name string
	run  func(addr string, i int) error
}{
	{"clean close", func(addr string, i int) error {
		c, _, err := wstest.TryDial(addr, fmt.Sprintf("specialKey=clean-%d", i))
		if err != nil {
			return err
		}
		defer c.Conn.Close()
		c.Close(1000)
		return nil
	}},
	{"close handshake answered", func(addr string, i int) error {
		c, _, err := wstest.TryDial(addr, fmt.Sprintf("specialKey=answer-%d&support_gzip=1", i))
		if err != nil {
			return err
		}
		defer c.Conn.Close()
		if err := c.WriteRaw(wstest.RawFrame(0x88, true, []byte{0x03, 0xE8})); err != nil {
			return err
		}
		for {
			f, err := c.ReadFrame(5 * time.Second)
			if err != nil {
				return fmt.Errorf("no close reply: %w", err)
			}
			if f.Op == 0x8 {
				return nil
			}
		}
	}},
	{"abrupt RST", func(addr string, i int) error {
		c, _, err := wstest.TryDial(addr, fmt.Sprintf("specialKey=rst-%d", i))
		if err != nil {
			return err
		}
		c.Conn.(*net.TCPConn).SetLinger(0)
		return c.Conn.Close()
	}},
	{"close mid-handshake", func(addr string, i int) error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		fmt.Fprintf(c, "GET /?specialKey=half-%d HTTP/1.1\r\nHost: x\r\nUpgr", i)
		return c.Close()
	}},
	{"close mid-frame", func(addr string, i int) error {
		c, _, err := wstest.TryDial(addr, fmt.Sprintf("specialKey=midframe-%d", i))
		if err != nil {
			return err
		}
		frame := wstest.RawFrame(0x81, true, make([]byte, 100))
		c.WriteRaw(frame[:20])
		return c.Conn.Close()
	}},
	{"vanish after message", func(addr string, i int) error {
		c, _, err := wstest.TryDial(addr, fmt.Sprintf("specialKey=vanish-%d", i))
		if err != nil {
			return err
		}
		c.WriteText("bye")
		return c.Conn.Close()
	}},
}

// TestChurn opens and ends connections in every way a network or a client
// can end them, then checks that wsd is back where it started: no
// goroutine, descriptor, table entry or queued byte left behind.
func TestChurn(t *testing.T) {
	total := 12000
	if raceEnabled || testing.Short() {
		total = 6000
	}
	srv := testserver.Start(t, server.Config{Session: session.Config{
		HandshakeTimeout: 500 * time.Millisecond,
		CloseTimeout:     500 * time.Millisecond,
	}})
	addr := srv.Addr().String()
	hub := srv.Hub()

	// A watcher stays connected throughout and must see every broadcast
	// that the churning clients' "bye" messages cause, in order per sender
	// (they are distinct senders, so only the count is checked).
	watcher := wstest.Dial(t, addr, "specialKey=watcher")
	var received atomic.Int64
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			if _, _, err := watcher.ReadMessage(10 * time.Second); err != nil {
				return
			}
			received.Add(1)
		}
	}()

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	fdsBefore := openFDs(t)
	ignore := goleak.IgnoreCurrent()

	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				k := churnKinds[i%len(churnKinds)]
				if err := k.run(addr, i); err != nil {
					if failed.Add(1) <= 5 {
						t.Errorf("%s #%d: %v", k.name, i, err)
					}
				}
			}
		}()
	}
	wg.Wait()

	stats := hub.Stats()
	wstest.Eventually(t, 10*time.Second, "all churned sockets closed", func() bool {
		return hub.Live() == 1 && stats.Open.Load() == 1 && stats.Handshaking.Load() == 0 &&
			stats.Closing.Load() == 0
	})
	if q := stats.QueuedBytes.Load(); q != 0 {
		t.Errorf("queued bytes %d after churn, want 0", q)
	}
	sends := int64(total / len(churnKinds))
	wstest.Eventually(t, 10*time.Second, "watcher to receive every bye", func() bool {
		return received.Load() >= sends
	})
	wstest.Eventually(t, 5*time.Second, "descriptors back to the start", func() bool {
		return openFDs(t) <= fdsBefore
	})
	if err := goleak.Find(ignore); err != nil {
		t.Errorf("goroutines left after churn: %v", err)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	const margin = 4 << 20
	if after.HeapInuse > before.HeapInuse+margin {
		t.Errorf("heap in use grew from %d to %d bytes over %d connections", before.HeapInuse, after.HeapInuse, total)
	}
	t.Logf("%d connections churned; heap in use %d → %d bytes; fds %d → %d; watcher got %d",
		total, before.HeapInuse, after.HeapInuse, fdsBefore, openFDs(t), received.Load())
	watcher.Conn.Close()
	<-watchDone
}
