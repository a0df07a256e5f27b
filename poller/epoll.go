package poller

import (
	"errors"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// One epoll instance and its wait loop. An event carries its fd; the
// reactor's fd table (descTable) finds the Desc from it. So registering a
// socket costs the table's one pointer slot, not a map entry and a
// callback closure per socket.

// errRegistered is Add's error for an fd that is registered already.
var errRegistered = errors.New("fd already registered")

const (
	waitEventsMin = 1024  // events one epoll_wait returns at most, to start with
	waitEventsMax = 32768 // … and at most, after growing (doubled when a wait fills it)
)

// epoller is one epoll instance. Its eventfd, registered with it, wakes
// the wait loop to stop.
type epoller struct {
	fd, wake int
	descs    *descTable
	onError  func(error)
	mu       sync.RWMutex // closed, and fd's lifetime: ctl calls hold it shared
	closed   bool
	done     chan struct{} // the wait loop returned
}

func newEpoller(descs *descTable, onError func(error)) (*epoller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.EpollCtl(fd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		unix.Close(fd)
		unix.Close(wake)
		return nil, err
	}
	if onError == nil {
		onError = func(error) {}
	}
	ep := &epoller{fd: fd, wake: wake, descs: descs, onError: onError, done: make(chan struct{})}
	go ep.wait()
	return ep, nil
}

// add registers d's fd for events. d is in the table before epoll_ctl: its
// first event can arrive before this returns.
func (ep *epoller) add(d *Desc, events uint32) error {
	fd := int(d.fd)
	ep.mu.RLock()
	defer ep.mu.RUnlock()
	if ep.closed {
		return ErrClosed
	}
	if !ep.descs.put(fd, d) {
		return errRegistered
	}
	if err := unix.EpollCtl(ep.fd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)}); err != nil {
		ep.descs.clear(fd, d)
		return err
	}
	return nil
}

// del unregisters d's fd. After Close it does nothing: the epoll instance
// is gone, and its fd number may be another file's by now.
func (ep *epoller) del(d *Desc) error {
	fd := int(d.fd)
	ep.mu.RLock()
	defer ep.mu.RUnlock()
	ep.descs.clear(fd, d)
	if ep.closed {
		return nil
	}
	return unix.EpollCtl(ep.fd, unix.EPOLL_CTL_DEL, fd, nil)
}

// close stops the wait loop and closes the instance.
func (ep *epoller) close() {
	ep.mu.Lock()
	if ep.closed {
		ep.mu.Unlock()
		return
	}
	ep.closed = true
	one := [8]byte{1}
	_, err := unix.Write(ep.wake, one[:])
	ep.mu.Unlock()
	if err == nil {
		<-ep.done
	}
	ep.mu.Lock()
	unix.Close(ep.fd)
	unix.Close(ep.wake)
	ep.mu.Unlock()
}

// wait hands every event to its Desc until close wakes it.
func (ep *epoller) wait() {
	defer close(ep.done)
	events := make([]unix.EpollEvent, waitEventsMin)
	for {
		n, err := unix.EpollWait(ep.fd, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			ep.onError(err)
			return
		}
		for i := range events[:n] {
			fd := int(events[i].Fd)
			if fd == ep.wake {
				return
			}
			if d := ep.descs.get(fd); d != nil {
				d.onEpoll(events[i].Events)
			}
		}
		if n == len(events) && 2*n <= waitEventsMax {
			events = make([]unix.EpollEvent, 2*n)
		}
	}
}

// descTable maps a registered fd to its Desc: chunks of descChunkSize slots,
// made as fds reach them, read without a lock. fds are small and dense
// (the kernel hands out the lowest free one), so its size follows the
// highest fd open at once: 8 bytes a socket.
type descTable struct {
	mu     sync.Mutex // growing
	chunks atomic.Pointer[[]*descChunk]
}

const descChunkSize = 1024

type descChunk struct {
	s [descChunkSize]atomic.Pointer[Desc]
}

func (t *descTable) slot(fd int, grow bool) *atomic.Pointer[Desc] {
	if fd < 0 {
		return nil
	}
	ci, i := fd/descChunkSize, fd%descChunkSize
	if p := t.chunks.Load(); p != nil && ci < len(*p) && (*p)[ci] != nil {
		return &(*p)[ci].s[i]
	}
	if !grow {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var old []*descChunk
	if p := t.chunks.Load(); p != nil {
		old = *p
	}
	if ci < len(old) && old[ci] != nil {
		return &old[ci].s[i]
	}
	// Copy on write: readers keep the slice they loaded, whose chunks
	// are the same ones.
	next := make([]*descChunk, max(len(old), ci+1))
	copy(next, old)
	next[ci] = new(descChunk)
	t.chunks.Store(&next)
	return &next[ci].s[i]
}

// put makes d fd's Desc, unless fd has one.
func (t *descTable) put(fd int, d *Desc) bool {
	s := t.slot(fd, true)
	return s != nil && s.CompareAndSwap(nil, d)
}

// clear takes d out of fd's slot, if it is there still.
func (t *descTable) clear(fd int, d *Desc) {
	if s := t.slot(fd, false); s != nil {
		s.CompareAndSwap(d, nil)
	}
}

// get returns fd's Desc, nil if none.
func (t *descTable) get(fd int) *Desc {
	if s := t.slot(fd, false); s != nil {
		return s.Load()
	}
	return nil
}
