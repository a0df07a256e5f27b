package session

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/poller"
	"github.com/wsd-chat/wsd/tlswire"
)

// Lifecycle states. They change only through setState, on the worker
// running OnReady (or in Accept, before the first event).
const (
	stNew       uint32 = iota // accepted, not yet registered
	stHandshake               // reading the upgrade request
	stOpen                    // in the session table, chatting
	stClosing                 // close frame (or HTTP error) queued, waiting for the peer
	stClosed                  // fd closed
)

// readyEvent wakes OnReady to look at close requests and deadlines.
const readyEvent = poller.Readable

// Conn is one client connection. Its read side (input, lifecycle) belongs
// to OnReady; its write side to whoever holds wmu.
//
// Memory: this struct is most of what an idle connection costs (see
// docs/performance.md, "Per-connection cost"), so it holds only what every
// connection uses all the time, in an order that leaves no padding
// (TestConnSize pins its size). What only some connections use lives
// behind a pointer: a message, frame or request head arriving in pieces
// (in, pooled and returned once nothing is partial), TLS, chat protocol
// v1, a per-address delivery limit's entry.
type Conn struct {
	poller.Desc
	hub *Hub

	// Set once at upgrade (ip at accept), read-only afterwards.
	key  string
	room string
	v1   *v1Conn  // chat protocol v1 (v1.go); nil for a seed connection
	ext  *connExt // what only some connections have; set at accept, nil for most

	// OnReady only: the input in progress, nil between messages (input.go).
	in *connInput

	lastSeen atomic.Int64 // unix nanos of the last byte received
	pingedAt atomic.Int64 // unix nanos of the last ping sent
	// Unix nanos, 0 for none. In limbo (handshaking, closing) the deadline;
	// open, when the message arriving now began (-message-timeout, sweep.go).
	// A connection has at most one: setState sets and clears it.
	timer    atomic.Int64
	heldAt   atomic.Int64 // unix nanos when input was last held (see fanout.hold)
	closeReq atomic.Pointer[codec.CloseError]

	// OnReady only.
	rate   rateState    // frames: messages, continuations, pings, pongs; every connection pongs
	rates  *connRates   // nil until a data message, and again once idle
	inHeld atomic.Int64 // bytes charged to the inbound budget; written by OnReady, read by makeRoom

	// Write side.
	outq       []outItem    // nil when empty: an idle connection holds no buffer
	queued     atomic.Int64 // what outq is charged against MaxQueue; read without wmu by the sweeper
	pong       *ownFrame    // the pong for the latest ping, not yet queued
	pendQueued int64        // Hub-wide counters' changes not yet published (bookLocked)
	pendHeld   int64
	progressAt atomic.Int64 // unix nanos when the queue last drained some or became non-empty
	wmu        sync.Mutex
	winFrames  int32 // frames and their bytes handed over since the sweeper last looked (kernelBacklogLocked)
	winBytes   int32

	member int32 // index in the room's member list; guarded by the key's shard mu
	state  atomic.Uint32
	flags  connFlags // flagKill, flagPaused, flagHeld

	ip      addr16              // source address, kept when a per-address limit is on; set at accept
	deflate codec.DeflateParams // permessage-deflate, if negotiated; set at upgrade
	gzip    bool                // set at upgrade
	inTable bool                // guarded by the key's shard mu

	// OnReady only.
	peerClosed bool // the peer's close frame arrived
	broken     bool // input can no longer be parsed; discard it

	// Write side.
	headStarted bool // outq[0] is committed to the wire and must go out whole and first (write.go)
	wclosed     bool // a close frame or error response is queued: nothing more
	wend        wendBits
}

// wendBits record, under wmu, how a connection's writing ended: three
// flags in one byte, so that Conn fits its allocation class.
type wendBits uint8

const (
	wendShut     wendBits = 1 << iota // write side shut down after our close frame
	wendErr                           // a write failed: nothing more can be written
	wendFdClosed                      // finish closed the fd
)

func (b wendBits) has(f wendBits) bool { return b&f != 0 }

// connExt holds what only some connections have, set at accept: a plain
// connection with no per-address delivery limit pays one nil pointer.
type connExt struct {
	tls *tlswire.Conn // wss only (see tls.go)
	// The address's delivery rate entry, nil without that limit; cleared
	// by finish.
	addrRate *addrRate
}

