package session

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/wsd-chat/wsd/codec"
)

// The memory model. Every byte wsd holds because of what a client did is
// charged to one of two budgets the operator sets, by what it really costs:
//
//   - Inbound (Config.InboundBudget): partly arrived messages and control
//     frames (the stream's buffers, by capacity) and incomplete request
//     heads. A connection that needs more while the budget is spent is
//     closed at once with 1013 (try again later); everyone else's messages
//     that arrive whole in one read need no buffer and keep flowing. A
//     message that takes longer than Config.MessageTimeout to arrive is
//     closed with 1008, so a slowloris cannot sit on the budget.
//   - Outbound (Config.OutboundBudget): every live broadcast's frames
//     (counted once, however many queues share them), every queued item,
//     and every frame a connection owns (control frames, responses). A
//     connection whose own charge passes Config.MaxQueue is a slow consumer
//     (1008); when the sum passes the budget, the largest consumers are
//     closed first until it is back under. Broadcasts waiting for a shard's
//     fan-out are charged too (the outbox slots, by capacity), and a message that
//     arrives while the budget is spent closes its sender with 1013: a
//     sender faster than the fan-out cannot queue without bound.
//
// Beyond the budgets wsd holds, per connection, its idle cost (Conn, key,
// table slots, epoll registration) and at most one pending pong; per
// worker, one read buffer and one inflate buffer of at most MaxMessage.
// With permessage-deflate, a connection whose client keeps its compression
// context also holds that window (2^Deflate.ClientWindowBits bytes at most,
// none by default), and a worker borrows an inflater and a compressor.
// Config.WorstCase adds these up.

const (
	// inflateFloor is the inflated size always allowed, whatever the ratio:
	// small messages compress well and cost nothing to inflate.
	inflateFloor = 64 << 10
)

// Costs charged per queued item and per live broadcast besides their bytes.
const (
	itemCost    = int64(unsafe.Sizeof(outItem{})) + 8 // the queue slot and its slack
	messageCost = int64(unsafe.Sizeof(message{}))
	outboxCost  = int64(unsafe.Sizeof(outboxEntry{})) // an outbox slot, charged by capacity
)

// fanoutFixed bounds what one shard's fan-out keeps between runs: two
// outbox slices of up to maxSpareOutbox entries, and the scratch space for
// one chunk (its entries' room run and one member's items).
const fanoutFixed = 2*maxSpareOutbox*outboxCost +
	maxFanoutChunk*int64(unsafe.Sizeof(&message{})+1+unsafe.Sizeof(outItem{}))

// tlsConnCost bounds what crypto/tls holds per wss connection: about 7 KB
// of state measured idle (docs/design.md, wss) and at most maxTLSPending bytes of
// input that has not come out as plaintext yet (see tls.go).
const tlsConnCost = 7<<10 + maxTLSPending

// idleConnCost is what one open, idle connection costs wsd itself,
// measured with the bench client's idle scenario (docs/performance.md); the kernel's
// socket memory comes on top.
const idleConnCost = 1 << 10

// MemoryBound is Config's worst case, in bytes.
type MemoryBound struct {
	Idle     int64 // MaxConns × idleConnCost
	Inbound  int64
	Outbound int64
	Pongs    int64 // one pending pong per connection
	Workers  int64 // per worker: a read buffer and an inflate buffer
	Fanout   int64 // per shard: outbox slices kept for reuse and scratch space
	Total    int64
}

// WorstCase returns the most memory any behaviour of clients can make wsd
// hold under c (after defaults), given the number of workers.
func (c Config) WorstCase(workers int) MemoryBound {
	c.setDefaults()
	conns := int64(c.MaxConns)
	b := MemoryBound{
		Idle:     conns * idleConnCost,
		Inbound:  c.InboundBudget,
		Outbound: c.OutboundBudget,
		Pongs:    conns * (itemCost + 2 + codec.MaxControlPayload),
		Workers:  int64(workers) * (readBufSize + int64(c.MaxMessage)),
		Fanout:   int64(c.Shards) * fanoutFixed,
	}
	if c.TLS != nil {
		// crypto/tls keeps its state for the life of a connection and up
		// to one partial record of input, which no budget sees.
		b.Idle += conns * tlsConnCost
	}
	if c.Deflate.Enabled {
		// A client that keeps its compression context makes its
		// connection hold a window of up to 2^bits bytes, idle or not;
		// a worker inflating a message holds its output (up to
		// MaxMessage) and borrows an inflater and a compressor.
		if c.Deflate.ClientWindowBits > 0 {
			b.Idle += conns << c.Deflate.ClientWindowBits
		}
		b.Workers += int64(workers) * (int64(c.MaxMessage) + deflateWorkerCost)
	}
	b.Total = b.Idle + b.Inbound + b.Outbound + b.Pongs + b.Workers + b.Fanout
	return b
}

