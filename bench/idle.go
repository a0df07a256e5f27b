// Scenario idle: open N connections with a bounded number of concurrent
// dialers from several loopback source addresses, hold them -hold, then
// check every one is still open with a ping/pong round trip. With
// -server-pid it reports the server's RSS before and after, and so its
// memory per idle connection. The client keeps no goroutine and no read
// buffer per idle connection while holding.

package main

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsd-chat/wsd/internal/rsswatch"
)

// keepalive is how often a long hold pings every connection, well inside
// wsd's default 30 s ping interval and 90 s idle timeout.
const keepalive = 20 * time.Second

func runIdle(o *options) (*Result, error) {
	r := newResult("idle", o, map[string]any{"n": o.n, "hold": o.hold, "src": len(o.src), "dialers": o.dialers})

	l := &live{}
	var checked atomic.Int64
	stopProgress := startProgress(o.progress, "idle", func() string {
		return fmt.Sprintf("conns %d/%d checked %d errors %d", l.conns.Load(), o.n, checked.Load(), l.errs.total())
	})
	defer stopProgress()

	var rssBefore, rssAfter int64
	var rssErr error
	if o.serverPID > 0 {
		rssBefore, rssErr = rsswatch.Read(o.serverPID)
	}
	cliBefore := liveBytes()

	d := newDialer(o, fmt.Sprintf("i%08x", newRunID()))
	d.readBuf = 256 // pings and pongs only
	conns, dialTime := dialAll(o, d, o.n, gzipFor(o.gzipFrac), l)
	defer closeAll(conns)
	open := l.conns.Load()
	if open == 0 {
		return nil, fmt.Errorf("no connection opened:%s", l.errs.String())
	}

	for held := time.Duration(0); held < o.hold; {
		step := min(o.hold-held, keepalive)
		time.Sleep(step)
		held += step
		if held < o.hold {
			sweep(o, conns, l, &checked)
			checked.Store(0)
		}
	}
	if o.serverPID > 0 && rssErr == nil {
		rssAfter, rssErr = rsswatch.Read(o.serverPID)
	}
	cliAfter := liveBytes()
	alive := sweep(o, conns, l, &checked)

	r.add("connections", "", "higher", float64(open))
	r.add("connect rate", "conn/s", "higher", float64(open)/dialTime.Seconds())
	r.add("open after hold", "", "higher", float64(alive))
	r.add("lost during hold", "", "lower", float64(open-alive))
	if o.serverPID > 0 && rssErr == nil {
		r.add("server rss before", "MiB", "", float64(rssBefore)/(1<<20))
		r.add("server rss after", "MiB", "lower", float64(rssAfter)/(1<<20))
		r.add("server bytes per conn", "B", "lower", ratio(float64(rssAfter-rssBefore), float64(open)))
	}
	r.add("client bytes per conn", "B", "", ratio(float64(cliAfter-cliBefore), float64(open)))
	r.finish(&l.errs)
	return r, nil
}

// liveBytes is the client's live heap and goroutine stacks after a GC: what
// its connections cost it, whatever ran in this process before.
func liveBytes() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse)
}

// sweep pings every open connection and waits for the matching pong
// (answering the server's pings meanwhile), with o.dialers workers, all
// within o.timeout. A connection that fails is closed and dropped from
// conns. It returns how many answered.
func sweep(o *options, conns []*wsConn, l *live, checked *atomic.Int64) int64 {
	deadline := time.Now().Add(o.timeout)
	var next, alive atomic.Int64
	var wg sync.WaitGroup
	for range min(o.dialers, len(conns)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				c := conns[i]
				if c == nil {
					continue
				}
				if err := pingPong(c, uint64(i), deadline); err != nil {
					l.errs.add("check-" + errKind(err))
					c.Close()
					conns[i] = nil
					continue
				}
				alive.Add(1)
				checked.Add(1)
			}
		}()
	}
	wg.Wait()
	return alive.Load()
}

// pingPong sends a ping carrying tag and reads until its pong, by
// deadline. Data frames are not expected on an idle connection and are an
// error.
func pingPong(c *wsConn, tag uint64, deadline time.Time) error {
	c.SetDeadline(deadline)
	defer c.SetDeadline(time.Time{})
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], tag)
	if err := c.writeFrame(ws.OpPing, p[:]); err != nil {
		return err
	}
	for {
		op, _, _, b, err := c.readFrame()
		if err != nil {
			return err
		}
		switch op {
		case ws.OpPong:
			if len(b) == 8 && binary.BigEndian.Uint64(b) == tag {
				return nil
			}
		case ws.OpPing:
			if err := c.writeFrame(ws.OpPong, b); err != nil {
				return err
			}
		case ws.OpClose:
			code := 1005
			if len(b) >= 2 {
				code = int(binary.BigEndian.Uint16(b))
			}
			return &closeError{code}
		default:
			return errProtocol
		}
	}
}
