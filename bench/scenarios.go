package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// sample brackets a measured phase: server RSS and CPU, client CPU and
// wsd's counters (when available).
type sample struct {
	serverCPU, clientCPU float64
	counters             map[string]float64
}

func takeSample(o *options) sample {
	var s sample
	if o.serverPID != 0 {
		s.serverCPU, _ = cpuSeconds(o.serverPID)
	}
	s.clientCPU, _ = cpuSeconds(0)
	if o.metrics != "" {
		s.counters, _ = counters(o.metrics)
	}
	return s
}

func (r *Result) addSamples(o *options, before, after sample) {
	if o.serverPID != 0 {
		r.ServerCPU = after.serverCPU - before.serverCPU
	}
	r.ClientCPU = after.clientCPU - before.clientCPU
	addServerCounters(r, before.counters, after.counters)
}

// payload builds "sender:seq:nanos:" padded with 'x' to size.
func payload(buf []byte, sender, seq int, nanos int64, size int) []byte {
	buf = buf[:0]
	buf = strconv.AppendInt(buf, int64(sender), 10)
	buf = append(buf, ':')
	buf = strconv.AppendInt(buf, int64(seq), 10)
	buf = append(buf, ':')
	buf = strconv.AppendInt(buf, nanos, 10)
	buf = append(buf, ':')
	for len(buf) < size {
		buf = append(buf, 'x')
	}
	return buf
}

// parsePayload checks a received payload and returns its fields.
func parsePayload(p []byte, size int) (sender, seq int, nanos int64, ok bool) {
	if len(p) != size {
		return 0, 0, 0, false
	}
	var f [3]int64
	rest := p
	for i := range f {
		j := bytes.IndexByte(rest, ':')
		if j <= 0 {
			return 0, 0, 0, false
		}
		v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
		if err != nil {
			return 0, 0, 0, false
		}
		f[i] = v
		rest = rest[j+1:]
	}
	for _, c := range rest {
		if c != 'x' {
			return 0, 0, 0, false
		}
	}
	return int(f[0]), int(f[1]), f[2], true
}

// runIdle holds n connections and reports what they cost the server.
func runIdle(o *options) (*Result, error) {
	r := &Result{Scenario: "idle", Connections: o.n}
	if o.serverPID != 0 {
		r.RSSBefore, _ = rssBytes(o.serverPID)
	}
	conns, el, _, err := dialAll(o, o.n, "idle-", func(i int) bool { return float64(i) < o.gzipFrac*float64(o.n) })
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	r.ConnectSeconds = el.Seconds()
	r.ConnectRate = float64(o.n) / el.Seconds()
	time.Sleep(o.hold)
	if o.serverPID != 0 {
		r.RSSAfter, _ = rssBytes(o.serverPID)
		r.BytesPerConn = float64(r.RSSAfter-r.RSSBefore) / float64(o.n)
	}
	// Every connection must still answer a ping.
	var open atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(c *conn) {
			defer wg.Done()
			defer func() { <-sem }()
			if ws.WriteFrame(c, ws.MaskFrame(ws.NewPingFrame([]byte("alive?")))) != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				h, err := ws.ReadHeader(c.r)
				if err != nil {
					return
				}
				if _, err := c.r.Discard(int(h.Length)); err != nil {
					return
				}
				if h.OpCode == ws.OpPong {
					open.Add(1)
					return
				}
			}
		}(c)
	}
	wg.Wait()
	r.StillOpen = int(open.Load())
	if r.StillOpen != o.n {
		return r, fmt.Errorf("%d of %d idle connections did not answer a ping", o.n-r.StillOpen, o.n)
	}
	return r, nil
}

// tally is what receivers count, merged at the end.
type tally struct {
	mu        sync.Mutex
	received  atomic.Int64
	wrong     atomic.Int64
	lastNanos atomic.Int64
	latencies []int64 // microseconds
}

func (t *tally) merge(lat []int64) {
	t.mu.Lock()
	t.latencies = append(t.latencies, lat...)
	t.mu.Unlock()
}

