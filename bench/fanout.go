// Scenario fanout: N connections (a -gzip-frac of them gzip-capable), one
// sender broadcasts -m messages of -size bytes; every receiver checks every
// delivery and records its latency. The sender is paced by delivery: it
// keeps at most -inflight broadcasts (default 1) that have not yet reached
// every connection, so the run measures the server's fan-out of one
// broadcast rather than a queue the client built up.
//
// With -proto v1 it runs twice in one process against the same server: a
// pass with seed members, then one with as many chat protocol v1 members
// (the sender a v1 client too, each receiver checking the envelope's seq
// as well as the text), both in one room of the run. Each pass's figures
// carry its name, and "v1/seed server cpu per delivery" compares them.

package main

import (
	"fmt"
	"sync/atomic"
	"time"
)

func runFanout(o *options) (*Result, error) {
	if o.proto != "v1" {
		return fanoutPass(o)
	}
	room := fmt.Sprintf("fanout-%08x", newRunID())
	r := newResult("fanout", o, map[string]any{"n": o.n, "gzip-frac": o.gzipFrac, "m": o.messages, "size": o.size,
		"inflight": o.inflightOr(1), "proto": "seed then v1", "room": room})
	errs := &errCount{}
	var perDelivery [2]float64
	for i, proto := range []string{"seed", "v1"} {
		po := *o
		po.v1, po.room = proto == "v1", room
		pr, err := fanoutPass(&po)
		if err != nil {
			return nil, fmt.Errorf("%s pass: %w", proto, err)
		}
		for _, f := range pr.Figures {
			r.add(proto+" "+f.Name, f.Unit, f.Better, f.Value)
		}
		for k, v := range pr.Errors {
			errs.addN(proto+" "+k, v)
		}
		perDelivery[i], _ = pr.get("server cpu per 1M deliveries")
	}
	if o.serverPID > 0 {
		r.add("v1/seed server cpu per delivery", "×", "lower", ratio(perDelivery[1], perDelivery[0]))
	}
	r.finish(errs)
	return r, nil
}

// fanoutPass is one fanout run, with the members o describes.
func fanoutPass(o *options) (*Result, error) {
	window := o.inflightOr(1)
	r := newResult("fanout", o, map[string]any{"n": o.n, "gzip-frac": o.gzipFrac, "m": o.messages, "size": o.size, "inflight": window})

	s := newSwarm(o, &live{})
	l := s.live
	// Everything ends by this deadline at the latest: warm-up, the paced
	// sending (2 × -timeout), the final wait (-timeout).
	op, end, err := s.open("fanout", 1, 4*o.timeout+10*time.Second, func() string {
		return fmt.Sprintf("conns %d/%d deliveries %d/%d errors %d", l.conns.Load(), o.n,
			s.delivered(), int64(o.messages)*l.conns.Load(), l.errs.total())
	})
	defer end()
	if err != nil {
		return nil, err
	}
	conns, sender, open := op.conns, op.senders[0], op.open

	// complete[seq] counts receivers that got seq; when it reaches open,
	// the broadcast is done and the sender may send another.
	complete := make([]atomic.Int64, o.messages)
	done := make(chan struct{}, o.messages)
	s.onDeliver = func(_ *receiver, _ uint16, seq uint32) {
		if int(seq) < len(complete) && complete[seq].Add(1) == open {
			done <- struct{}{}
		}
	}
	s.start(conns, 1)
	if err := s.warmUp(sender); err != nil {
		s.stop(conns)
		return nil, err
	}

	cpu := startCPU(o.serverPID)
	buf := make([]byte, o.size)
	start := s.now()
	// oldest is the oldest broadcast not yet known to be complete.
	oldest, stalls := 0, 0
	sendDeadline := time.Now().Add(2 * o.timeout)
	// finished: seq reached every connection that is still up.
	finished := func(seq int) bool { return complete[seq].Load() >= open-s.dead.Load() }
	for seq := range o.messages {
		var waitUntil time.Time
		for seq-oldest >= window {
			if finished(oldest) {
				oldest++
				continue
			}
			if waitUntil.IsZero() {
				waitUntil = time.Now().Add(min(o.timeout, max(time.Until(sendDeadline), 0)))
			}
			if time.Now().After(waitUntil) {
				// A broadcast that does not reach everyone is counted as
				// missing at the end; move on rather than hang. Past the
				// send deadline the rest goes out unpaced.
				stalls++
				oldest++
				continue
			}
			select {
			case <-done:
			case <-time.After(2 * time.Millisecond): // a receiver may have died
			}
		}
		fillPayload(buf, s.run, 0, uint32(seq), s.now())
		if err := sender.sendText(buf); err != nil {
			l.errs.add("send-" + errKind(err))
			break
		}
	}
	want := int64(o.messages) * open
	got, wrong, secs, use := s.settle(conns, cpu, int64(o.messages), start, o.timeout)

	r.add("connections", "", "", float64(open))
	r.add("connect rate", "conn/s", "higher", float64(open)/op.dialTime.Seconds())
	s.addDeliveries(r, want, got, wrong, secs, use)
	if stalls > 0 {
		l.errs.addN("broadcast-not-completed", int64(stalls))
	}
	r.finish(&l.errs)
	return r, nil
}
