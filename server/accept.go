package server

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/poller"
)

// acceptor accepts connections when the listening socket is readable. It
// runs on a worker like any other socket handler.
type acceptor struct {
	desc poller.Desc
	srv  *Server

	mu      sync.Mutex // guards lfd against Close during OnReady
	lfd     int
	closed  bool
	backoff time.Duration // current EMFILE back-off; 0 when accepting normally

	errors atomic.Uint64 // accept failures other than EAGAIN
}

// acceptBudget bounds the accepts one run does before yielding the worker.
const acceptBudget = 256

const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// OnReady implements poller.Handler.
func (a *acceptor) OnReady(poller.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	hub := a.srv.hub
	for i := 0; i < acceptBudget; i++ {
		// accept4 without asking for the peer address: nothing to allocate.
		r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(a.lfd), 0, 0,
			unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		switch e {
		case 0:
		case unix.EAGAIN:
			a.backoff = 0
			return
		case unix.EINTR, unix.ECONNABORTED, unix.EPROTO:
			continue
		default:
			// EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connections stay
			// in the backlog. Retry later instead of spinning on an edge
			// that will not fire again; existing connections are untouched.
			a.errors.Add(1)
			if a.backoff == 0 {
				a.backoff = minAcceptBackoff
				a.srv.log.Warn("accept failing, backing off", "err", e.Error())
			} else {
				a.backoff = min(2*a.backoff, maxAcceptBackoff)
			}
			time.AfterFunc(a.backoff, func() { a.desc.Notify(poller.Readable) })
			return
		}
		fd := int(r)
		a.backoff = 0
		// Frames are written whole; do not let Nagle hold them back.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if err := hub.Accept(fd); err != nil {
			unix.Close(fd)
			a.errors.Add(1)
		}
	}
	a.desc.Notify(poller.Readable)
}

// close stops accepting and closes the listening socket.
func (a *acceptor) close(r *poller.Reactor) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.closed = true
	_ = r.Remove(&a.desc)
	unix.Close(a.lfd)
}
