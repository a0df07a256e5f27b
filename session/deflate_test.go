package session

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/internal/wstest"
)

// TestDeflateVariant: a broadcast to text, gzip, deflate and small-window
// deflate members builds each variant at most once (and the deflate one
// only when compression pays), every queued variant is charged to the
// outbound budget, and everything is given back once the members go.
func TestDeflateVariant(t *testing.T) {
	h, r := testHub(t, Config{MaxQueue: 64 << 20, Deflate: codec.DeflateConfig{Enabled: true}})
	base := h.stats.OutboundHeld.Load() - h.historyHeld()
	plain, _ := stalledMember(t, h, r, "plain", false)
	gz, _ := stalledMember(t, h, r, "gz", true)
	z, _ := stalledMember(t, h, r, "z", false)
	z.deflate, _ = codec.NegotiateDeflate([]byte("permessage-deflate"), codec.DeflateConfig{Enabled: true})
	small, _ := stalledMember(t, h, r, "small", false)
	small.deflate, _ = codec.NegotiateDeflate([]byte("permessage-deflate; server_max_window_bits=9"), codec.DeflateConfig{Enabled: true})
	// Both deflate members take a gzip client's side too: gzip wins.
	gzz, _ := stalledMember(t, h, r, "gzz", true)
	gzz.deflate = z.deflate

	sizes := []int{10, codec.DeflateMinSize - 1, 200, 512, 4000, 256 << 10}
	rnd := rand.New(rand.NewPCG(3, 4))
	words := strings.Fields("hello there how is everyone today lunch meeting later deploy server fixed thanks sure ok")
	for _, n := range sizes {
		// Random words: they compress to about 40%, so big ones still queue.
		var p []byte
		for len(p) < n {
			p = append(p, words[rnd.IntN(len(words))]...)
			p = append(p, ' ')
		}
		h.Publish("", p[:n])
	}
	waitIdle(t, h)
	if enc, want := h.stats.DeflateEncodings.Load(), uint64(4); enc != want {
		t.Fatalf("%d compressions for %d broadcasts, %d of them long enough", enc, len(sizes), want)
	}
	if enc := h.stats.GzipEncodings.Load(); enc != uint64(len(sizes)) {
		t.Fatalf("%d gzip encodings for %d broadcasts", enc, len(sizes))
	}
	kinds := func(c *Conn) string {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		var s []byte
		for _, it := range c.outq {
			s = append(s, "tgd"[it.v])
		}
		return string(s)
	}
	// A stalled member queues what did not fit its socket; the queue's
	// tail shows the variants: the last broadcasts are long.
	for _, tc := range []struct {
		c    *Conn
		want byte
	}{{plain, 't'}, {gz, 'g'}, {gzz, 'g'}, {z, 'd'}, {small, 't'}} {
		k := kinds(tc.c)
		if k == "" || k[len(k)-1] != tc.want {
			t.Fatalf("%s queued variants %q, want the last one %c", tc.c.key, k, tc.want)
		}
		for _, v := range k {
			if tc.c == plain && v != 't' || tc.c == gz && v != 'g' || tc.c == small && v == 'g' {
				t.Fatalf("%s queued %q", tc.c.key, k)
			}
		}
	}
	if h.stats.DeflateBytesSaved.Load() == 0 {
		t.Fatal("no bytes saved")
	}
	h.killAll()
	wstest.Eventually(t, 5*time.Second, fmt.Sprintf("the outbound budget back to its %d bytes after the members left", base),
		func() bool { return h.stats.OutboundHeld.Load()-h.historyHeld() == base })
}

// BenchmarkBroadcastDeflate is BenchmarkBroadcast with a third of the
// members on permessage-deflate: still one compression per variant.
func BenchmarkBroadcastDeflate(b *testing.B) {
	for _, size := range []int{128, 1024} {
		b.Run(fmt.Sprintf("peers=10000/size=%d", size), func(b *testing.B) {
			h := benchHub(b, 10000)
			p, _ := codec.NegotiateDeflate([]byte("permessage-deflate"), codec.DeflateConfig{Enabled: true})
			i := 0
			for _, s := range h.table.shards {
				for c := range s.byKey.all() {
					if i%3 == 0 {
						c.gzip, c.deflate = false, p
					}
					i++
				}
			}
			runBroadcasts(b, h, 10000, size)
			if enc, bc := h.stats.DeflateEncodings.Load(), h.stats.Broadcasts.Load(); enc != bc {
				b.Fatalf("%d compressions for %d broadcasts", enc, bc)
			}
		})
	}
}
