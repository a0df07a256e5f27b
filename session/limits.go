package session

import (
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/codec"
)

// Limits applied when a socket is accepted, before it costs more than its
// file descriptor. Upgrades past MaxConns are refused with 503 once the
// request has been read, which a client sees cleanly; but every socket
// wsd holds (handshaking, open or closing) is an fd, so past MaxConns +
// acceptSlack sockets are answered and closed at accept, and the fds
// reserved beyond MaxConns stay free for the admin endpoint and logs.
// MaxConnsPerIP, when set, caps what one source address may hold.

// acceptSlack is how many sockets past MaxConns may wait for their 503.
const acceptSlack = 64

// refuseAtAccept answers a socket the Hub will not take with err's HTTP
// response, best effort (a new socket's send buffer is empty), and closes it.
func (h *Hub) refuseAtAccept(fd int, err error) {
	h.stats.countHandshakeFailure(codec.StatusOf(err))
	if h.cfg.TLS == nil { // a wss client would read the answer as a bad record
		resp := newOwnFrame(func(b []byte) []byte { return codec.AppendRejection(b, err) })
		_, _ = unix.Write(fd, resp.b)
		resp.release()
	}
	_ = unix.Shutdown(fd, unix.SHUT_WR)
	_ = unix.Close(fd)
}

// perIP counts sockets by source address. It exists only when
// MaxConnsPerIP is set: behind a proxy every client shares one address.
type perIP struct {
	limit int
	mu    sync.Mutex
	n     map[netip.Addr]int
}

func newPerIP(limit int) *perIP {
	if limit <= 0 {
		return nil
	}
	return &perIP{limit: limit, n: make(map[netip.Addr]int)}
}

// take books one socket from fd's peer address, or reports false if the
// address is at its limit (or cannot be read).
func (p *perIP) take(fd int) (netip.Addr, bool) {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return netip.Addr{}, false
	}
	var addr netip.Addr
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		addr = netip.AddrFrom4(a.Addr)
	case *unix.SockaddrInet6:
		addr = netip.AddrFrom16(a.Addr).Unmap()
	default:
		return netip.Addr{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[addr] >= p.limit {
		return addr, false
	}
	p.n[addr]++
	return addr, true
}

// done returns a socket's booking.
func (p *perIP) done(addr netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[addr]--; p.n[addr] <= 0 {
		delete(p.n, addr)
	}
}
