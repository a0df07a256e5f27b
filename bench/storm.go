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
	r := newResult("storm", o)
	window := o.inflightOr(8)
	r.set("n", o.n)
	r.set("senders", o.senders)
	r.set("inflight", window)
	r.set("duration", o.duration)
	r.set("gzip-frac", o.gzipFrac)
	r.set("size", o.size)

	l := &live{}
	s := newSwarm(o, l)
	var sent atomic.Int64
	stopProgress := startProgress(o.progress, "storm", func() string {
		return fmt.Sprintf("conns %d/%d sent %d deliveries %d errors %d", l.conns.Load(), o.n,
			sent.Load(), s.delivered(), l.errs.total())
	})
	defer stopProgress()

	d := newDialer(o, fmt.Sprintf("s%08x", s.run))
	conns, dialTime := dialAll(o, d, o.n, gzipFor(o.gzipFrac), l)
	defer closeAll(conns)
	var senders []*wsConn
	for _, c := range conns {
		if c != nil && len(senders) < o.senders {
			senders = append(senders, c)
		}
	}
	if len(senders) < o.senders {
		return nil, fmt.Errorf("only %d connections opened:%s", len(senders), l.errs.String())
	}
	open := l.conns.Load()
	setDeadlineAll(conns, time.Now().Add(o.duration+3*o.timeout))

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
	r.add("connect rate", "conn/s", "higher", float64(open)/dialTime.Seconds())
	r.add("messages sent", "", "higher", float64(sent.Load()))
	s.addDeliveries(r, want, got, wrong, secs, use)
	r.finish(&l.errs)
	return r, nil
}