// deflateWorkerCost is what a worker borrows from the pools for
// permessage-deflate: a level-1 compressor (~490 KiB, klauspost/compress)
// and an inflater (~40 KiB, compress/flate), measured with runtime.MemStats.
const deflateWorkerCost = 544 << 10

// budget is one global byte budget. Charges are plain atomic adds and the
// limit is enforced after the fact, not per charge: the inbound budget per
// read (overshoot: about one read's growth per worker), the outbound one by
// pausing input — checked before each read, so what one read already holds
// (up to a read buffer of messages) is still fanned out — and by shedding,
// which the sweeper does within one tick of the budget being passed, past
// hardLimit without waiting for queues to stall. How far the outbound sum
// can run past its limit is therefore a matter of timing (measured in
// cmd/wsd's hostile tests), not a hard bound.
type budget struct {
	limit int64
	held  *atomic.Int64 // in Stats, for the metrics
}

func (b *budget) add(n int64) int64 { return b.held.Add(n) }
func (b *budget) over() bool        { return b.held.Load() > b.limit }

// chargeInput brings c's inbound charge to what it now holds (its stream
// and its request head) and reports whether the budget allows that growth.
// Called on the worker running c's OnReady.
//
// Two rules share the budget out. No source address may hold more than
// InboundSharePerIP of it (its connections are refused past that, 1013),
// so one address's slow messages cannot spend it all. And when it is spent,
// the biggest holders go first: a connection that needs more closes, with
// 1013, connections of addresses holding more than its own does until the
// excess is covered (makeRoom), and is refused itself only when nobody
// holds more.
func (c *Conn) chargeInput() bool {
	held := int64(c.in.held())
	delta := held - c.inHeld.Load()
	if delta == 0 {
		return true
	}
	c.inHeld.Store(held)
	h := c.hub
	total := h.in.add(delta)
	if a := h.addrs; a != nil {
		if mine := a.addHeld(c.ip.addr(), delta); delta > 0 && a.maxHeld > 0 && mine > a.maxHeld {
			h.stats.ShareRefusals.Add(1)
			return false
		}
	}
	return delta < 0 || total <= h.in.limit || h.makeRoom(c, total-h.in.limit)
}

// makeRoom closes (1013) connections of the holders bigger than c,
// biggest first, until what they hold covers need, and reports whether
// that made room for c. A holder is a source address when per-address
// limits are on (its connections together: one address's many partial
// messages weigh as one), else a connection. The close releases what a
// victim holds on its next OnReady (settle), so the budget runs over by at
// most that much meanwhile.
func (h *Hub) makeRoom(c *Conn, need int64) bool {
	type holder struct {
		c          *Conn
		held, size int64 // the connection's, and its holder's
	}
	size := func(o *Conn, held int64) int64 {
		if h.addrs != nil {
			return h.addrs.heldBy(o.ip.addr())
		}
		return held
	}
	mine := size(c, c.inHeld.Load())
	var bigger []holder
	h.table.eachMember(func(o *Conn) {
		n := o.inHeld.Load()
		if n == 0 || o == c {
			return
		}
		switch req := o.closeReq.Load(); {
		case req == errInboundBudget:
			// Closed by an earlier call and about to give its share
			// back: that room is coming already.
			need -= n
		case req == nil:
			if sz := size(o, n); sz > mine {
				bigger = append(bigger, holder{o, n, sz})
			}
		}
	})
	if need <= 0 {
		return true
	}
	slices.SortFunc(bigger, func(a, b holder) int {
		return cmp.Or(cmp.Compare(b.size, a.size), cmp.Compare(b.held, a.held))
	})
	// A tenth more than the excess, so that the next read's growth does
	// not find the budget spent again at once.
	need += h.in.limit / 10
	for _, x := range bigger {
		if need <= 0 {
			break
		}
		if x.c.requestClose(errInboundBudget) {
			h.stats.BudgetEvictions.Add(1)
			need -= x.held
		}
	}
	return need <= h.in.limit/10
}