// extension returns c's connExt, making it first; at accept only.
func (c *Conn) extension() *connExt {
	if c.ext == nil {
		c.ext = new(connExt)
	}
	return c.ext
}

// tlsConn is c's TLS layer, nil unless wss.
func (c *Conn) tlsConn() *tlswire.Conn {
	if c.ext == nil {
		return nil
	}
	return c.ext.tls
}

// addrRate is c's address's delivery rate entry, nil without that limit.
func (c *Conn) addrRate() *addrRate {
	if c.ext == nil {
		return nil
	}
	return c.ext.addrRate
}

// connRates are the rate states only a sender's data messages charge
// (OnReady only). A connection that sends no message holds none, and one
// that stops is freed of them at its next ping or pong: a GCRA state whose
// theoretical arrival time is past (no excess owed) allows what a zero one
// does, so dropping it changes no limit.
type connRates struct {
	byteRate   rateState // payload bytes after gunzip
	deliveries rateState // deliveries its messages cost (limits.go)
}

// ratesOf returns c's connRates, making them on a first message.
func (c *Conn) ratesOf() *connRates {
	if c.rates == nil {
		c.rates = new(connRates)
	}
	return c.rates
}

// trimRates drops c's connRates if they owe nothing at now.
func (c *Conn) trimRates(now int64) {
	if r := c.rates; r != nil && int64(r.byteRate) <= now && int64(r.deliveries) <= now {
		c.rates = nil
	}
}

// Conn.flags: each set and cleared from any goroutine.
const (
	flagKill   uint32 = 1 << iota // close the fd now (deadline passed, write failed)
	flagPaused                    // input waits for the outbound budget (see pauseReader)
	flagHeld                      // input waits for a shard's fan-out backlog (see fanout.hold)
	flagCold                      // a v1 join waits for a Read of the Log (logread.go); set and cleared by OnReady
)

// connFlags are a connection's atomic flags in one word.
type connFlags struct{ v atomic.Uint32 }

func (f *connFlags) has(b uint32) bool { return f.v.Load()&b != 0 }
func (f *connFlags) set(b uint32)      { f.v.Or(b) }
func (f *connFlags) clear(b uint32)    { f.v.And(^b) }

// trySet sets b and reports whether it was clear.
func (f *connFlags) trySet(b uint32) bool { return f.v.Or(b)&b == 0 }

func (c *Conn) fd() int { return c.Desc.Fd() }

// Key returns the connection's specialKey.
func (c *Conn) Key() string { return c.key }

// OnReady implements poller.Handler.
func (c *Conn) OnReady(ev poller.Event) {
	if c.state.Load() == stClosed {
		return
	}
	if ev&poller.Writable != 0 {
		c.wmu.Lock()
		c.flushLocked()
		c.wmu.Unlock()
		c.hub.resumeReaders() // what was flushed may bring the budget back under
	}
	if c.flags.has(flagCold) && c.coldReady() { // logread.go
		ev |= poller.Readable // what the socket holds was left there meanwhile
	}
	if ev&poller.Readable != 0 && !c.flags.has(flagKill) {
		c.readAll()
		c.idleInput()
	}
	c.settle()
}

// readBudget bounds the reads one OnReady does, so a flooding client
// cannot keep a worker to itself; the rest is picked up on the next run.
const readBudget = 8

const readBufSize = 16 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

func (c *Conn) readAll() {
	buf := readBufs.Get().(*[]byte)
	defer readBufs.Put(buf)
	if c.tlsConn() != nil {
		c.tlsInput(nil) // what the TLS handshake left buffered
	}
	for budget := readBudget; ; budget-- {
		if budget == 0 {
			c.Notify(poller.Readable)
			return
		}
		if c.flags.has(flagHeld) {
			return // a shard's backlog is full: its release reads on
		}
		if c.flags.has(flagCold) && c.coldFull() {
			return // a join waits for the Log: its answer reads on (logread.go)
		}
		if c.state.Load() == stOpen && c.hub.out.over() {
			// Every message read now would add to a spent outbound
			// budget: leave the bytes in the kernel (TCP back-pressure)
			// until the fan-out and the shedding of slow consumers bring
			// it back under.
			c.hub.pauseReader(c)
			return
		}
		n, err := unix.Read(c.fd(), (*buf)[:c.readSize()])
		if n > 0 {
			c.lastSeen.Store(time.Now().UnixNano())
			if c.tlsConn() != nil {
				c.tlsInput((*buf)[:n])
			} else {
				c.input((*buf)[:n])
			}
			if c.flags.has(flagKill) {
				return
			}
			continue
		}
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return
		}
		// EOF or a socket error: the peer is gone or finished.
		c.flags.set(flagKill)
		return
	}
}

