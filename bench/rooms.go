// Scenario rooms: -n chat protocol v1 connections subscribed to 1, then
// 10, then 100 rooms each (-rooms), out of a pool of -room-pool rooms:
// connection i's k-th room is (i + k·stride) mod pool, stride = pool /
// the last level, so a connection's rooms are distinct and every room has
// about n·level/pool members. At each level it reports
//
//   - the server's RSS growth per subscription added (per connection at the
//     first level, which is the dialing), with -server-pid;
//   - the server's CPU per join;
//   - the fan-out cost: a v1 sender in 10 of the rooms sends -m messages
//     over them, and the server CPU per delivery and the deliveries per
//     second follow from what the members received.
//
// The server's -max-rooms-per-conn must allow the last level.

package main

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsd-chat/wsd/internal/rsswatch"
)

// senderRooms is how many rooms the rooms scenario's sender sends to.
const senderRooms = 10

type rconn struct {
	c        *wsConn
	i        int
	joined   atomic.Int64
	refused  atomic.Int64
	messages atomic.Int64
	wrong    atomic.Int64
}

func runRooms(o *options) (*Result, error) {
	top := o.levels[len(o.levels)-1]
	if o.roomPool < top || o.roomPool < senderRooms {
		return nil, fmt.Errorf("-room-pool %d: at least the last level (%d) and %d", o.roomPool, top, senderRooms)
	}
	stride := o.roomPool / top
	run := newRunID()
	roomName := func(j int) string { return fmt.Sprintf("rooms-%08x-%d", run, j) }
	roomOf := func(i, k int) int { return (i + k*stride) % o.roomPool }
	r := newResult("rooms", o, map[string]any{"n": o.n, "rooms": fmt.Sprint(o.levels), "room-pool": o.roomPool,
		"m": o.messages, "size": o.size, "gzip-frac": o.gzipFrac})
	vo := *o
	vo.v1 = true
	l := &live{}
	var level atomic.Int64
	stop := startProgress(o.progress, "rooms", func() string {
		return fmt.Sprintf("rooms/conn %d conns %d/%d errors %d", level.Load(), l.conns.Load(), o.n, l.errs.total())
	})
	defer stop()
	rss := func() int64 {
		if o.serverPID <= 0 {
			return -1
		}
		v, err := rsswatch.Read(o.serverPID)
		if err != nil {
			return -1
		}
		return v
	}

	d := newDialer(&vo, fmt.Sprintf("m%08x", run))
	d.readBuf = 2 << 10
	d.queryFor = func(i int) string { return "room=" + roomName(roomOf(i, 0)) }
	rss0 := rss()
	cpu := startCPU(o.serverPID)
	conns, dialTime := dialAll(&vo, d, o.n, gzipFor(o.gzipFrac), l)
	defer func() { closeAll(conns) }()
	bound := time.Now().Add(time.Duration(2*len(o.levels)+2)*o.timeout + 10*time.Second)
	var rcs []*rconn
	var wg sync.WaitGroup
	var stopping atomic.Bool
	reader := func(rc *rconn) {
		defer wg.Done()
		for {
			env, err := rc.c.readEnvelope(o.size + v1Overhead + 64<<10)
			if err != nil {
				if !stopping.Load() {
					l.errs.add("read-" + errKind(err))
				}
				return
			}
			switch string(jsonValue(env, "type")) {
			case "joined":
				rc.joined.Add(1)
			case "message":
				if d := parseV1(env, run, o.size); d.ok {
					rc.messages.Add(1)
				} else {
					rc.wrong.Add(1)
				}
			case "error":
				rc.refused.Add(1)
				code, _ := jsonUint(env, "code")
				l.errs.add("refused-" + strconv.FormatUint(code, 10))
			}
		}
	}
	for i, c := range conns {
		if c == nil {
			continue
		}
		c.SetDeadline(bound)
		rc := &rconn{c: c, i: i}
		rcs = append(rcs, rc)
		wg.Add(1)
		go reader(rc)
	}
	defer func() {
		stopping.Store(true)
		closeAll(conns)
		wg.Wait()
	}()
	if len(rcs) == 0 {
		return nil, fmt.Errorf("no connection opened:%s", l.errs.String())
	}
	r.add("connections", "", "", float64(len(rcs)))
	r.add("connect rate", "conn/s", "higher", float64(len(rcs))/dialTime.Seconds())
	answered := func(want int64) bool {
		for _, rc := range rcs {
			if rc.joined.Load()+rc.refused.Load() < want {
				return false
			}
		}
		return true
	}

	// The sender: its own connection, in the first senderRooms rooms.
	sd := newDialer(&vo, fmt.Sprintf("s%08x", run))
	sd.room = roomName(0)
	sender, err := sd.dial(0, false)
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	defer sender.Close()
	sender.SetDeadline(bound)
	for j := 1; j < senderRooms; j++ {
		if err := sender.command(appendJoin(nil, roomName(j), 0, "")); err != nil {
			return nil, fmt.Errorf("sender: %w", err)
		}
	}
	var senderJoined atomic.Int64
	wg.Add(1)
	go func() { // the sender's own frames: joined, acks, its messages
		defer wg.Done()
		for {
			env, err := sender.readEnvelope(o.size + v1Overhead + 64<<10)
			if err != nil {
				return
			}
			switch string(jsonValue(env, "type")) {
			case "joined":
				senderJoined.Add(1)
			case "error":
				l.errs.add("sender-" + errKind(v1Error(env)))
			}
		}
	}()

	buf := make([]byte, o.size)
	seq := uint32(0)
	prev := 0
	for idx, lv := range o.levels {
		level.Store(int64(lv))
		name := fmt.Sprintf("%d rooms", lv)
		if idx > 0 {
			rss0 = rss()
			cpu = startCPU(o.serverPID)
		}
		if have := max(prev, 1); lv > have {
			// Subscribe every connection to rooms have … lv-1, -dialers
			// connections at a time.
			var next atomic.Int64
			var jw sync.WaitGroup
			for range min(o.dialers, len(rcs)) {
				jw.Add(1)
				go func() {
					defer jw.Done()
					var b []byte
					for {
						x := int(next.Add(1) - 1)
						if x >= len(rcs) {
							return
						}
						rc := rcs[x]
						for k := have; k < lv; k++ {
							b = appendJoin(b[:0], roomName(roomOf(rc.i, k)), 0, "")
							if err := rc.c.command(b); err != nil {
								l.errs.add("join-" + errKind(err))
								break
							}
						}
					}
				}()
			}
			jw.Wait()
		}
		if !waitFor(o.timeout, func() bool { return answered(int64(lv)) }) {
			l.errs.add("joins-unanswered")
		}
		use := cpu.stop()
		time.Sleep(200 * time.Millisecond) // let the allocator settle before reading RSS
		rss1 := rss()
		// The first level's step is the dialing: its figure is per
		// connection (with its lv rooms); later ones per subscription added.
		added := float64(len(rcs) * (lv - prev))
		what := name + ": server bytes per subscription added"
		if idx == 0 {
			added = float64(len(rcs))
			what = name + ": server bytes per connection"
		}
		if rss0 >= 0 && rss1 >= 0 {
			r.add(what, "B", "lower", float64(rss1-rss0)/added)
		}
		if o.serverPID > 0 && idx > 0 {
			r.add(name+": server cpu per join", "µs", "lower", ratio(use.server, added)*1e6)
		}

		// Fan-out at this level: members per sender room, then -m
		// messages over those rooms.
		members := make([]int64, senderRooms)
		for _, rc := range rcs {
			for k := range lv {
				if j := roomOf(rc.i, k); j < senderRooms {
					members[j]++
				}
			}
		}
		waitFor(o.timeout, func() bool { return senderJoined.Load() >= senderRooms })
		var want int64
		before := int64(0)
		for _, rc := range rcs {
			before += rc.messages.Load()
		}
		cpu := startCPU(o.serverPID)
		start := time.Now()
		for k := range o.messages {
			j := k % senderRooms
			fillPayload(buf, run, 0, seq, 0)
			seq++
			b := appendSend(nil, roomName(j), buf)
			if err := sender.command(b); err != nil {
				return nil, fmt.Errorf("sender: %w", err)
			}
			want += members[j]
		}
		delivered := func() int64 {
			n := -before
			for _, rc := range rcs {
				n += rc.messages.Load()
			}
			return n
		}
		waitFor(o.timeout, func() bool { return delivered() >= want })
		secs := time.Since(start).Seconds()
		fuse := cpu.stop()
		got := delivered()
		r.add(name+": deliveries missing", "", "lower", float64(max(want-got, 0)))
		r.add(name+": deliveries/s", "/s", "higher", ratio(float64(got), secs))
		if o.serverPID > 0 {
			r.add(name+": server cpu per 1M deliveries", "s", "lower", ratio(fuse.server, float64(got)/1e6))
		}
		prev = lv
	}
	var wrong int64
	for _, rc := range rcs {
		wrong += rc.wrong.Load()
	}
	r.add("deliveries wrong", "", "lower", float64(wrong))
	r.finish(&l.errs)
	return r, nil
}
