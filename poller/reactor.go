package poller

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mailru/easygo/netpoll"
)

// Event is a set of readiness conditions delivered to a Handler.
type Event uint32

// Readiness conditions. Hang-ups and socket errors are reported as Readable:
// the read that follows returns EOF or the error, which is where a
// connection learns how it ended.
const (
	Readable Event = 1 << iota
	Writable
)

// Handler reacts to readiness of a registered socket. OnReady runs on a
// worker and never concurrently with itself for the same Desc.
type Handler interface {
	OnReady(ev Event)
}

// Desc is the reactor's per-socket state; embed it in the connection. It
// is part of what every connection costs, so it is 40 bytes with no
// padding: the fd's epoll instance is found from the fd, not kept.
type Desc struct {
	h         Handler
	r         *Reactor
	fd        int32
	pending   atomic.Uint32 // Events not yet handed to the Handler
	scheduled atomic.Bool   // queued or running
	added     bool          // registered with epoll (Add, until Remove)
}

// Fd returns the registered file descriptor.
func (d *Desc) Fd() int { return int(d.fd) }

// epoll is the epoll instance that watches fd.
func (r *Reactor) epoll(fd int) *netpoll.Epoll { return r.eps[fd%len(r.eps)] }

// Notify asks for the Handler to run with ev, as if epoll had reported it.
// Use it to resume work a Handler left undone (a read budget spent) or to
// retry later (accept after EMFILE).
func (d *Desc) Notify(ev Event) {
	d.pending.Or(uint32(ev))
	if d.scheduled.CompareAndSwap(false, true) {
		d.r.q.push(d, true)
	}
}

// Run implements Task: hand pending events to the Handler until none are left.
func (d *Desc) Run() {
	for {
		if ev := Event(d.pending.Swap(0)); ev != 0 {
			d.h.OnReady(ev)
		}
		d.scheduled.Store(false)
		// An event that arrived after the Swap and saw scheduled == true
		// did not queue us; take it now unless a fresh Notify already did.
		if d.pending.Load() == 0 || !d.scheduled.CompareAndSwap(false, true) {
			return
		}
	}
}

func (d *Desc) onEpoll(ev netpoll.EpollEvent) {
	var e Event
	if ev&(netpoll.EPOLLIN|netpoll.EPOLLRDHUP|netpoll.EPOLLHUP|netpoll.EPOLLERR) != 0 {
		e |= Readable
	}
	if ev&netpoll.EPOLLOUT != 0 {
		e |= Writable
	}
	if e != 0 {
		d.Notify(e)
	}
}

// Config sizes a Reactor.
type Config struct {
	// Pollers is the number of epoll instances (each has one goroutine
	// blocked in epoll_wait). Default 1: one epoll_wait keeps up with far
	// more events than the workers can process on small boxes.
	Pollers int
	// Workers is the number of goroutines running Handlers and Tasks.
	// Default GOMAXPROCS: workers never block, so more only adds switching.
	Workers int
	// OnError reports epoll_wait failures.
	OnError func(error)
}

// Reactor owns the epoll instances and the worker pool.
type Reactor struct {
	eps     []*netpoll.Epoll
	q       *runQueue
	wg      sync.WaitGroup
	workers int
	closed  atomic.Bool
}

// New starts a Reactor.
func New(cfg Config) (*Reactor, error) {
	if cfg.Pollers <= 0 {
		cfg.Pollers = 1
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	r := &Reactor{q: newRunQueue(), workers: cfg.Workers}
	for i := 0; i < cfg.Pollers; i++ {
		ep, err := netpoll.EpollCreate(&netpoll.EpollConfig{OnWaitError: cfg.OnError})
		if err != nil {
			for _, e := range r.eps {
				e.Close()
			}
			return nil, fmt.Errorf("poller: epoll_create: %w", err)
		}
		r.eps = append(r.eps, ep)
	}
	r.wg.Add(cfg.Workers)
	for i := 0; i < cfg.Workers; i++ {
		go r.work()
	}
	return r, nil
}

func (r *Reactor) work() {
	defer r.wg.Done()
	for t := r.q.pop(); t != nil; t = r.q.pop() {
		t.Run()
	}
}

// Add registers fd (which must be non-blocking) for edge-triggered input,
// output and hang-up notifications delivered to h through d. If the socket
// is already readable or writable, the first events arrive right away.
func (r *Reactor) Add(d *Desc, fd int, h Handler) error {
	if r.closed.Load() {
		return ErrClosed
	}
	// added is set first: the first event may run the Handler, and its
	// Remove, before Add returns.
	d.fd, d.h, d.r, d.added = int32(fd), h, r, true
	const events = netpoll.EPOLLIN | netpoll.EPOLLOUT | netpoll.EPOLLRDHUP | netpoll.EPOLLET
	if err := r.epoll(fd).Add(fd, events, d.onEpoll); err != nil {
		d.added = false
		return fmt.Errorf("poller: epoll_ctl add fd %d: %w", fd, err)
	}
	return nil
}

// Remove unregisters d; call it before closing the fd so a recycled fd
// number can be registered again. Events already collected may still reach
// the Handler afterwards; it must ignore them once its socket is closed.
func (r *Reactor) Remove(d *Desc) error {
	if !d.added {
		return nil
	}
	err := r.epoll(d.Fd()).Del(d.Fd())
	d.added = false
	if errors.Is(err, netpoll.ErrClosed) {
		return nil
	}
	return err
}

// Submit queues t to run on a worker, after pending socket readiness.
func (r *Reactor) Submit(t Task) { r.q.push(t, false) }

// Workers reports the size of the worker pool.
func (r *Reactor) Workers() int { return r.workers }

// Close stops the epoll instances, lets the workers finish what is queued
// and waits for them.
func (r *Reactor) Close() {
	if !r.closed.CompareAndSwap(false, true) {
		return
	}
	for _, ep := range r.eps {
		ep.Close()
	}
	r.q.close()
	r.wg.Wait()
}

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("poller: reactor closed")