// input handles bytes read from the socket.
func (c *Conn) input(p []byte) {
	switch c.state.Load() {
	case stHandshake:
		c.handshake(p)
	case stOpen, stClosing:
		if c.broken {
			return
		}
		err := c.input1().stream.Feed(p, c, int64(c.hub.cfg.MaxMessage))
		if err == nil {
			// Frames no message or control frame paid for yet: empty
			// continuations, a fragmented message's middle.
			err = c.chargeFrames(time.Now().UnixNano())
		}
		if err == nil && !c.chargeInput() {
			c.hub.stats.BudgetRefusals.Add(1)
			err = errInboundBudget
		}
		c.trackMessageStart()
		if err != nil {
			c.dropInput()
			var ce *codec.CloseError
			if !errors.As(err, &ce) {
				ce = errInternal
			}
			if ce == codec.ErrBadDeflate || ce == codec.ErrDeflateTooBig {
				c.hub.stats.InflateErrors.Add(1)
			}
			if c.hub.debugging() {
				c.hub.log.Debug("closing connection", "key", c.key, "code", ce.Code, "reason", ce.Reason)
			}
			// Messages accepted before the bad frame still reach everyone,
			// this peer included, before its close frame.
			c.hub.closeAfterFanout(c, ce)
		}
	}
}

// dropInput stops parsing c's input and returns what its partial message
// held: everything the peer sends from now on is discarded.
func (c *Conn) dropInput() {
	c.broken = true
	c.releaseInput()
	c.chargeInput()
}

// OnMessage implements codec.Handler: a complete data message arrived.
func (c *Conn) OnMessage(op codec.OpCode, payload []byte) error {
	if c.state.Load() != stOpen || c.peerClosed || c.closeReq.Load() != nil {
		return nil // closing: late data is dropped
	}
	h := c.hub
	now := time.Now().UnixNano()
	if err := c.chargeFrames(now); err != nil {
		return err
	}
	if op == codec.OpBinary && c.v1 != nil && !c.gzip {
		return codec.ErrNotGzip // a v1 client without support_gzip sends text
	}
	if op == codec.OpBinary {
		// Seed clients with support_gzip send gzip'd text as binary.
		limit := c.InflateLimit(len(payload))
		buf := inflateBufs.Get().(*[]byte)
		defer inflateBufs.Put(buf)
		text, err := codec.Gunzip((*buf)[:0], payload, limit)
		*buf = text[:0]
		if err == codec.ErrInflatedTooBig && limit < h.cfg.MaxMessage {
			err = errInflateRatio
		}
		if err != nil {
			return err
		}
		if !utf8.Valid(text) {
			return codec.ErrInvalidUTF8
		}
		payload = text
	}
	if !h.byteRate.allow(&c.ratesOf().byteRate, now, len(payload)) {
		return errByteRateLimited
	}
	if c.v1 != nil {
		return c.command(payload) // v1.go
	}
	h.stats.MessagesIn.Add(1)
	h.stats.BytesIn.Add(uint64(len(payload)))
	_, err := h.broadcast(c, now, c.room, payload, nil)
	return err
}

// chargeFrames charges the frames the stream has started since the last
// charge to the connection's message rate, one unit each: a message in one
// frame costs one unit as a ping or a pong does, and a message in k frames
// costs k. Charged as each message or control frame completes (so one over
// the rate is refused before it is broadcast or answered) and after each
// Feed for the frames between, so a peer streaming empty continuations or
// unsolicited pongs is closed 1008 like one flooding messages.
func (c *Conn) chargeFrames(now int64) error {
	if c.in == nil {
		return nil
	}
	if n := c.in.stream.TakeFrames(); n > 0 && !c.hub.rate.allow(&c.rate, now, n) {
		return errRateLimited
	}
	return nil
}

