// Receivers shared by fanout and storm: one goroutine per connection reads
// frames, checks every payload (frame type matching the connection's gzip
// setting, gunzip, content, per-sender order), counts deliveries and
// records latency into sharded HDR histograms in small batches.

package main

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"
)

const (
	histShards = 16
	histMaxUs  = 60_000_000 // latencies are recorded in µs, up to a minute
	latBatch   = 32
)

// errCount counts failures by kind.
type errCount struct {
	mu sync.Mutex
	m  map[string]int64
}

func (e *errCount) add(kind string) { e.addN(kind, 1) }

func (e *errCount) addN(kind string, n int64) {
	e.mu.Lock()
	if e.m == nil {
		e.m = make(map[string]int64)
	}
	e.m[kind] += n
	e.mu.Unlock()
}

func (e *errCount) total() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for _, v := range e.m {
		n += v
	}
	return n
}

func (e *errCount) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}

func (e *errCount) String() string {
	m := e.snapshot()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf(" %s=%d", k, m[k])
	}
	return s
}

// live holds what the progress line shows.
type live struct {
	conns atomic.Int64
	errs  errCount
}

type histShard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
	_  [48]byte
}

// receiver is one connection's receiving side.
type receiver struct {
	c      *wsConn
	id     int
	next   []uint32 // per sender, the next sequence number expected
	ok     atomic.Int64
	okZ    atomic.Int64 // of ok, those that came compressed (permessage-deflate)
	wrong  atomic.Int64
	last   atomic.Int64 // when the last good delivery arrived, ns since epoch
	joined atomic.Bool
	dead   atomic.Bool // its connection failed before the scenario ended
	lat    [latBatch]int64
	nlat   int
	// v1: the room's seq last seen (from joined or a message), once known;
	// every message must be the next.
	roomSeq  uint64
	seqKnown bool
}

// swarm is the client side of fanout and storm.
type swarm struct {
	o        *options
	run      uint32
	epoch    time.Time
	memo     *gzipMemo
	zmemo    *gzipMemo // permessage-deflate payloads
	recv     []*receiver
	live     *live
	hist     [histShards]histShard
	joined   atomic.Int64
	dead     atomic.Int64
	stopping atomic.Bool
	wg       sync.WaitGroup
	// onDeliver runs on the receiving goroutine for every good delivery.
	onDeliver func(r *receiver, sender uint16, seq uint32)
}

func newRunID() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func newSwarm(o *options, l *live) *swarm {
	s := &swarm{o: o, run: newRunID(), epoch: time.Now(), live: l}
	if o.memoGzip {
		s.memo = newGzipMemo()
		s.zmemo = newGzipMemo()
	}
	for i := range s.hist {
		s.hist[i].h = hdrhistogram.New(1, histMaxUs, 3)
	}
	s.onDeliver = func(*receiver, uint16, uint32) {}
	return s
}

func (s *swarm) now() int64 { return int64(time.Since(s.epoch)) }

// gzipFor spreads the gzip-capable connections evenly: connection i is one
// when the running count floor((i+1)·frac) steps up.
func gzipFor(frac float64) func(int) bool {
	return func(i int) bool { return int(float64(i+1)*frac) > int(float64(i)*frac) }
}

// start begins receiving on every open connection; senders is how many
// sender ids to expect.
func (s *swarm) start(conns []*wsConn, senders int) {
	for i, c := range conns {
		if c == nil {
			continue
		}
		r := &receiver{c: c, id: i, next: make([]uint32, senders)}
		s.recv = append(s.recv, r)
		s.wg.Add(1)
		go s.receive(r)
	}
}

