// The hostile scenario's honest clients: two peers (one plain, one gzip)
// chatting in the attacked room or beside it, every message checked and
// timed.

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"
)

// honestPeer is one of the two honest clients.
type honestPeer struct {
	c    *wsConn
	id   uint16
	sent atomic.Int64
	got  [2]atomic.Int64 // honest messages received, by sender
	// first is, by sender, the first sequence number received (-1: none
	// yet): what a sender sent before is not expected (a server may
	// register a client only after its handshake's response).
	first  [2]atomic.Int64
	ended  atomic.Pointer[string]
	mu     sync.Mutex
	hist   *hdrhistogram.Histogram // latency of every honest delivery, µs
	closed bool                    // closed by the bench: a read error is no harm
}

// chatRoom is the two honest clients of one attack.
type chatRoom struct {
	hr    *hostileRun
	peers [2]*honestPeer
	stop  chan struct{}
	wg    sync.WaitGroup // senders
	rwg   sync.WaitGroup // readers
}

// startChat dials the two honest clients into room (the second one with
// gzip) from the src addresses and waits until each has the other's first
// message.
func (hr *hostileRun) startChat(room string, src []string) (*chatRoom, error) {
	d := newDialer(hr.o, fmt.Sprintf("%s%08x-%s", honestPrefix, hr.run, room))
	d.room, d.readBuf, d.src = room, 64<<10, tcpAddrs(src)
	ch := &chatRoom{hr: hr, stop: make(chan struct{})}
	for i := range ch.peers {
		c, err := d.dial(i, i == 1)
		if err != nil {
			ch.close()
			return nil, fmt.Errorf("honest client: %w", err)
		}
		c.SetDeadline(time.Now().Add(honestBound + hr.o.timeout + hr.o.duration))
		p := &honestPeer{c: c, id: uint16(i), hist: hdrhistogram.New(1, maxHonestLat, 3)}
		p.first[0].Store(-1)
		p.first[1].Store(-1)
		ch.peers[i] = p
		ch.rwg.Add(1)
		go ch.read(p)
	}
	for _, p := range ch.peers {
		ch.wg.Add(1)
		go ch.send(p)
	}
	for deadline := time.Now().Add(warmBound); !ch.allGot(1); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) || ch.anyEnded() {
			ch.close()
			return nil, errors.New("honest clients: no exchange before the attack")
		}
	}
	return ch, nil
}

func (ch *chatRoom) send(p *honestPeer) {
	defer ch.wg.Done()
	buf := make([]byte, honestSize)
	t := time.NewTicker(honestEvery)
	defer t.Stop()
	for seq := uint32(0); ; seq++ {
		fillPayload(buf, ch.hr.run, p.id, seq, int64(time.Since(ch.hr.epoch)))
		if err := p.c.writeFrame(ws.OpText, buf); err != nil {
			return
		}
		p.sent.Add(1)
		select {
		case <-ch.stop:
			return
		case <-t.C:
		}
	}
}

// read takes everything the server sends p; honest messages are counted
// and timed, the attack's traffic skipped (a gzip frame is gunzipped only
// when its trailer says it inflates to an honest message's size).
func (ch *chatRoom) read(p *honestPeer) {
	defer ch.rwg.Done()
	run := ch.hr.run
	for {
		op, m, err := p.c.readMessage(nil)
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if !closed {
				kind := errKind(err)
				p.ended.Store(&kind)
			}
			return
		}
		var d decoded
		switch {
		case op == ws.OpText && len(m) == honestSize:
			d = parsePayload(m, run, honestSize)
		case op == ws.OpBinary && len(m) <= smallGzip && len(m) > gzipTrailer &&
			binary.LittleEndian.Uint32(m[len(m)-4:]) == honestSize:
			d = gunzipCheck(m, run, honestSize)
		}
		if !d.ok || d.sender > 1 {
			continue
		}
		lat := (int64(time.Since(ch.hr.epoch)) - d.ts) / 1000
		p.first[d.sender].CompareAndSwap(-1, int64(d.seq))
		p.got[d.sender].Add(1)
		ch.hr.honestOK.Add(1)
		p.mu.Lock()
		p.hist.RecordValue(min(max(lat, 1), maxHonestLat))
		p.mu.Unlock()
	}
}

// expected is how many of sender s's messages p should have: all it sent
// from the first one p received.
func (ch *chatRoom) expected(p *honestPeer, s int) int64 {
	return ch.peers[s].sent.Load() - max(p.first[s].Load(), 0)
}

// allGot tells whether each peer has n messages from each sender (n < 0:
// all that were expected).
func (ch *chatRoom) allGot(n int64) bool {
	for _, p := range ch.peers {
		for s := range ch.peers {
			want := n
			if n < 0 {
				want = ch.expected(p, s)
			}
			if p.got[s].Load() < want && p.ended.Load() == nil {
				return false
			}
		}
	}
	return true
}

func (ch *chatRoom) anyEnded() bool {
	for _, p := range ch.peers {
		if p != nil && p.ended.Load() != nil {
			return true
		}
	}
	return false
}

// finish stops the senders, waits (boundedly) for their last messages and
// fills in the honest figures of a.
func (ch *chatRoom) finish(a *attackOutcome) {
	close(ch.stop)
	ch.wg.Wait()
	deadline := time.Now().Add(honestGrace)
	for !ch.allGot(-1) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	a.lat = hdrhistogram.New(1, maxHonestLat, 3)
	for _, p := range ch.peers {
		a.honestSent += p.sent.Load()
	}
	for _, p := range ch.peers {
		a.honestWant += ch.expected(p, 0) + ch.expected(p, 1)
		a.honestGot += p.got[0].Load() + p.got[1].Load()
		if e := p.ended.Load(); e != nil {
			a.honestClosed = append(a.honestClosed, *e)
		}
		p.mu.Lock()
		a.lat.Merge(p.hist)
		p.mu.Unlock()
	}
	ch.close()
}

// close closes both clients and waits for their readers.
func (ch *chatRoom) close() {
	for _, p := range ch.peers {
		if p != nil {
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			p.c.Close()
		}
	}
	ch.rwg.Wait()
}
