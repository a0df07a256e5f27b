// Scenario idle: open N connections with a bounded number of concurrent
// dialers from several loopback source addresses, hold them -hold, then
// check every one is still open with a ping/pong round trip. With
// -server-pid it reports the server's RSS before and after, and so its
// memory per idle connection. The client keeps no goroutine and no read
// buffer per idle connection while holding.
//
// With -proto v1 every connection speaks chat protocol v1 and is in the
// same -rooms rooms: its first by its query, the others by join commands,
// each answered joined before the hold begins; so the figure at -rooms K
// against the one at -rooms 1 is the cost of K-1 more subscriptions. The
// presence frames those joins cause are read and dropped by the final
// check.
//
// Before the first RSS reading -warmup connections of the same kind are
// opened, joined, checked and closed: the server's code for them is paged
// in and its pools primed then, so that a one-off cost is not divided
// among the N connections as if each paid it.

package main

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
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
	r := newResult("idle", o, map[string]any{"n": o.n, "hold": o.hold, "src": len(o.src), "dialers": o.dialers,
		"proto": o.proto, "rooms": o.idleRooms, "warmup": o.warmup})
	vo := *o
	vo.v1 = o.proto == "v1"
	run := newRunID()
	roomName := func(tag string, k int) string { return fmt.Sprintf("idle-%08x-%s%d", run, tag, k) }

	l := &live{}
	var checked, joined atomic.Int64
	stopProgress := startProgress(o.progress, "idle", func() string {
		return fmt.Sprintf("conns %d/%d joined %d checked %d errors %d", l.conns.Load(), o.n, joined.Load(), checked.Load(), l.errs.total())
	})
	defer stopProgress()

	if o.warmup > 0 {
		// Its own rooms, which go with it; its failures are not the run's.
		wl := &live{}
		var wj, wc atomic.Int64
		wd := newDialer(&vo, fmt.Sprintf("w%08x", run))
		wd.readBuf = 256
		if vo.v1 {
			wd.room = roomName("w", 0)
		}
		wconns, _ := dialAll(&vo, wd, o.warmup, gzipFor(o.gzipFrac), wl)
		if vo.v1 {
			joinRooms(o, wconns, func(k int) string { return roomName("w", k) }, wl, &wj)
		}
		sweep(o, wconns, wl, &wc)
		closeAll(wconns)
		time.Sleep(500 * time.Millisecond) // the server sees the closes and frees them
	}

	var rssBefore, rssAfter int64
	var rssErr error
	if o.serverPID > 0 {
		rssBefore, rssErr = rsswatch.Read(o.serverPID)
	}
	cliBefore := liveBytes()

	d := newDialer(&vo, fmt.Sprintf("i%08x", run))
	d.readBuf = 256 // pings and pongs only
	if vo.v1 {
		d.room = roomName("r", 0)
	}
	conns, dialTime := dialAll(o, d, o.n, gzipFor(o.gzipFrac), l)
	defer closeAll(conns)
	open := l.conns.Load()
	if open == 0 {
		return nil, fmt.Errorf("no connection opened:%s", l.errs.String())
	}
	var joinTime time.Duration
	if vo.v1 {
		start := time.Now()
		joinRooms(o, conns, func(k int) string { return roomName("r", k) }, l, &joined)
		joinTime = time.Since(start)
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
	if vo.v1 {
		r.add("rooms per connection", "", "", float64(o.idleRooms))
		r.add("joined", "", "higher", float64(joined.Load()))
		r.add("join rate", "/s", "higher", ratio(float64(joined.Load()), joinTime.Seconds()))
	}
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

// joinRooms has every open v1 connection join rooms room(1) … room(K-1)
// (room(0), its first, came with its query) and waits, within o.timeout,
// for K answers: joined (counted in joined) or an error (counted in l's
// errors, by code). Presence frames that arrive meanwhile are dropped. A
// connection that fails is closed and dropped from conns.
func joinRooms(o *options, conns []*wsConn, room func(k int) string, l *live, joined *atomic.Int64) {
	deadline := time.Now().Add(o.timeout)
	eachOpen(conns, o.dialers, func(i int, c *wsConn, b *[]byte) bool {
		if err := joinAll(c, o.idleRooms, room, deadline, b, l, joined); err != nil {
			l.errs.add("join-" + errKind(err))
			return false
		}
		return true
	})
}

// eachOpen runs fn on every open connection of conns, with up to workers
// goroutines, each with a scratch buffer of its own; a connection fn
// reports as failed is closed and dropped from conns.
func eachOpen(conns []*wsConn, workers int, fn func(i int, c *wsConn, scratch *[]byte) bool) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(conns)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b []byte
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				if c := conns[i]; c != nil && !fn(i, c, &b) {
					c.Close()
					conns[i] = nil
				}
			}
		}()
	}
	wg.Wait()
}

// joinAll sends c's k-1 join commands and reads until k rooms are answered.
func joinAll(c *wsConn, k int, room func(k int) string, deadline time.Time, b *[]byte, l *live, joined *atomic.Int64) error {
	c.SetDeadline(deadline)
	defer c.SetDeadline(time.Time{})
	for j := 1; j < k; j++ {
		*b = appendJoin((*b)[:0], room(j), 0, "")
		if err := c.command(*b); err != nil {
			return err
		}
	}
	for answered := 0; answered < k; {
		env, err := c.readEnvelope(64 << 10)
		if err != nil {
			return err
		}
		switch string(jsonValue(env, "type")) {
		case "joined":
			joined.Add(1)
			answered++
		case "error":
			code, _ := jsonUint(env, "code")
			l.errs.add("refused-" + strconv.FormatUint(code, 10))
			answered++
		}
	}
	return nil
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
	var alive atomic.Int64
	eachOpen(conns, o.dialers, func(i int, c *wsConn, _ *[]byte) bool {
		if err := pingPong(c, uint64(i), deadline); err != nil {
			l.errs.add("check-" + errKind(err))
			return false
		}
		alive.Add(1)
		checked.Add(1)
		return true
	})
	return alive.Load()
}

// pingPong sends a ping carrying tag and reads until its pong, by
// deadline. Data frames are not expected on an idle seed connection and
// are an error; a v1 connection's (presence) are dropped.
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
		case ws.OpText, ws.OpBinary, ws.OpContinuation:
			if !c.v1 {
				return errProtocol
			}
		default:
			return errProtocol
		}
	}
}
