// Scenario storm: N connections, of which -senders send for -duration as
// fast as each one's in-flight cap allows: a sender has at most -inflight
// (default 8) of its own messages that have not yet come back to it (the
// server broadcasts to the sender too). Every connection checks every
// delivery; the figures are deliveries/s, latency, missing/wrong and, with
// -server-pid, the server's CPU seconds per million deliveries.

package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

func runStorm(o *options) (*Result, error) {
	if o.senders > o.n {
		return nil, fmt.Errorf("-senders %d over -n %d", o.senders, o.n)
	}
	window := o.inflightOr(8)
	r := newResult("storm", o, map[string]any{"n": o.n, "senders": o.senders, "inflight": window, "duration": o.duration, "gzip-frac": o.gzipFrac, "size": o.size})

	s := newSwarm(o, &live{})
	l := s.live
	var sent atomic.Int64
	op, end, err := s.open("storm", o.senders, o.duration+3*o.timeout, func() string {
		return fmt.Sprintf("conns %d/%d sent %d deliveries %d errors %d", l.conns.Load(), o.n,
			sent.Load(), s.delivered(), l.errs.total())
	})
	defer end()
	if err != nil {
		return nil, err
	}
	conns, senders, open := op.conns, op.senders, op.open

	// Each sender's own receiver hands a credit back when one of the
	// sender's messages returns.
	credits := make(map[*wsConn]chan struct{}, len(senders))
	for _, c := range senders {
		credits[c] = make(chan struct{}, window)
	}
	s.onDeliver = func(rc *receiver, sender uint16, _ uint32) {
		if int(sender) < len(senders) && senders[sender] == rc.c {
			select {
			case <-credits[rc.c]:
			default:
			}
		}
	}
	s.start(conns, len(senders))
	if err := s.warmUp(senders[0]); err != nil {
		s.stop(conns)
		return nil, err
	}

	cpu := startCPU(o.serverPID)
	start := s.now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for id, c := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, o.size)
			credit := credits[c]
			for seq := uint32(0); ; seq++ {
				select {
				case credit <- struct{}{}:
				case <-stop:
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				fillPayload(buf, s.run, uint16(id), seq, s.now())
				if err := c.writeFrame(ws.OpText, buf); err != nil {
					l.errs.add("send-" + errKind(err))
					return
				}
				sent.Add(1)
			}
		}()
	}
	time.Sleep(o.duration)
	close(stop)
	wg.Wait()
	want := sent.Load() * open
	got, wrong, secs, use := s.settle(conns, cpu, sent.Load(), start, o.timeout)

	r.add("connections", "", "", float64(open))
	r.add("connect rate", "conn/s", "higher", float64(open)/op.dialTime.Seconds())
	r.add("messages sent", "", "higher", float64(sent.Load()))
	s.addDeliveries(r, want, got, wrong, secs, use)
	r.finish(&l.errs)
	return r, nil
}
