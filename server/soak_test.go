package server_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/testserver"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

func selfRSS() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(rest)
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestSoak is opt-in: WSD_SOAK=10m go test ./server -run TestSoak -v.
// 1,000 resident clients chat while 32 workers churn connections through
// every ending in churnKinds; every 10 s it logs process RSS, heap in use,
// goroutines and the session counters, and at the end it checks that
// nothing grew without bound.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("WSD_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set WSD_SOAK to a duration to run the soak")
	}
	srv := testserver.Start(t, server.Config{Session: session.Config{
		HandshakeTimeout: time.Second,
		CloseTimeout:     time.Second,
		// The residents only read; their test client does not answer pings.
		IdleTimeout: time.Hour,
	}})
	addr := srv.Addr().String()
	hub := srv.Hub()

	const resident = 1000
	var residents []*wstest.Client
	for i := 0; i < resident; i++ {
		residents = append(residents, wstest.Dial(t, addr, fmt.Sprintf("specialKey=resident-%d", i)))
	}
	var delivered atomic.Int64
	for _, c := range residents {
		go func(c *wstest.Client) {
			for {
				if _, _, err := c.ReadMessage(time.Minute); err != nil {
					return
				}
				delivered.Add(1)
			}
		}(c)
	}

	stop := time.Now().Add(d)
	var churned atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; time.Now().Before(stop); i += 32 {
				churnKinds[i%len(churnKinds)].run(addr, i)
				churned.Add(1)
			}
		}(w)
	}
	go func() { // a resident talks once a second
		for i := 0; time.Now().Before(stop); i++ {
			residents[i%resident].WriteText(fmt.Sprintf("tick %d", i))
			time.Sleep(time.Second)
		}
	}()

	var ms runtime.MemStats
	var first, peak int64
	t.Logf("%8s %10s %10s %8s %10s %8s %12s", "t", "rss_MiB", "heap_MiB", "gorout", "churned", "open", "delivered")
	for start := time.Now(); time.Now().Before(stop); {
		time.Sleep(10 * time.Second)
		runtime.ReadMemStats(&ms)
		rss := selfRSS()
		if first == 0 {
			first = rss
		}
		peak = max(peak, rss)
		t.Logf("%8s %10.1f %10.1f %8d %10d %8d %12d", time.Since(start).Round(time.Second),
			float64(rss)/(1<<20), float64(ms.HeapInuse)/(1<<20), runtime.NumGoroutine(),
			churned.Load(), hub.Stats().Open.Load(), delivered.Load())
	}
	wg.Wait()
	wstest.Eventually(t, 10*time.Second, "churned sockets gone", func() bool { return hub.Live() == resident })
	if peak > 2*first+64<<20 {
		t.Errorf("RSS grew from %d to %d MiB", first>>20, peak>>20)
	}
}