// InflateLimit implements codec.InflateLimiter, for permessage-deflate
// messages, and bounds gzip'd ones the same way: a compressed message of n
// bytes may inflate to MaxMessage, but past a small floor only to
// InflateRatio times its size, so a bomb is refused having cost about the
// limit, not what it would inflate to.
func (c *Conn) InflateLimit(n int) int {
	cfg := &c.hub.cfg
	return min(cfg.MaxMessage, max(inflateFloor, cfg.InflateRatio*n))
}

var inflateBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// OnControl implements codec.Handler: a ping, pong or close frame arrived.
func (c *Conn) OnControl(op codec.OpCode, payload []byte) error {
	switch op {
	case codec.OpPing, codec.OpPong:
		now := time.Now().UnixNano()
		if err := c.chargeFrames(now); err != nil {
			return err
		}
		// Quiet connections are pinged: their pong is where a sender
		// that stopped gives its rate states back.
		c.trimRates(now)
		if op == codec.OpPing {
			c.sendPong(payload)
		}
	case codec.OpClose:
		if c.peerClosed {
			return nil
		}
		c.peerClosed = true
		code, _, _ := codec.ParseClose(payload)
		if code == codec.CloseNoStatus {
			code = 0 // answer an empty close with an empty close
		}
		reply := &codec.CloseError{Code: code}
		if c.state.Load() != stOpen || c.closeReq.Load() != nil {
			// Our own close is out already; this is the answer to it.
			c.requestClose(reply)
			return nil
		}
		// Answer after the fan-out has handed this peer every broadcast
		// accepted so far, its own messages included: a client that sends
		// and then closes still gets its echo before the close frame.
		c.hub.closeAfterFanout(c, reply)
	}
	return nil
}

// requestClose starts a close with err's code: the close frame goes after
// whatever is queued, nothing is queued after it, and OnReady takes the
// connection out of the table. Safe from any goroutine; the first request
// wins, and reports true.
func (c *Conn) requestClose(err *codec.CloseError) bool {
	if !c.closeReq.CompareAndSwap(nil, err) {
		return false
	}
	c.wmu.Lock()
	if !c.wclosed {
		c.queueCloseLocked(err)
		c.flushLocked()
	}
	c.wmu.Unlock()
	c.Notify(readyEvent)
	return true
}

// trackMessageStart notes when the peer started a message or frame it has
// not finished, for the sweeper's MessageTimeout.
func (c *Conn) trackMessageStart() {
	if c.state.Load() != stOpen {
		return // closing: the timer holds the close deadline
	}
	switch partial := c.in != nil && (c.in.stream.Partial() || c.in.tlsPending > 0) && !c.broken; {
	case partial && c.timer.Load() == 0:
		c.timer.Store(time.Now().UnixNano())
	case !partial && c.timer.Load() != 0:
		c.timer.Store(0)
	}
}

// sendPong answers a ping. At most one pong waits per connection: RFC 6455
// section 5.5.3 lets an endpoint answer only the latest of several pings,
// so a ping flood against a connection that does not read costs one frame.
func (c *Conn) sendPong(payload []byte) {
	c.wmu.Lock()
	if c.wclosed {
		c.wmu.Unlock()
		return
	}
	if c.pong != nil {
		c.pong.b = codec.AppendFrame(c.pong.b[:0], codec.OpPong, payload)
		c.wmu.Unlock()
		return
	}
	f := newOwnFrame(func(b []byte) []byte { return codec.AppendFrame(b, codec.OpPong, payload) })
	if len(c.outq) > 0 {
		// Written ahead of the queued data at the next flush.
		c.pong = f
		c.wmu.Unlock()
		return
	}
	c.wmu.Unlock()
	c.send(f)
}

// abort has OnReady close the fd without ceremony (a deadline passed, the
// server gives up). Safe from any goroutine.
func (c *Conn) abort() {
	c.flags.set(flagKill)
	c.Notify(readyEvent)
}

func (c *Conn) queueCloseLocked(err *codec.CloseError) {
	f := newOwnFrame(func(b []byte) []byte { return codec.AppendClose(b, err.Code, err.Reason) })
	c.enqueueLocked(outItem{b: f.b, own: f})
	c.wclosed = true
	if err.Code != 0 {
		c.hub.stats.countClose(err.Code)
	}
}