// squeeze asks the sweeper to shed consumers: the outbound budget is spent.
func (h *Hub) squeeze() {
	select {
	case h.squeezeReq <- struct{}{}:
	default:
	}
}

// shedGrace is how long a queue may go without draining before it counts
// as stalled: a client that reads at all drains something well within it.
const shedGrace = time.Second

// hardLimit is how far past the outbound budget wsd lets queues that are
// still draining grow before it sheds them too. Input is paused once the
// budget is spent, so only broadcasts already accepted can take it there.
func (b *budget) hardLimit() int64 { return b.limit + b.limit/4 }

// shedLargest closes consumers until what they hold covers the amount the
// outbound budget is over by: first the largest stalled queues (nothing
// drained for shedGrace), so a reader that is merely behind a burst keeps
// its connection while input is paused; past the hard limit, the largest
// queues whatever they do.
func (h *Hub) shedLargest() {
	held := h.out.held.Load()
	excess := held - h.out.limit
	if excess <= 0 {
		return
	}
	type consumer struct {
		c       *Conn
		charge  int64
		stalled bool
	}
	now := time.Now().UnixNano()
	var all []consumer
	h.table.eachMember(func(c *Conn) {
		if n := c.queued.Load(); n > 0 {
			all = append(all, consumer{c, n, now-c.progressAt.Load() > int64(shedGrace)})
		}
	})
	// Stalled first, then by size, largest first.
	slices.SortFunc(all, func(a, b consumer) int {
		switch {
		case a.stalled != b.stalled:
			if a.stalled {
				return -1
			}
			return 1
		case a.charge > b.charge:
			return -1
		case a.charge < b.charge:
			return 1
		}
		return 0
	})
	// Shed a tenth more than the excess so the next broadcast does not
	// tip the budget over again at once.
	excess += h.out.limit / 10
	hard := held > h.out.hardLimit()
	for _, x := range all {
		if excess <= 0 || !x.stalled && !hard {
			break
		}
		if x.c.shed(errOutboundBudget) {
			excess -= x.charge
			h.stats.BudgetSheds.Add(1)
		}
	}
}

// shed closes c as a slow consumer with err, dropping what it has queued.
func (c *Conn) shed(err *codec.CloseError) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return false
	}
	c.overflowLocked(err)
	return true
}

// pausedReaders are connections whose input waits for the outbound budget.
// Pausing instead of closing keeps honest senders connected through a
// flood: a sender faster than the fan-out is held to the fan-out's pace by
// TCP, and nobody's messages are lost.
type pausedReaders struct {
	mu    sync.Mutex
	conns []*Conn
	n     atomic.Int32
}

// pauseReader stops reading c until the outbound budget is back under its
// limit; the sweeper is asked to shed the largest consumers meanwhile.
func (h *Hub) pauseReader(c *Conn) {
	if !c.flags.trySet(flagPaused) {
		return
	}
	h.stats.ReadPauses.Add(1)
	p := &h.paused
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.n.Add(1)
	p.mu.Unlock()
	h.squeeze()
	// The budget may have come back under between the check and the
	// append, with nobody left to notice.
	h.resumeReaders()
}

// resumeReaders wakes every paused reader once the outbound budget is
// under its limit again. It is cheap when nothing is paused.
func (h *Hub) resumeReaders() {
	p := &h.paused
	if p.n.Load() == 0 || h.out.over() {
		return
	}
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.n.Store(0)
	p.mu.Unlock()
	for _, c := range conns {
		c.flags.clear(flagPaused)
	}
	resume(conns)
}

// resume reads conns again, paused for the outbound budget or held by a
// shard's backlog (fanout.go), once their flag is cleared.
func resume(conns []*Conn) {
	now := time.Now().UnixNano()
	for _, c := range conns {
		// The time wsd did not read does not count against the
		// message the peer was sending.
		// Only open: closing, the timer is the close deadline. (A close
		// after the check stores a deadline the swap does not match.)
		if started := c.timer.Load(); started != 0 && c.state.Load() == stOpen {
			c.timer.CompareAndSwap(started, now) // unless the message just ended
		}
		c.Notify(readyEvent)
	}
}