func (s *swarm) receive(r *receiver) {
	defer s.wg.Done()
	defer s.flushLat(r)
	size := s.o.size
	for {
		op, p, err := r.c.readMessage(nil)
		if err != nil {
			if !s.stopping.Load() {
				s.live.errs.add("read-" + errKind(err))
				r.dead.Store(true)
				s.dead.Add(1)
			}
			return
		}
		var d decoded
		switch {
		case r.c.v1:
			d = s.v1Decode(r.c, op, p)
			if !d.ok {
				break
			}
			switch d.kind {
			case kindJoined:
				r.roomSeq, r.seqKnown = d.envSeq, true
				continue
			case kindOther:
				continue
			}
			if r.seqKnown && d.envSeq != r.roomSeq+1 {
				s.wrong(r, "v1-seq-gap")
			}
			r.roomSeq, r.seqKnown = d.envSeq, true
		case r.c.gzip && op == ws.OpBinary:
			d = s.memo.check(p, s.run, size)
		case r.c.compressed && op == ws.OpText:
			d = s.zmemo.checkDeflate(p, s.run, size)
		case !r.c.gzip && op == ws.OpText:
			d = parsePayload(p, s.run, size)
		default:
			s.wrong(r, "wrong-frame-type")
			continue
		}
		if !d.ok {
			s.wrong(r, "bad-payload")
			continue
		}
		if d.sender == warmSender {
			if !r.joined.Swap(true) {
				s.joined.Add(1)
			}
			continue
		}
		if int(d.sender) >= len(r.next) || d.seq < r.next[d.sender] {
			s.wrong(r, "duplicate-or-reordered")
			continue
		}
		r.next[d.sender] = d.seq + 1
		now := s.now()
		r.lat[r.nlat] = (now - d.ts) / 1000
		if r.nlat++; r.nlat == latBatch {
			s.flushLat(r)
		}
		r.ok.Add(1)
		if r.c.compressed {
			r.okZ.Add(1)
		}
		r.last.Store(now)
		s.onDeliver(r, d.sender, d.seq)
	}
}

func (s *swarm) wrong(r *receiver, kind string) {
	r.wrong.Add(1)
	s.live.errs.add(kind)
}

func (s *swarm) flushLat(r *receiver) {
	if r.nlat == 0 {
		return
	}
	sh := &s.hist[r.id%histShards]
	sh.mu.Lock()
	for _, v := range r.lat[:r.nlat] {
		sh.h.RecordValue(min(max(v, 1), histMaxUs))
	}
	sh.mu.Unlock()
	r.nlat = 0
}

// warmUp broadcasts warm-up messages from c until every receiver has seen
// one, so that measuring starts only once the server has every
// connection in its table. It gives up after o.timeout.
func (s *swarm) warmUp(c *wsConn) error {
	buf := make([]byte, s.o.size)
	deadline := time.Now().Add(s.o.timeout)
	want := int64(len(s.recv))
	for seq := uint32(0); time.Now().Before(deadline); seq++ {
		fillPayload(buf, s.run, warmSender, seq, s.now())
		if err := c.sendText(buf); err != nil {
			return fmt.Errorf("warm-up: %v", err)
		}
		for t := time.Now().Add(time.Second); time.Now().Before(t); time.Sleep(5 * time.Millisecond) {
			if s.joined.Load() >= want {
				return nil
			}
		}
	}
	return fmt.Errorf("warm-up: %d of %d connections got a broadcast within %v", s.joined.Load(), want, s.o.timeout)
}

// delivered is the number of good deliveries so far.
func (s *swarm) delivered() int64 {
	var n int64
	for _, r := range s.recv {
		n += r.ok.Load()
	}
	return n
}

// caughtUp tells whether every receiver still connected has each got
// perReceiver deliveries.
func (s *swarm) caughtUp(perReceiver int64) bool {
	for _, r := range s.recv {
		if r.ok.Load() < perReceiver && !r.dead.Load() {
			return false
		}
	}
	return true
}

// quiet is how long deliveries may stall before waitDelivered gives up
// early: messages the server never accepted (a sender it dropped) would
// otherwise hold the wait to its bound.
const quiet = 3 * time.Second

// waitDelivered waits until every receiver still connected has got
// perReceiver deliveries, or nothing arrived for quiet, or the bound
// passed.
func (s *swarm) waitDelivered(perReceiver int64, bound time.Duration) bool {
	deadline := time.Now().Add(bound)
	last, lastChange := s.delivered(), time.Now()
	for time.Now().Before(deadline) {
		if s.caughtUp(perReceiver) {
			return true
		}
		time.Sleep(5 * time.Millisecond)
		if n := s.delivered(); n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) > quiet {
			break
		}
	}
	return s.caughtUp(perReceiver)
}