// overflowLocked closes a slow consumer with err (1008): queued frames it
// has not started to receive are dropped, the close frame goes right after
// the partly written one, and is written now if the socket takes it. A
// member shed for its kernel backlog has nothing queued here: every write
// was taken whole, so the socket owes no EPOLLOUT edge, and a close left
// in the queue would wait for the close timeout.
func (c *Conn) overflowLocked(err *codec.CloseError) {
	keep := 0
	if c.headStarted {
		keep = 1
	}
	for i := keep; i < len(c.outq); i++ {
		c.releaseLocked(&c.outq[i])
	}
	c.outq = c.outq[:keep]
	c.hub.stats.SlowConsumers.Add(1)
	c.hub.log.Info("slow consumer closed", "key", c.key, "reason", err.Reason)
	c.closeReq.CompareAndSwap(nil, err)
	c.queueCloseLocked(err)
	c.flushLocked()
	c.Notify(readyEvent)
}

// setState moves c to state to and keeps everything that follows from a
// state in step: the gauges, table membership (leaving only; joining
// writes the 101 and is table.join's), and the limbo set whose deadlines
// the sweeper checks.
func (c *Conn) setState(to uint32) {
	h := c.hub
	from := c.state.Load()
	if g := h.stats.gauge(from); g != nil {
		g.Add(-1)
	}
	if g := h.stats.gauge(to); g != nil {
		g.Add(1)
	}
	if c.deflate.Enabled && (from == stOpen) != (to == stOpen) {
		if to == stOpen {
			h.stats.DeflateConns.Add(1)
		} else {
			h.stats.DeflateConns.Add(-1)
		}
	}
	if from == stOpen && h.table.remove(c) {
		h.roomsLeft(c, "") // v1.go
	}
	if from == stHandshake {
		h.leftHandshake(c)
	}
	// The close deadline replaces a message's start before the sweeper
	// can see c in limbo and read it as a deadline passed.
	if to == stClosing {
		c.timer.Store(time.Now().Add(h.cfg.CloseTimeout).UnixNano())
	}
	switch {
	case inLimbo(from) && !inLimbo(to):
		h.table.limboOf(c).removeLimbo(c)
	case !inLimbo(from) && inLimbo(to):
		h.table.limboOf(c).addLimbo(c)
	}
	if to == stOpen {
		c.timer.Store(0) // out of limbo: no message has begun
	}
	c.state.Store(to)
	if to == stHandshake {
		h.handshakes.push(c) // after the store: the queue drops what is not handshaking
	}
}

// inLimbo reports whether a connection in state st has a deadline.
func inLimbo(st uint32) bool { return st == stHandshake || st == stClosing }

// settle moves the lifecycle forward after I/O or a request from elsewhere.
func (c *Conn) settle() {
	if c.flags.has(flagKill) {
		c.finish()
		return
	}
	state := c.state.Load()
	if state == stOpen && c.closeReq.Load() != nil {
		c.setState(stClosing)
		state = stClosing
	}
	if c.closeReq.Load() == errInboundBudget && !c.broken {
		// Closed to make room in the inbound budget (makeRoom): give the
		// room back now, not when the close handshake ends.
		c.dropInput()
	}
	if state != stClosing {
		return
	}
	c.wmu.Lock()
	werr := c.wend.has(wendErr)
	sent := c.wclosed && len(c.outq) == 0
	c.wmu.Unlock()
	// Once both close frames have crossed, the server closes TCP first (RFC 6455 7.1.1).
	if werr || (sent && c.peerClosed) {
		c.finish()
	}
}

// finish closes the fd and forgets the connection: the one way out.
func (c *Conn) finish() {
	if c.state.Load() == stClosed {
		return
	}
	h := c.hub
	if c.flags.has(flagCold) {
		c.dropCold(c.v1.cold()) // logread.go
	}
	c.setState(stClosed)
	c.wmu.Lock()
	c.wclosed = true
	c.wend |= wendFdClosed
	c.dropQueueLocked()
	c.wmu.Unlock()
	_ = h.reactor.Remove(&c.Desc)
	_ = unix.Close(c.fd())
	if t := c.tlsConn(); t != nil {
		t.Close()
	}
	c.releaseInput()
	c.chargeInput()
	c.timer.Store(0)
	h.releaseSocket(c)
	h.live.Add(-1)
	if h.debugging() {
		h.log.Debug("disconnected", "key", c.key)
	}
}
