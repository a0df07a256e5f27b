package session

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/codec"
)

// Limits applied when a socket is accepted, before it costs more than its
// file descriptor. Upgrades past MaxConns are refused with 503 once the
// request has been read, which a client sees cleanly; but every socket
// wsd holds (handshaking, open or closing) is an fd, so past MaxConns +
// acceptSlack sockets the oldest socket still in its handshake is dropped
// to make room for the newcomer, and only when none is handshaking is the
// newcomer answered 503 and closed at accept; the fds reserved beyond
// MaxConns stay free for the admin endpoint and logs. So sockets that
// connect and send nothing cannot keep newcomers out: each newcomer costs
// the oldest of them its place.
//
// Per source address (addrTable): MaxHandshakesPerIP caps the sockets one
// address holds before their upgrade (on by default, high enough for an
// office behind one NAT), MaxConnsPerIP, when set, caps all of them, and
// InboundSharePerIP caps what an address's partial messages and request
// heads hold of the inbound budget (budget.go).

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

// admitSocket books a new socket c on fd, or returns the refusal to answer
// it with: over its address's limits, or at the connection cap with no
// handshaking socket to drop instead.
func (h *Hub) admitSocket(fd int, c *Conn) error {
	if h.addrs != nil || h.addrRates != nil {
		// A peer with no IP address (a Unix socket handed to Accept) is
		// booked under the zero Addr: all such peers share one bucket.
		ip, _ := peerIP(fd)
		c.ip = toAddr16(ip)
	}
	if h.addrs != nil {
		if err := h.addrs.take(c.ip.addr()); err != nil {
			return err
		}
	}
	if h.cfg.MaxConns > 0 && h.live.Load() >= int64(h.cfg.MaxConns+acceptSlack) && !h.evictHandshake() {
		if h.addrs != nil {
			h.addrs.untake(c.ip.addr())
		}
		return errOverCapacity
	}
	if h.addrRates != nil {
		c.extension().addrRate = h.addrRates.join(c.ip.addr())
	}
	return nil
}

// leftHandshake books c's leaving the handshake state (upgraded, refused
// or closed); setState calls it.
func (h *Hub) leftHandshake(c *Conn) {
	h.handshakes.leave()
	if h.addrs != nil {
		h.addrs.handshakeDone(c.ip.addr())
	}
}

// releaseSocket returns a closed socket's per-address bookings.
func (h *Hub) releaseSocket(c *Conn) {
	if h.addrs != nil {
		h.addrs.done(c.ip.addr())
	}
	if x := c.ext; x != nil && x.addrRate != nil {
		h.addrRates.leave(c.ip.addr(), x.addrRate)
		x.addrRate = nil
	}
}

// evictHandshake drops the oldest socket still in its handshake, if any.
func (h *Hub) evictHandshake() bool {
	c := h.handshakes.oldest()
	if c == nil {
		return false
	}
	h.stats.HandshakesEvicted.Add(1)
	c.abort()
	return true
}

// peerIP is the socket's peer address. It reads getpeername(2) into a
// buffer on the stack: unix.Getpeername allocates its buffer and its
// result, 140 bytes of garbage for every connection accepted.
func peerIP(fd int) (netip.Addr, bool) {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	_, _, errno := unix.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)))
	if errno != 0 {
		return netip.Addr{}, false
	}
	switch rsa.Addr.Family {
	case unix.AF_INET:
		return netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa)).Addr), true
	case unix.AF_INET6:
		return netip.AddrFrom16((*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa)).Addr).Unmap(), true
	}
	return netip.Addr{}, false
}

// handshakeQueue holds the sockets in their handshake in accept order, so
// the oldest can be dropped at the connection cap. Sockets that leave the
// handshake stay queued until they reach the front or the queue is
// compacted (when it is more than twice what is handshaking): no field in
// Conn, and pushing costs an append.
type handshakeQueue struct {
	mu   sync.Mutex
	q    []*Conn
	head int
	n    int // sockets in stHandshake
}

// push queues c, which is entering its handshake; setState calls it.
func (q *handshakeQueue) push(c *Conn) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.n++
	if len(q.q) >= 2*q.n+1024 {
		// Keep only what is still handshaking: at least half goes, so
		// compaction costs O(1) a push.
		live := q.q[:0]
		for _, x := range q.q[q.head:] {
			if x.state.Load() == stHandshake {
				live = append(live, x)
			}
		}
		clear(q.q[len(live):])
		q.q, q.head = live, 0
	}
	q.q = append(q.q, c)
}

func (q *handshakeQueue) leave() {
	q.mu.Lock()
	q.n--
	q.mu.Unlock()
}

