// Scenario presence: a room of -n chat protocol v1 members, each reading
// everything, and a churn of -joins new connections per second into the
// room, each leaving (dropped with a TCP RST) after -churn-hold: as many
// joins as leaves, every one of a new key, so none is hidden by the
// server's leave grace. It counts the presence frames the members get
// during the churn: coalesced, that is at most one per member per
// -interval, however many joins. Beside it, -m broadcasts to the room give
// the server's CPU per delivery, and so what one frame per join and leave
// to every member would have cost.
//
// The members and the joining connections at a time (-joins × -churn-hold,
// and a second's slack) together stay within maxConns: the server holds
// the other side of each.

package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// pmember counts what one member received.
type pmember struct {
	c          *wsConn
	messages   atomic.Int64
	minCount   atomic.Int64 // the smallest count a presence frame gave (-1: none)
	wrong      atomic.Int64
	joinedSeen atomic.Bool
}

func runPresence(o *options) (*Result, error) {
	if o.joins < 1 {
		return nil, fmt.Errorf("-joins %d: at least 1", o.joins)
	}
	run := newRunID()
	room := fmt.Sprintf("presence-%08x", run)
	r := newResult("presence", o, map[string]any{"n": o.n, "joins/s": o.joins, "churn-hold": o.churnHold,
		"duration": o.duration, "interval": o.interval, "gzip-frac": o.gzipFrac, "room": room})
	vo := *o
	vo.v1, vo.room = true, room
	l := &live{}
	var joins, leaves atomic.Int64
	var counting atomic.Bool
	members := make([]*pmember, 0, o.n)
	var frames atomic.Int64 // presence frames counted, all members
	stop := startProgress(o.progress, "presence", func() string {
		return fmt.Sprintf("members %d/%d joins %d leaves %d presence frames %d errors %d",
			l.conns.Load(), o.n, joins.Load(), leaves.Load(), frames.Load(), l.errs.total())
	})
	defer stop()

	d := newDialer(&vo, fmt.Sprintf("p%08x", run))
	d.readBuf = 2 << 10
	conns, dialTime := dialAll(&vo, d, o.n, gzipFor(o.gzipFrac), l)
	defer func() { closeAll(conns) }()
	bound := time.Now().Add(4*o.timeout + o.duration + 10*time.Second)
	var wg sync.WaitGroup
	var stopping atomic.Bool
	for _, c := range conns {
		if c == nil {
			continue
		}
		c.SetDeadline(bound)
		m := &pmember{c: c}
		m.minCount.Store(-1)
		members = append(members, m)
		wg.Add(1)
		go func() {
			defer wg.Done()
			limit := o.size + v1Overhead + 64<<10 // presence lists (at most ListMax keys)
			for {
				env, err := c.readEnvelope(limit)
				if err != nil {
					if !stopping.Load() {
						l.errs.add("member-read-" + errKind(err))
					}
					return
				}
				switch string(jsonValue(env, "type")) {
				case "joined":
					m.joinedSeen.Store(true)
				case "presence":
					if !counting.Load() {
						continue
					}
					frames.Add(1)
					if n, ok := jsonUint(env, "count"); ok {
						if cur := m.minCount.Load(); cur < 0 || int64(n) < cur {
							m.minCount.Store(int64(n))
						}
					}
				case "message":
					if d := parseV1(env, run, o.size); d.ok {
						m.messages.Add(1)
					} else {
						m.wrong.Add(1)
					}
				case "error":
					l.errs.add("member-" + errKind(v1Error(env)))
				}
			}
		}()
	}
	defer func() {
		stopping.Store(true)
		closeAll(conns)
		wg.Wait()
	}()
	if len(members) == 0 {
		return nil, fmt.Errorf("no member connected:%s", l.errs.String())
	}
	r.add("members", "", "", float64(len(members)))
	r.add("connect rate", "conn/s", "higher", float64(len(members))/dialTime.Seconds())
	if !waitFor(o.timeout, func() bool {
		for _, m := range members {
			if !m.joinedSeen.Load() {
				return false
			}
		}
		return true
	}) {
		return nil, fmt.Errorf("not every member got joined within %v", o.timeout)
	}

	// The cost of one delivery to this room, for the comparison.
	sender := members[0].c
	buf := make([]byte, o.size)
	want := int64(o.messages) * int64(len(members))
	cpu := startCPU(o.serverPID)
	for k := range o.messages {
		fillPayload(buf, run, 0, uint32(k), 0)
		if err := sender.sendText(buf); err != nil {
			return nil, fmt.Errorf("sending: %w", err)
		}
	}
	delivered := func() int64 {
		var n int64
		for _, m := range members {
			n += m.messages.Load()
		}
		return n
	}
	waitFor(o.timeout, func() bool { return delivered() >= want })
	bcast := cpu.stop()
	got := delivered()
	r.add("deliveries missing", "", "lower", float64(max(want-got, 0)))
	perDelivery := ratio(bcast.server, float64(got))

	// Let the members' own join storm be flushed (graces end, the last
	// coalesced frame goes out) before counting.
	time.Sleep(2 * o.interval)
	counting.Store(true)

	// The churn: every 10 ms, the joins due so far, dialed on goroutines
	// (at most -dialers in flight); each drops after -churn-hold.
	cd := newDialer(&vo, fmt.Sprintf("q%08x", run))
	cd.readBuf = 256
	cd.rcvBuf = 16 << 10
	sem := make(chan struct{}, o.dialers)
	var churn sync.WaitGroup
	cpu = startCPU(o.serverPID)
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	next := 0
	for now := range tick.C {
		if now.Sub(start) >= o.duration {
			break
		}
		due := int(now.Sub(start).Seconds() * float64(o.joins))
		for ; next < due; next++ {
			// Past -dialers dials in flight, wait: the joins fall behind
			// the rate, which joins+leaves/s then shows.
			sem <- struct{}{}
			if time.Since(start) >= o.duration {
				<-sem
				break
			}
			churn.Add(1)
			go func(i int) {
				defer churn.Done()
				c, err := cd.dial(i, false)
				<-sem
				if err != nil {
					l.errs.add("join-" + errKind(err))
					return
				}
				joins.Add(1)
				time.Sleep(o.churnHold)
				tcpConn(c.Conn).SetLinger(0)
				c.Close()
				leaves.Add(1)
			}(next)
		}
	}
	tick.Stop()
	secs := time.Since(start).Seconds()
	counting.Store(false)
	use := cpu.stop()
	churn.Wait()

	var minCount int64 = -1
	var wrong int64
	for _, m := range members {
		if c := m.minCount.Load(); c >= 0 && (minCount < 0 || c < minCount) {
			minCount = c
		}
		wrong += m.wrong.Load()
	}
	events := float64(joins.Load() + leaves.Load())
	perMember := ratio(float64(frames.Load()), float64(len(members))*secs)
	r.add("joins", "", "", float64(joins.Load()))
	r.add("leaves", "", "", float64(leaves.Load()))
	r.add("joins+leaves/s", "/s", "", ratio(events, secs))
	r.add("presence frames", "", "", float64(frames.Load()))
	r.add("presence frames per member per second", "/s", "lower", perMember)
	r.add("presence frames per member per interval", "", "lower", perMember*o.interval.Seconds())
	r.add("frames a frame per join or leave would send", "", "", events*float64(len(members)))
	r.add("presence count min", "", "", float64(minCount))
	r.add("deliveries wrong", "", "lower", float64(wrong))
	r.addCPU(use)
	if o.serverPID > 0 {
		r.add("server cpu per join+leave", "ms", "lower", ratio(use.server, events)*1e3)
		r.add("server cpu per 1M deliveries", "s", "lower", perDelivery*1e6)
		r.add("server cpu a frame per join or leave would cost", "s", "", perDelivery*events*float64(len(members)))
	}
	r.finish(&l.errs)
	return r, nil
}

// waitFor polls cond every 5 ms until it holds (true) or bound passes.
func waitFor(bound time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(bound); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
