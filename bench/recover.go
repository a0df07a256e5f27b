// Scenario recover: -n chat protocol v1 clients in one room (a -gzip-frac
// of them gzip-capable), and a v1 sender. Four phases, one after another:
//
//  1. live: the sender sends -m messages, every client receives them
//     (server CPU per live delivery);
//  2. away: every client drops its connection, the sender sends -m more
//     and waits for their acks;
//  3. recover: every client reconnects at once (-dialers at a time) with
//     since = the last seq it received and the room's epoch in the query,
//     and must get joined{recovered:true} then exactly the messages after
//     since, in order: missing and duplicated are counted, and the time
//     from its dial to its last missed message (caught up);
//  4. baseline: every client drops and reconnects again with nothing
//     missed, so that the reconnections' own cost (handshake, joined) can
//     be taken out of phase 3's: server CPU per recovered message is
//     (CPU of 3 − CPU of 4) / messages recovered.
//
// With -rounds R the four phases run R times over the same clients and
// every figure is of the R rounds together: a round's CPU is a few tenths
// of a second, which the box's other work sways run to run.
//
// -m must be within the server's history (-history-size, 100 by default),
// or phase 3 is rightly answered recovered:false.

package main

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// rclient is one recover client across its connections.
type rclient struct {
	i     int
	gz    bool
	c     *wsConn
	last  uint64 // the last seq it received
	since uint64 // last, when it reconnected
	epoch string
	// counted in the recover phase
	got, dup, gap int64
	recovered     bool
	caughtUp      time.Duration
	err           error
}

// envLimit bounds a recover envelope: a payload and the envelope around it.
func envLimit(o *options) int { return o.size + v1Overhead }

// consume reads c's envelopes until it has seq until (at once if it has
// already), counting what arrives: a message at or below the last seq is a
// duplicate, one past the next a gap. onJoined sees every joined.
func (cl *rclient) consume(o *options, until uint64, countIn bool, onJoined func(env []byte) error) error {
	for cl.last < until {
		env, err := cl.c.readEnvelope(envLimit(o))
		if err != nil {
			return err
		}
		switch string(jsonValue(env, "type")) {
		case "joined":
			if onJoined != nil {
				if err := onJoined(env); err != nil {
					return err
				}
			}
		case "message":
			seq, ok := jsonUint(env, "seq")
			if !ok {
				return fmt.Errorf("message without a seq: %.80q", env)
			}
			switch {
			case seq <= cl.last:
				cl.dup++
				continue
			case seq != cl.last+1:
				cl.gap += int64(seq - cl.last - 1)
			}
			cl.last = seq
			if countIn {
				cl.got++
			}
		case "error":
			return v1Error(env)
		}
	}
	return nil
}

// joinedPos reads a joined envelope's seq, epoch and recovered.
func joinedPos(env []byte) (seq uint64, epoch string, recovered bool, ok bool) {
	seq, ok = jsonUint(env, "seq")
	return seq, string(jsonValue(env, "epoch")), bytes.Equal(jsonValue(env, "recovered"), []byte("true")), ok
}