// oldest takes the oldest socket still handshaking off the queue, nil if
// there is none.
func (q *handshakeQueue) oldest() *Conn {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head < len(q.q) {
		c := q.q[q.head]
		q.q[q.head] = nil
		q.head++
		if c.state.Load() == stHandshake && !c.flags.has(flagKill) {
			return c
		}
	}
	q.q, q.head = q.q[:0], 0
	return nil
}

// addrTable counts, per source address, the sockets held, those still in
// their handshake and the inbound bytes they hold. Sharded by address so
// that charging input rarely waits for another worker.
type addrTable struct {
	maxConns      int32 // 0: no cap
	maxHandshakes int32 // 0: no cap
	maxHeld       int64 // 0: no cap
	shards        [addrShards]addrShard
}

const addrShards = 32

type addrShard struct {
	mu sync.Mutex
	m  map[netip.Addr]addrCount
}

type addrCount struct {
	conns, handshakes int32
	held              int64
}

// newAddrTable returns the table for cfg (after defaults), nil when no
// per-address limit is on.
func newAddrTable(cfg *Config) *addrTable {
	t := &addrTable{}
	if cfg.MaxConnsPerIP > 0 {
		t.maxConns = int32(min(cfg.MaxConnsPerIP, 1<<30))
	}
	if cfg.MaxHandshakesPerIP > 0 {
		t.maxHandshakes = int32(min(cfg.MaxHandshakesPerIP, 1<<30))
	}
	if s := cfg.InboundSharePerIP; s > 0 && s < 1 {
		// At least what one whole message may hold (a buffer grown by
		// append to MaxMessage), or an address could send none.
		t.maxHeld = max(int64(s*float64(cfg.InboundBudget)), 2*int64(cfg.MaxMessage))
	}
	if t.maxConns == 0 && t.maxHandshakes == 0 && t.maxHeld == 0 {
		return nil
	}
	for i := range t.shards {
		t.shards[i].m = make(map[netip.Addr]addrCount)
	}
	return t
}

func (t *addrTable) shard(a netip.Addr) *addrShard {
	b := a.As16()
	x := binary.LittleEndian.Uint64(b[:8]) ^ binary.LittleEndian.Uint64(b[8:])
	return &t.shards[(x*0x9E3779B97F4A7C15)>>59]
}

// update adds d to a's counts and returns them; an address with nothing
// left is forgotten. A delta, not a func over the counts: those would be
// moved to the heap, an allocation for every socket accepted and closed.
func (t *addrTable) update(a netip.Addr, d addrCount) addrCount {
	s := t.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.m[a]
	n.conns += d.conns
	n.handshakes += d.handshakes
	n.held += d.held
	if n == (addrCount{}) {
		delete(s.m, a)
	} else {
		s.m[a] = n
	}
	return n
}

// take books a new socket, in its handshake, from a, within the caps.
func (t *addrTable) take(a netip.Addr) error {
	s := t.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.m[a]
	switch {
	case t.maxConns > 0 && n.conns >= t.maxConns:
		return errPerIP
	case t.maxHandshakes > 0 && n.handshakes >= t.maxHandshakes:
		return errHandshakePerIP
	}
	n.conns++
	n.handshakes++
	s.m[a] = n
	return nil
}

// untake undoes take for a socket refused after all.
func (t *addrTable) untake(a netip.Addr) {
	t.update(a, addrCount{conns: -1, handshakes: -1})
}

func (t *addrTable) handshakeDone(a netip.Addr) {
	t.update(a, addrCount{handshakes: -1})
}

func (t *addrTable) done(a netip.Addr) {
	t.update(a, addrCount{conns: -1})
}

// addHeld adds delta to the inbound bytes a holds and returns the sum.
func (t *addrTable) addHeld(a netip.Addr, delta int64) int64 {
	return t.update(a, addrCount{held: delta}).held
}

// heldBy returns the inbound bytes a holds.
func (t *addrTable) heldBy(a netip.Addr) int64 {
	s := t.shard(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[a].held
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
	if r := c.rates; r != nil && h.deliveries.ahead(int64(r.deliveries), now) { // none: nothing owed
		return errDeliveryRateLimited
	}
	if e := c.addrRate(); e != nil && h.addrRates.limit.ahead(e.tat.Load(), now) {
		return errDeliveryRateLimitedIP
	}
	return nil
}

// chargeDeliveries books n deliveries of c's message to c and its address.
func (h *Hub) chargeDeliveries(c *Conn, now int64, n int) {
	h.deliveries.charge(&c.ratesOf().deliveries, now, n)
	if e := c.addrRate(); e != nil {
		h.addrRates.limit.chargeShared(&e.tat, now, n)
	}
}