func (t *tally) seen(nanos int64) {
	for {
		last := t.lastNanos.Load()
		if nanos <= last || t.lastNanos.CompareAndSwap(last, nanos) {
			return
		}
	}
}

func (t *tally) latency() Latency {
	h := newHistogram()
	for _, v := range t.latencies {
		h.RecordValue(max(v, 1))
	}
	return latencyOf(h)
}

// runFanout: one sender broadcasts o.messages messages; every receiver must
// get each one, intact and in order.
func runFanout(o *options) (*Result, error) {
	r := &Result{Scenario: "fanout", Connections: o.n}
	conns, el, _, err := dialAll(o, o.n, "fan-", func(i int) bool { return float64(i) < o.gzipFrac*float64(o.n) })
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	r.ConnectRate = float64(o.n) / el.Seconds()
	sender, err := dial(o.addr, o.src[0], "fan-sender", false, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer sender.Close()

	base := time.Now()
	var t tally
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c *conn) {
			defer wg.Done()
			var rd reader
			lat := make([]int64, 0, o.messages)
			defer func() { t.merge(lat) }()
			c.SetReadDeadline(base.Add(o.timeout))
			for want := 0; want < o.messages; want++ {
				p, err := rd.next(c)
				if err != nil {
					return
				}
				now := time.Since(base).Nanoseconds()
				_, seq, sent, ok := parsePayload(p, o.size)
				if !ok || seq != want {
					t.wrong.Add(1)
					continue
				}
				t.received.Add(1)
				t.seen(now)
				lat = append(lat, (now-sent)/1000)
			}
		}(c)
	}
	stop := progress(o, func() string {
		return fmt.Sprintf("fanout: %d/%d deliveries, %d wrong", t.received.Load(), int64(o.n*o.messages), t.wrong.Load())
	})
	before := takeSample(o)
	// The sender waits for its own echo before the next message, so the
	// run measures fan-out rather than a queue building up.
	var rd reader
	buf := make([]byte, 0, o.size)
	sender.SetReadDeadline(base.Add(o.timeout))
	for i := 0; i < o.messages; i++ {
		if err := sender.writeText(payload(buf, 0, i, time.Since(base).Nanoseconds(), o.size)); err != nil {
			stop()
			return nil, fmt.Errorf("send: %w", err)
		}
		r.Sent++
		if _, err := rd.next(sender); err != nil {
			stop()
			return nil, fmt.Errorf("sender's echo: %w", err)
		}
	}
	wg.Wait()
	stop()
	after := takeSample(o)
	r.addSamples(o, before, after)
	r.Expected = int64(o.n * o.messages)
	r.Received = t.received.Load()
	r.Wrong = t.wrong.Load()
	r.Missing = r.Expected - r.Received
	r.Elapsed = float64(t.lastNanos.Load()) / 1e9
	if r.Elapsed > 0 {
		r.DeliveryRate = float64(r.Received) / r.Elapsed
	}
	r.LatencyMillis = t.latency()
	return r, nil
}

