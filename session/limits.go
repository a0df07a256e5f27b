package session

import (
	"net/netip"
	"sync"
	"sync/atomic"

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

// sourceAddr reads fd's source address.
func sourceAddr(fd int) (netip.Addr, bool) {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return netip.Addr{}, false
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr), true
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr).Unmap(), true
	}
	return netip.Addr{}, false
}

// bookAddr books a freshly accepted c with the limits kept per source
// address, when any is set: it returns errPerIP if the address holds
// MaxConnsPerIP sockets already (or cannot be read while that cap is on).
func (h *Hub) bookAddr(c *Conn, fd int) error {
	if h.perIP == nil && h.addrRates == nil {
		return nil
	}
	addr, ok := sourceAddr(fd)
	if !ok {
		if h.perIP != nil {
			return errPerIP
		}
		return nil // no address, no per-address delivery limit
	}
	if h.perIP != nil && !h.perIP.take(addr) {
		return errPerIP
	}
	c.ip = addr
	if h.addrRates != nil {
		c.addrRate = h.addrRates.join(addr)
	}
	return nil
}

// releaseAddr returns what bookAddr booked, once c's socket is closed.
func (h *Hub) releaseAddr(c *Conn) {
	if !c.ip.IsValid() {
		return
	}
	if h.perIP != nil {
		h.perIP.done(c.ip)
	}
	if c.addrRate != nil {
		h.addrRates.leave(c.ip, c.addrRate)
		c.addrRate = nil
	}
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

// take books one socket from addr, or reports false if the address is at
// its limit.
func (p *perIP) take(addr netip.Addr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[addr] >= p.limit {
		return false
	}
	p.n[addr]++
	return true
}

// done returns a socket's booking.
func (p *perIP) done(addr netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[addr]--; p.n[addr] <= 0 {
		delete(p.n, addr)
	}
}

// Delivery limits. What a message costs wsd is its deliveries: a message
// to a room of N members is queued N times and written N times, so the
// rate limits on messages and bytes alone let a sender within them make
// the fan-out do 10,000 times its rate into a big room. A connection's
// messages are charged the members each was queued for on this box
// (Delivery.Local), against MaxDeliveryRate per connection and, when set,
// MaxDeliveryRatePerIP for all the connections of its source address. The
// cost is known only once the message is queued, so the limit is checked
// before a message and booked after it: the message that crosses it goes
// out, the next one closes its sender with 1008. A burst of one second's
// worth is allowed on top of the rate; one message to a room larger than
// that passes too and is owed, so a connection in a huge room may send
// as fast as the room's size allows, not faster.

// deliveryBurst is the burst of a delivery limit of perSecond: one second.
func deliveryBurst(perSecond float64) float64 { return perSecond }

// addrRates is the delivery rate state of each source address with a
// socket open, and only those: an entry is made by the first socket from
// an address and dropped with its last, so the table is bounded by the
// connections, not by the addresses ever seen.
type addrRates struct {
	limit rateLimit
	mu    sync.Mutex
	m     map[netip.Addr]*addrRate
}

// addrRate is one address's entry.
type addrRate struct {
	conns int          // its sockets; guarded by addrRates.mu
	tat   atomic.Int64 // the GCRA state its connections share (ratelimit.go)
}

// newAddrRates returns the table for a per-address delivery limit of
// perSecond, nil when there is none.
func newAddrRates(perSecond float64) *addrRates {
	if perSecond <= 0 {
		return nil
	}
	return &addrRates{
		limit: newRateLimit(perSecond, deliveryBurst(perSecond)),
		m:     make(map[netip.Addr]*addrRate),
	}
}

func (a *addrRates) join(addr netip.Addr) *addrRate {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.m[addr]
	if e == nil {
		e = &addrRate{}
		a.m[addr] = e
	}
	e.conns++
	return e
}

func (a *addrRates) leave(addr netip.Addr, e *addrRate) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.conns--; e.conns <= 0 && a.m[addr] == e {
		delete(a.m, addr)
	}
}

// len reports how many addresses the table holds.
func (a *addrRates) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.m)
}

// deliveryAllowed reports, before c's next message, whether c and its
// address are within their delivery limits, and the close if not.
func (h *Hub) deliveryAllowed(c *Conn, now int64) *codec.CloseError {
	if h.deliveries.ahead(int64(c.deliveries), now) {
		return errDeliveryRateLimited
	}
	if e := c.addrRate; e != nil && h.addrRates.limit.ahead(e.tat.Load(), now) {
		return errDeliveryRateLimitedIP
	}
	return nil
}

// chargeDeliveries books n deliveries of c's message to c and its address.
func (h *Hub) chargeDeliveries(c *Conn, now int64, n int) {
	h.deliveries.charge(&c.deliveries, now, n)
	if e := c.addrRate; e != nil {
		h.addrRates.limit.chargeShared(&e.tat, now, n)
	}
}
