// Scenario connect: for -duration, -dialers concurrent dialers each open a
// connection, complete the handshake and drop it — with a TCP RST (-rst,
// the default: no TIME_WAIT piles up on the client's ports) or with a
// close frame and FIN — as fast as they can. Figures: handshakes/s, handshake latency,
// failures by kind and, with -server-pid, server CPU per 1,000 handshakes.

package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"
)

func runConnect(o *options) (*Result, error) {
	r := newResult("connect", o, map[string]any{"duration": o.duration, "dialers": o.dialers, "src": len(o.src), "rst": o.rst})

	l := &live{}
	var ok atomic.Int64
	stopProgress := startProgress(o.progress, "connect", func() string {
		return fmt.Sprintf("handshakes %d errors %d", ok.Load(), l.errs.total())
	})
	defer stopProgress()

	d := newDialer(o, fmt.Sprintf("c%08x", newRunID()))
	gz := gzipFor(o.gzipFrac)
	closeMsg := ws.NewCloseFrameBody(ws.StatusNormalClosure, "")
	hists := make([]*hdrhistogram.Histogram, o.dialers)
	var next atomic.Int64
	cpu := startCPU(o.serverPID)
	start := time.Now()
	deadline := start.Add(o.duration)
	var wg sync.WaitGroup
	for w := range o.dialers {
		h := hdrhistogram.New(1, histMaxUs, 3)
		hists[w] = h
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := int(next.Add(1) - 1)
				t0 := time.Now()
				c, err := d.dial(i, gz(i))
				if err != nil {
					l.errs.add(errKind(err))
					continue
				}
				h.RecordValue(min(max(time.Since(t0).Microseconds(), 1), histMaxUs))
				ok.Add(1)
				if o.rst {
					tcpConn(c.Conn).SetLinger(0)
				} else {
					c.SetDeadline(time.Now().Add(time.Second))
					c.writeFrame(ws.OpClose, closeMsg)
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	use := cpu.stop()
	all := hdrhistogram.New(1, histMaxUs, 3)
	for _, h := range hists {
		all.Merge(h)
	}
	n := float64(ok.Load())
	r.add("handshakes", "", "higher", n)
	r.add("handshakes/s", "/s", "higher", n/secs)
	r.add("failures", "", "lower", float64(l.errs.total()))
	r.addLatency("handshake", all)
	r.addCPU(use)
	if use.server >= 0 {
		r.add("server cpu per 1k handshakes", "ms", "lower", ratio(use.server*1000, n/1000))
	}
	r.finish(&l.errs)
	return r, nil
}