func runRecover(o *options) (*Result, error) {
	run := newRunID()
	room := fmt.Sprintf("recover-%08x", run)
	r := newResult("recover", o, map[string]any{"n": o.n, "gzip-frac": o.gzipFrac, "m": o.messages, "size": o.size, "room": room, "rounds": o.rounds})
	vo := *o
	vo.v1, vo.room = true, room
	l := &live{}
	var phase atomic.Value
	phase.Store("connect")
	var caught atomic.Int64
	stop := startProgress(o.progress, "recover", func() string {
		return fmt.Sprintf("%s conns %d/%d caught up %d errors %d", phase.Load(), l.conns.Load(), o.n, caught.Load(), l.errs.total())
	})
	defer stop()

	d := newDialer(&vo, fmt.Sprintf("r%08x", run))
	d.readBuf = 4 << 10
	d.envs = newEnvMemo()
	sender, err := d.dial(o.n, false) // key prefix-n: none of the clients'
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	defer sender.Close()
	bound := time.Now().Add(time.Duration(o.rounds) * (8*o.timeout + 10*time.Second))
	sender.SetDeadline(bound)
	snd := &rclient{i: o.n, c: sender}
	env, err := sender.readEnvelope(envLimit(o))
	if err != nil {
		return nil, fmt.Errorf("sender's joined: %w", err)
	}
	seq0, epoch, _, ok := joinedPos(env)
	if !ok || string(jsonValue(env, "type")) != "joined" {
		return nil, fmt.Errorf("sender: want joined, got %.120q", env)
	}
	snd.last = seq0

	clients := make([]*rclient, o.n)
	gz := gzipFor(o.gzipFrac)
	for i := range clients {
		clients[i] = &rclient{i: i, gz: gz(i)}
	}
	// eachClient runs f for every client with a connection, one goroutine
	// each, and waits.
	eachClient := func(f func(cl *rclient)) {
		var wg sync.WaitGroup
		for _, cl := range clients {
			if cl.c == nil {
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); f(cl) }()
		}
		wg.Wait()
	}
	fail := func(cl *rclient, what string, err error) {
		l.errs.add(what + "-" + errKind(err))
		cl.c.Close()
		cl.c = nil
	}

	// Phase 0: connect, each client learning its position from joined.
	conns, dialTime := dialAll(&vo, d, o.n, gz, l)
	defer func() { closeAll(conns) }()
	for i, c := range conns {
		clients[i].c = c
		if c != nil {
			c.SetDeadline(bound)
		}
	}
	eachClient(func(cl *rclient) {
		env, err := cl.c.readEnvelope(envLimit(o))
		if err == nil {
			seq, e, _, ok := joinedPos(env)
			if !ok || e != epoch || string(jsonValue(env, "type")) != "joined" {
				err = fmt.Errorf("%w: first frame %.120q", errProtocol, env)
			}
			cl.last = seq
		}
		if err != nil {
			fail(cl, "join", err)
		}
	})
	open := 0
	for _, cl := range clients {
		if cl.c != nil {
			open++
		}
	}
	if open == 0 {
		return nil, fmt.Errorf("no client connected:%s", l.errs.String())
	}
	r.add("connections", "", "", float64(open))
	r.add("connect rate", "conn/s", "higher", float64(open)/dialTime.Seconds())

	buf := make([]byte, o.size)
	// sendAll sends the phase's -m messages and returns the seq of the
	// last, from the acks.
	sendAll := func(base uint32) (uint64, error) {
		for k := range o.messages {
			fillPayload(buf, run, 0, base+uint32(k), 0)
			if err := sender.sendText(buf); err != nil {
				return 0, err
			}
		}
		acks := 0
		for acks < o.messages {
			env, err := sender.readEnvelope(envLimit(o))
			if err != nil {
				return 0, fmt.Errorf("sender: %d of %d acks: %w", acks, o.messages, err)
			}
			switch string(jsonValue(env, "type")) {
			case "ack":
				acks++
				if seq, ok := jsonUint(env, "seq"); ok {
					snd.last = max(snd.last, seq)
				}
			case "error":
				return 0, v1Error(env)
			}
		}
		return snd.last, nil
	}

	// The rounds: phases 1 to 4, R times; their figures are summed.
	hist := hdrhistogram.New(1, histMaxUs, 3)
	var histMu sync.Mutex
	var liveUse, recUse, baseUse cpuUse
	var liveN, want, notRec int64
	var s2, away uint64
	recFailed := 0
	for round := range o.rounds {
		// Phase 1: live.
		phase.Store(fmt.Sprintf("round %d live", round+1))
		cpu := startCPU(o.serverPID)
		s1, err := sendAll(uint32(2 * round * o.messages))
		if err != nil {
			return nil, err
		}
		var liveGot atomic.Int64
		eachClient(func(cl *rclient) {
			before := cl.last
			if err := cl.consume(o, s1, false, nil); err != nil {
				fail(cl, "live", err)
				return
			}
			liveGot.Add(int64(cl.last - before))
		})
		liveUse = liveUse.plus(cpu.stop())
		liveN += liveGot.Load()

		// Phase 2: away.
		phase.Store("away")
		for _, cl := range clients {
			if cl.c != nil {
				tcpConn(cl.c.Conn).SetLinger(0)
				cl.c.Close()
			}
		}
		s2, err = sendAll(uint32((2*round + 1) * o.messages))
		away += s2 - s1
		if err != nil {
			return nil, err
		}

		// Phase 3: recover. Each client reconnects with its position; its
		// reader runs on its own goroutine so dialing is not held up by reads.
		reconnect := func(until uint64, count bool) (cpuUse, int) {
			d.queryFor = func(i int) string {
				cl := clients[i]
				return "since=" + strconv.FormatUint(cl.last, 10) + "&epoch=" + epoch
			}
			var wg sync.WaitGroup
			var next atomic.Int64
			var failed atomic.Int64
			cpu := startCPU(o.serverPID)
			for range min(o.dialers, open) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1) - 1)
						if i >= len(clients) {
							return
						}
						cl := clients[i]
						if cl.c == nil && cl.err != nil {
							continue
						}
						cl.since = cl.last
						t0 := time.Now()
						c, err := d.dial(i, cl.gz)
						if err != nil {
							l.errs.add("redial-" + errKind(err))
							cl.err = err
							failed.Add(1)
							continue
						}
						c.SetDeadline(bound)
						cl.c = c
						conns[i] = c
						wg.Add(1)
						go func() {
							defer wg.Done()
							cl.recovered = false
							err := cl.consume(o, until, count, func(env []byte) error {
								seq, e, rec, ok := joinedPos(env)
								if !ok {
									return fmt.Errorf("%w: joined %.120q", errProtocol, env)
								}
								cl.recovered = rec && e == epoch && seq >= until
								if !cl.recovered {
									// Nothing follows but live, and nothing is live: done.
									cl.last = until
								}
								return nil
							})
							if err != nil {
								l.errs.add("recover-" + errKind(err))
								cl.err = err
								failed.Add(1)
								return
							}
							if count {
								histMu.Lock()
								hist.RecordValue(min(max(time.Since(t0).Microseconds(), 1), histMaxUs))
								histMu.Unlock()
								caught.Add(1)
							}
						}()
					}
				}()
			}
			wg.Wait()
			return cpu.stop(), int(failed.Load())
		}
		phase.Store(fmt.Sprintf("round %d recover", round+1))
		for _, cl := range clients {
			if cl.c != nil {
				cl.c = nil
			} else {
				cl.err = errProtocol // lost before: not reconnected
			}
		}
		use, failed := reconnect(s2, true)
		recUse, recFailed = recUse.plus(use), recFailed+failed
		for _, cl := range clients {
			if cl.c == nil || cl.err != nil {
				continue
			}
			want += int64(s2 - cl.since)
			if !cl.recovered {
				notRec++
			}
		}

		// Phase 4: baseline, nothing missed.
		phase.Store(fmt.Sprintf("round %d baseline", round+1))
		for _, cl := range clients {
			if cl.c != nil {
				tcpConn(cl.c.Conn).SetLinger(0)
				cl.c.Close()
				cl.c = nil
			}
		}
		use, _ = reconnect(s2, false)
		baseUse = baseUse.plus(use)

	}
	var got, dup, gap int64
	for _, cl := range clients {
		if cl.c == nil || cl.err != nil {
			continue
		}
		got += cl.got
		dup += cl.dup
		gap += cl.gap
	}
	if recFailed > 0 {
		r.add("reconnects failed", "", "lower", float64(recFailed))
	}
	livePer := ratio(liveUse.server, float64(liveN))
	r.add("live deliveries", "", "", float64(liveN))

	r.add("messages while away", "", "", float64(away))
	r.add("recovered messages", "", "", float64(got))
	r.add("missing", "", "lower", float64(max(want-got, 0)))
	r.add("duplicated", "", "lower", float64(dup))
	r.add("gaps", "", "lower", float64(gap))
	r.add("not recovered", "", "lower", float64(notRec))
	r.addLatency("time to caught up", hist)
	r.addCPU(recUse)
	if o.serverPID > 0 {
		r.add("server cpu per 1M live deliveries", "s", "lower", livePer*1e6)
		r.add("server cpu per reconnect, nothing missed", "ms", "lower", ratio(baseUse.server, float64(open*o.rounds))*1e3)
		recPer := ratio(recUse.server-baseUse.server, float64(got))
		r.add("server cpu per 1M recovered messages", "s", "lower", recPer*1e6)
		r.add("recovered/live server cpu per message", "×", "lower", ratio(recPer, livePer))
	}
	r.finish(&l.errs)
	return r, nil
}