// stop closes every connection and waits for the receivers.
func (s *swarm) stop(conns []*wsConn) {
	s.stopping.Store(true)
	closeAll(conns)
	s.wg.Wait()
}

// totals sums the receivers after stop.
func (s *swarm) totals() (ok, wrong, lastNs int64) {
	for _, r := range s.recv {
		ok += r.ok.Load()
		wrong += r.wrong.Load()
		lastNs = max(lastNs, r.last.Load())
	}
	return
}

// histogram merges the shards after stop.
func (s *swarm) histogram() *hdrhistogram.Histogram {
	h := hdrhistogram.New(1, histMaxUs, 3)
	for i := range s.hist {
		h.Merge(s.hist[i].h)
	}
	return h
}

// opened is what open hands fanout and storm.
type opened struct {
	conns    []*wsConn // nil where a dial failed
	senders  []*wsConn // the first open connections, to send from
	open     int64     // connections up once dialing ended
	dialTime time.Duration
}

// open is the opening fanout and storm share, as settle and addDeliveries
// are their ending: the progress line (status every second, until end),
// o.n connections (a -gzip-frac of them gzip-capable) from a dialer tagged
// with the run, the first senders of them to send from, and a deadline
// after bound on every socket, so that whatever happens nothing blocks past
// the run. end closes the connections and ends the progress line; defer it
// whatever open returns.
func (s *swarm) open(name string, senders int, bound time.Duration, status func() string) (op opened, end func(), err error) {
	o, l := s.o, s.live
	stopProgress := startProgress(o.progress, name, status)
	d := newDialer(o, fmt.Sprintf("%c%08x", name[0], s.run))
	op.conns, op.dialTime = dialAll(o, d, o.n, gzipFor(o.gzipFrac), l)
	end = func() {
		closeAll(op.conns)
		stopProgress()
	}
	for _, c := range op.conns {
		if c != nil && len(op.senders) < senders {
			op.senders = append(op.senders, c)
		}
	}
	if len(op.senders) < senders {
		return op, end, fmt.Errorf("only %d connections opened:%s", len(op.senders), l.errs.String())
	}
	op.open = l.conns.Load()
	setDeadlineAll(op.conns, time.Now().Add(bound))
	return op, end, nil
}

// settle waits until every receiver has perReceiver messages (or the wait
// gives up), closes the CPU window, stops the receivers and returns the
// final counts and the seconds from start to the last delivery.
func (s *swarm) settle(conns []*wsConn, cpu *cpuMeter, perReceiver, start int64, bound time.Duration) (got, wrong int64, secs float64, use cpuUse) {
	s.waitDelivered(perReceiver, bound)
	use = cpu.stop()
	_, _, lastNs := s.totals()
	s.stop(conns)
	got, wrong, lastNs2 := s.totals()
	lastNs = max(lastNs, lastNs2)
	return got, wrong, float64(lastNs-start) / 1e9, use
}

// addDeliveries adds the delivery figures fanout and storm share.
func (s *swarm) addDeliveries(r *Result, want, got, wrong int64, secs float64, use cpuUse) {
	r.add("deliveries expected", "", "", float64(want))
	r.add("deliveries received", "", "", float64(got))
	r.add("deliveries missing", "", "lower", float64(max(want-got, 0)))
	r.add("deliveries wrong", "", "lower", float64(wrong))
	if s.o.deflate {
		var z int64
		for _, rc := range s.recv {
			z += rc.okZ.Load()
		}
		r.add("deliveries compressed", "", "", float64(z))
	}
	r.add("connections lost", "", "lower", float64(s.dead.Load()))
	r.add("deliveries/s", "/s", "higher", ratio(float64(got), secs))
	r.addLatency("latency", s.histogram())
	r.addCPU(use)
	if use.server >= 0 {
		r.add("server cpu per 1M deliveries", "s", "lower", ratio(use.server, float64(got)/1e6))
	}
	r.add("client cpu per 1M deliveries", "s", "", ratio(use.client, float64(got)/1e6))
}
