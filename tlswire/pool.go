package tlswire

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pool runs handshakes. At most Max run at once, each on its own
// short-lived goroutine; more wait in a queue without one. Of those
// running, at most Parallel do cryptographic work at a time (cpuSlots): a
// handshake waiting for its client's next flight gives its slot back.
//
// Fairness when full. A handshake waiting for its client (parked: the
// server's flight is sent, the client's Finished is not in) costs a
// goroutine and nothing else, so the pool's scarce thing is its Max
// goroutines, and a client that sends a ClientHello and stalls holds one
// until the owner's handshake timeout. Enough such clients, reopening as
// they are dropped, would keep the pool full and the queue behind it
// long, and an honest handshake would wait for seconds behind them. So:
//
//   - When a handshake has to queue, the handshake parked longest gives
//     way to it, provided it has been parked at least StallGrace: an early
//     deadline for the ClientHello-to-Finished phase that applies only
//     while the pool is full, like a production edge's short client-hello
//     timeout under load. The order is by time parked, not by address, so
//     it holds when attackers and honest clients share an address (a NAT,
//     loopback); per-address caps on sockets are the accept path's.
//   - The one that gave way fails with ErrStalled but its owner need not
//     close it (session keeps the socket, without goroutine or buffers,
//     until its handshake timeout): a stalled client dropped at once would
//     reconnect at once, and each reconnection costs a full handshake of
//     CPU, so dropping would turn a goroutine attack into a CPU one.
//   - The queue is FIFO until its oldest has waited StallGrace, then
//     newest first (adaptive LIFO): a handshake that arrives while a wave
//     of stalled clients is queued is served before the wave, and each
//     waiter is still bounded by its owner's handshake timeout.
//
// An honest client parks for one round trip; to be evicted it must be the
// oldest of Max parked handshakes, so Max newer ones must have reached the
// server's flight during that round trip, which the CPU cost of a
// handshake bounds (~1,700 handshakes/s per core): with the default Max on
// two cores, a round trip under ~300 ms is never cut.
type Pool struct {
	cpu        cpuSlots
	mu         sync.Mutex
	running    int
	max        int
	queue      []*Conn
	grace      time.Duration
	epoch      time.Time
	oldest     *Conn // the parked handshakes, oldest first (Conn.prev/next)
	newest     *Conn
	parked     int
	evicting   int // evicted handshakes whose goroutine has not finished yet
	timer      *time.Timer
	timerSet   bool
	Handshakes atomic.Uint64
	// Stalled counts handshakes that gave way to a queued one (see above).
	Stalled atomic.Uint64
}

// DefaultMaxHandshakes bounds the handshake goroutines of a default Pool.
const DefaultMaxHandshakes = 1024

// StallGrace is how long a handshake may wait for its client before a
// queued handshake can take its goroutine, and how long the queue is
// served in order. It is longer than the round trip of nearly every
// client; the owner's handshake timeout (seconds) still applies while
// the pool has room.
const StallGrace = 250 * time.Millisecond

// ErrStalled is the handshake error of a client that left the handshake
// waiting for its next flight for at least StallGrace while the pool was
// full and others waited.
var ErrStalled = errors.New("tlswire: handshake stalled while others waited")

// NewPool returns a Pool. parallel ≤ 0 means GOMAXPROCS, max ≤ 0
// DefaultMaxHandshakes.
func NewPool(parallel, max int) *Pool {
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	if max <= 0 {
		max = DefaultMaxHandshakes
	}
	return &Pool{cpu: cpuSlots{free: parallel}, max: max, grace: StallGrace, epoch: time.Now()}
}

// Max reports how many handshakes may run at once.
func (p *Pool) Max() int { return p.max }

// Running reports the handshakes on a goroutine now.
func (p *Pool) Running() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// Waiting reports the handshakes queued for a goroutine.
func (p *Pool) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// Parked reports the running handshakes that wait for their client.
func (p *Pool) Parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.parked
}

func (p *Pool) start(c *Conn) {
	p.mu.Lock()
	if p.running >= p.max {
		c.queuedAt = time.Since(p.epoch)
		p.queue = append(p.queue, c)
		p.evictLocked()
		p.mu.Unlock()
		return
	}
	p.running++
	p.mu.Unlock()
	go c.handshake()
}

