package tlswire

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Pool runs handshakes. At most Max run at once, each on its own
// short-lived goroutine; more wait in a FIFO without one. Of those
// running, at most Parallel do cryptographic work at a time: a handshake
// waiting for its client's next flight gives its slot back.
type Pool struct {
	cpu     chan struct{}
	mu      sync.Mutex
	running int
	max     int
	queue   []*Conn

	// Handshakes counts handshakes started on a goroutine.
	Handshakes atomic.Uint64
}

// DefaultMaxHandshakes bounds the handshake goroutines of a default Pool.
const DefaultMaxHandshakes = 1024

// NewPool returns a Pool. parallel ≤ 0 means GOMAXPROCS, max ≤ 0
// DefaultMaxHandshakes.
func NewPool(parallel, max int) *Pool {
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	if max <= 0 {
		max = DefaultMaxHandshakes
	}
	return &Pool{cpu: make(chan struct{}, parallel), max: max}
}

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

func (p *Pool) start(c *Conn) {
	p.mu.Lock()
	if p.running >= p.max {
		p.queue = append(p.queue, c)
		p.mu.Unlock()
		return
	}
	p.running++
	p.mu.Unlock()
	go c.handshake()
}

// finish runs when a handshake goroutine is done: the next queued
// handshake takes it over.
func (p *Pool) finish() {
	p.mu.Lock()
	if len(p.queue) == 0 {
		p.running--
		p.queue = nil
		p.mu.Unlock()
		return
	}
	c := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	p.mu.Unlock()
	go c.handshake()
}

func (p *Pool) busy() { p.cpu <- struct{}{} }
func (p *Pool) idle() { <-p.cpu }