// runStorm: o.senders send as fast as their in-flight cap allows for
// o.duration; everyone receives everything.
func runStorm(o *options) (*Result, error) {
	if o.senders > o.n {
		return nil, fmt.Errorf("-senders %d over -n %d", o.senders, o.n)
	}
	r := &Result{Scenario: "storm", Connections: o.n}
	conns, el, _, err := dialAll(o, o.n, "storm-", func(i int) bool { return float64(i) < o.gzipFrac*float64(o.n) })
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	r.ConnectRate = float64(o.n) / el.Seconds()

	base := time.Now()
	slots := make([]chan struct{}, o.senders)
	for i := range slots {
		slots[i] = make(chan struct{}, o.inflight)
	}
	var sentTotal atomic.Int64
	sending := make(chan struct{})
	var t tally
	var wg sync.WaitGroup
	for idx, c := range conns {
		wg.Add(1)
		go func(idx int, c *conn) {
			defer wg.Done()
			var rd reader
			next := make([]int, o.senders)
			lat := make([]int64, 0, 1024)
			defer func() { t.merge(lat) }()
			for {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				p, err := rd.next(c)
				if err != nil {
					return
				}
				now := time.Since(base).Nanoseconds()
				s, seq, sent, ok := parsePayload(p, o.size)
				if !ok || s < 0 || s >= o.senders || seq != next[s] {
					t.wrong.Add(1)
					if ok && s >= 0 && s < o.senders {
						next[s] = seq + 1
					}
					continue
				}
				next[s]++
				t.received.Add(1)
				t.seen(now)
				lat = append(lat, (now-sent)/1000)
				if s == idx { // our own message is back: one more may go
					<-slots[s]
				}
			}
		}(idx, c)
	}
	stop := progress(o, func() string {
		return fmt.Sprintf("storm: %d sent, %d deliveries, %d wrong", sentTotal.Load(), t.received.Load(), t.wrong.Load())
	})
	before := takeSample(o)
	var swg sync.WaitGroup
	deadline := time.Now().Add(o.duration)
	for s := 0; s < o.senders; s++ {
		swg.Add(1)
		go func(s int) {
			defer swg.Done()
			buf := make([]byte, 0, o.size)
			for seq := 0; time.Now().Before(deadline); seq++ {
				select {
				case slots[s] <- struct{}{}:
				case <-time.After(time.Until(deadline)):
					return
				}
				if conns[s].writeText(payload(buf, s, seq, time.Since(base).Nanoseconds(), o.size)) != nil {
					return
				}
				sentTotal.Add(1)
			}
		}(s)
	}
	swg.Wait()
	close(sending)
	r.Sent = sentTotal.Load()
	r.Expected = r.Sent * int64(o.n)
	// Let the last messages arrive.
	waitUntil := time.Now().Add(o.timeout)
	for t.received.Load()+t.wrong.Load() < r.Expected && time.Now().Before(waitUntil) {
		time.Sleep(10 * time.Millisecond)
	}
	after := takeSample(o)
	stop()
	closeAll(conns)
	wg.Wait()
	r.addSamples(o, before, after)
	r.Received = t.received.Load()
	r.Wrong = t.wrong.Load()
	r.Missing = r.Expected - r.Received
	r.Elapsed = float64(t.lastNanos.Load()) / 1e9
	if r.Elapsed > 0 {
		r.DeliveryRate = float64(r.Received) / r.Elapsed
	}
	if r.Received > 0 && r.ServerCPU > 0 {
		r.CPUPerMillion = r.ServerCPU / float64(r.Received) * 1e6
	}
	r.LatencyMillis = t.latency()
	return r, nil
}

// runConnect opens, upgrades and drops connections as fast as o.dialers
// goroutines can for o.duration.
func runConnect(o *options) (*Result, error) {
	r := &Result{Scenario: "connect", Errors: make(map[string]int)}
	var ok atomic.Int64
	var mu sync.Mutex
	deadline := time.Now().Add(o.duration)
	start := time.Now()
	stop := progress(o, func() string { return fmt.Sprintf("connect: %d handshakes", ok.Load()) })
	before := takeSample(o)
	var wg sync.WaitGroup
	for g := 0; g < o.dialers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				src := o.src[(g+i)%len(o.src)]
				c, err := dial(o.addr, src, fmt.Sprintf("conn-%d-%d", g, i), i%2 == 0, 5*time.Second)
				if err != nil {
					mu.Lock()
					r.Errors[errKind(err)]++
					mu.Unlock()
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue
				}
				ok.Add(1)
				// Drop with RST: no TIME_WAIT piling up on the client's ports.
				c.Conn.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		}(g)
	}
	wg.Wait()
	el := time.Since(start)
	after := takeSample(o)
	stop()
	r.addSamples(o, before, after)
	r.Handshakes = ok.Load()
	r.HandshakeRate = float64(r.Handshakes) / el.Seconds()
	r.Elapsed = el.Seconds()
	if len(r.Errors) == 0 {
		r.Errors = nil
	}
	return r, nil
}