// evictLocked makes parked handshakes older than the grace give way, one
// for each queued handshake no eviction is on its way for yet. If that
// leaves some queued, a timer tries again when the oldest parked one
// reaches the grace (nothing else may happen until then).
func (p *Pool) evictLocked() {
	now := time.Since(p.epoch)
	defer func() {
		if p.evicting < len(p.queue) && p.oldest != nil && !p.timerSet {
			p.timerSet = true
			d := p.oldest.parkedAt + p.grace - now
			if p.timer == nil {
				p.timer = time.AfterFunc(d, p.retry)
			} else {
				p.timer.Reset(d)
			}
		}
	}()
	for p.evicting < len(p.queue) && p.oldest != nil && now-p.oldest.parkedAt >= p.grace {
		v := p.oldest
		p.unlinkLocked(v)
		v.evicted = true
		p.evicting++
		p.Stalled.Add(1)
		select { // it wakes, sees evicted, and fails its handshake
		case v.sig <- struct{}{}:
		default:
		}
	}
}

func (p *Pool) retry() {
	p.mu.Lock()
	p.timerSet = false
	p.evictLocked()
	p.mu.Unlock()
}

// finish runs when c's handshake goroutine is done: the next queued
// handshake takes the goroutine over. Queued handshakes whose connection
// closed meanwhile are told so without one.
func (p *Pool) finish(c *Conn) {
	p.mu.Lock()
	if c.evicted {
		p.evicting--
	}
	for len(p.queue) > 0 {
		var next *Conn
		if time.Since(p.epoch)-p.queue[0].queuedAt <= p.grace {
			next = p.queue[0]
			p.queue[0] = nil
			p.queue = p.queue[1:]
		} else { // overloaded: newest first (see Pool)
			next = p.queue[len(p.queue)-1]
			p.queue[len(p.queue)-1] = nil
			p.queue = p.queue[:len(p.queue)-1]
		}
		if next.phase.Load() == phaseClosed {
			p.mu.Unlock()
			next.owner.TLSHandshakeDone(net.ErrClosed)
			p.mu.Lock()
			continue
		}
		p.mu.Unlock()
		go next.handshake()
		return
	}
	p.running--
	p.queue = nil
	p.mu.Unlock()
}

// park records that c waits for its client; unpark that it stopped
// waiting, and reports whether it was evicted meanwhile.
func (p *Pool) park(c *Conn) {
	p.mu.Lock()
	c.parkedAt = time.Since(p.epoch)
	c.prev, c.next = p.newest, nil
	if p.newest != nil {
		p.newest.next = c
	} else {
		p.oldest = c
	}
	p.newest = c
	c.parked = true
	p.parked++
	if len(p.queue) > p.evicting { // a handshake queued while none was old enough
		p.evictLocked()
	}
	p.mu.Unlock()
}

func (p *Pool) unpark(c *Conn) (evicted bool) {
	p.mu.Lock()
	if c.parked {
		p.unlinkLocked(c)
	}
	evicted = c.evicted
	p.mu.Unlock()
	return evicted
}

func (p *Pool) unlinkLocked(c *Conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		p.oldest = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		p.newest = c.prev
	}
	c.prev, c.next, c.parked = nil, nil, false
	p.parked--
}

// CPU slots. A handshake takes one to start (fresh) and one each time
// its client's next flight wakes it (resuming). Resuming handshakes go
// first, in order: they are the ones with a client still talking, and a
// stalled client never resumes. Fresh ones go newest first: a burst of
// handshakes (stalled clients dropped at their timeout together and all
// reconnecting) is CPU work that must be done anyway, and a handshake
// that arrives once the burst is queued is served before the burst
// rather than after all of it, as with adaptive LIFO; each waiter is still
// bounded by its owner's handshake timeout.
type cpuSlots struct {
	mu     sync.Mutex
	free   int
	resume []chan struct{} // FIFO
	fresh  []chan struct{} // LIFO
}

func (p *Pool) busy(c *Conn, resuming bool) {
	s := &p.cpu
	s.mu.Lock()
	if s.free > 0 {
		s.free--
		s.mu.Unlock()
		return
	}
	if c.cpuWait == nil {
		c.cpuWait = make(chan struct{}, 1)
	}
	if resuming {
		s.resume = append(s.resume, c.cpuWait)
	} else {
		s.fresh = append(s.fresh, c.cpuWait)
	}
	s.mu.Unlock()
	<-c.cpuWait // the slot is handed over by idle
}

func (p *Pool) idle() {
	s := &p.cpu
	s.mu.Lock()
	var next chan struct{}
	switch {
	case len(s.resume) > 0:
		next = s.resume[0]
		s.resume[0] = nil
		s.resume = s.resume[1:]
		if len(s.resume) == 0 {
			s.resume = nil
		}
	case len(s.fresh) > 0:
		next = s.fresh[len(s.fresh)-1]
		s.fresh[len(s.fresh)-1] = nil
		s.fresh = s.fresh[:len(s.fresh)-1]
	default:
		s.free++
	}
	s.mu.Unlock()
	if next != nil {
		next <- struct{}{}
	}
}
