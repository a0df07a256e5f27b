package session

import (
	"context"
	"crypto/tls"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/poller"
	"github.com/wsd-chat/wsd/tlswire"
)

// Defaults for Config's zero values.
const (
	DefaultShards           = 64
	DefaultMaxMessage       = 1 << 20 // 1 MiB, like NATS's max_payload
	DefaultMaxQueue         = 4 << 20 // per-connection outbound bytes before 1008
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultPingInterval     = 30 * time.Second
	DefaultIdleTimeout      = 90 * time.Second // three missed pings
	DefaultCloseTimeout     = 3 * time.Second  // wait for the peer's close frame or EOF
	DefaultMsgBurst         = 10000            // messages at once above MaxMsgRate
)

// Config tunes a Hub. Zero values take the defaults above.
type Config struct {
	Shards           int
	MaxConns         int // open connections; more get 503 before upgrading. 0: no cap
	MaxMessage       int // largest message payload, also after gunzip; larger: 1009
	MaxQueue         int // outbound bytes queued per connection; more: 1008
	HandshakeTimeout time.Duration
	PingInterval     time.Duration // ping connections quiet for this long
	IdleTimeout      time.Duration // close connections quiet for this long (1001)
	CloseTimeout     time.Duration
	MaxMsgRate       float64 // frames (messages, continuations, pings, pongs) per second per connection; 0: DefaultMaxMsgRate, <0: unlimited
	MaxConnsPerIP    int     // sockets one source address may hold; 0: no cap
	// MaxHandshakesPerIP caps the sockets one source address holds before
	// their upgrade; 0: DefaultMaxHandshakesPerIP, <0: no cap.
	MaxHandshakesPerIP int
	// InboundSharePerIP is the fraction of InboundBudget one source
	// address's partial messages and request heads may hold (at least two
	// MaxMessage); 0: DefaultInboundSharePerIP, <0 or >=1: no cap.
	InboundSharePerIP float64
	MsgBurst          int     // messages allowed at once above the rate; 0: DefaultMsgBurst
	MaxByteRate       float64 // payload bytes (after gunzip) per second per connection; 0: DefaultMaxByteRate, <0: unlimited
	InflateRatio      int     // a gzip or permessage-deflate message may inflate this many times (past 64 KiB); 0: DefaultInflateRatio

	// The memory budgets (see budget.go); 0 takes the defaults.
	InboundBudget  int64         // partial messages and request heads, all connections
	OutboundBudget int64         // broadcasts, queued frames, all connections
	MessageTimeout time.Duration // first to last byte of one message

	// Subprotocols are selected from a client's Sec-WebSocket-Protocol offer.
	Subprotocols []string
	// Deflate is the permessage-deflate (RFC 7692) wsd negotiates; the zero
	// value negotiates none.
	Deflate codec.DeflateConfig

	// Authorize, if set, is asked after a request passed the protocol
	// checks and before the 101 is written; a non-nil error refuses the
	// upgrade with codec.StatusOf(err) (wrap with ws.RejectConnectionError).
	Authorize func(*codec.Request) error

	// OnFanout, if set, is called once per shard fan-out batch with the
	// time from the oldest broadcast in the batch being accepted to the
	// batch's writes finishing (the fan-out latency histogram). It runs on
	// the workers and must be cheap and safe for concurrent use.
	OnFanout func(time.Duration)

	// Bridge, if set, extends rooms and keys to other boxes (package
	// cluster); see bridge.go. Nil: one box, as without it.
	Bridge Bridge

	// Page, if set, is asked about every request head the upgrader
	// refuses; a non-nil answer (a complete HTTP response, such as
	// web.Page.Respond's chat page for a plain GET /) is written instead of
	// the refusal, and the connection closes after it. Nil: refusals only.
	Page func(head []byte) []byte
	// TLS, if set, makes every connection wss://: the TLS handshake runs
	// on a pool of at most TLSHandshakes goroutines (0: the tlswire
	// default) within HandshakeTimeout, then records are read and written
	// by the workers (see tls.go).
	TLS           *tls.Config
	TLSHandshakes int

	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Shards <= 0 {
		c.Shards = DefaultShards
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = DefaultMaxQueue
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.MsgBurst <= 0 {
		c.MsgBurst = DefaultMsgBurst
	}
	if c.MaxMsgRate == 0 {
		c.MaxMsgRate = DefaultMaxMsgRate
	}
	if c.MaxByteRate == 0 {
		c.MaxByteRate = DefaultMaxByteRate
	}
	if c.InflateRatio <= 0 {
		c.InflateRatio = DefaultInflateRatio
	}
	if c.InboundBudget <= 0 {
		c.InboundBudget = DefaultInboundBudget
	}
	if c.MaxHandshakesPerIP == 0 {
		c.MaxHandshakesPerIP = DefaultMaxHandshakesPerIP
	}
	if c.InboundSharePerIP == 0 {
		c.InboundSharePerIP = DefaultInboundSharePerIP
	}
	if c.OutboundBudget <= 0 {
		c.OutboundBudget = DefaultOutboundBudget
	}
	if c.MessageTimeout <= 0 {
		c.MessageTimeout = DefaultMessageTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Hub owns the session table and everything that happens to connections
// after accept: handshakes, messages, fan-out, timeouts and shutdown.
type Hub struct {
	cfg        Config
	reactor    *poller.Reactor
	table      *table
	stats      Stats
	log        *slog.Logger
	rate       rateLimit // frames: messages, continuations, pings, pongs
	byteRate   rateLimit // payload bytes
	in, out    budget
	squeezeReq chan struct{}
	addrs      *addrTable     // per source address; nil when no limit is on (limits.go)
	handshakes handshakeQueue // sockets in their handshake, oldest first (limits.go)
	paused     pausedReaders
	refusals   refusalLog // rate-limited refusal lines (refusal.go)
	upgraders  sync.Pool
	live       atomic.Int64 // sockets held, in any state
	draining   atomic.Bool
	inflight   atomic.Int64 // broadcasts between the draining check and their enqueue
	stop       chan struct{}
	stopped    chan struct{}
	stopOnce   sync.Once
	tlsPool    *tlswire.Pool // nil without TLS
	br         bridgeState   // cluster: bridge.go
}

// NewHub returns a Hub that runs its connections on r.
func NewHub(cfg Config, r *poller.Reactor) *Hub {
	cfg.setDefaults()
	h := &Hub{
		cfg:        cfg,
		reactor:    r,
		log:        cfg.Logger,
		rate:       newRateLimit(cfg.MaxMsgRate, float64(cfg.MsgBurst)),
		byteRate:   newRateLimit(cfg.MaxByteRate, max(cfg.MaxByteRate, 2*float64(cfg.MaxMessage))),
		squeezeReq: make(chan struct{}, 1),
		addrs:      newAddrTable(&cfg),
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
	}
	h.in = budget{limit: cfg.InboundBudget, held: &h.stats.InboundHeld}
	h.out = budget{limit: cfg.OutboundBudget, held: &h.stats.OutboundHeld}
	h.stats.InboundBudget, h.stats.OutboundBudget = cfg.InboundBudget, cfg.OutboundBudget
	h.table = newTable(h, cfg.Shards)
	if cfg.TLS != nil {
		h.tlsPool = tlswire.NewPool(0, cfg.TLSHandshakes)
	}
	h.upgraders.New = func() any {
		u := codec.NewUpgrader()
		u.Admit = h.admit
		u.Protocols = h.cfg.Subprotocols
		u.Deflate = cfg.Deflate
		return u
	}
	go h.sweep()
	return h
}

// Config returns the effective configuration.
func (h *Hub) Config() Config { return h.cfg }

// Stats returns the Hub's live counters.
func (h *Hub) Stats() *Stats { return &h.stats }

// TLSPool returns the TLS handshake pool, nil without TLS.
func (h *Hub) TLSPool() *tlswire.Pool { return h.tlsPool }

// Live reports how many sockets the Hub holds, in any state.
func (h *Hub) Live() int64 { return h.live.Load() }

// Accept takes ownership of a freshly accepted, non-blocking socket. A
// socket over its address's limits, or past MaxConns by more than
// acceptSlack sockets when none is handshaking (else the oldest
// handshaking socket is dropped for it), is answered with 429 or 503 and
// closed at once (limits.go).
func (h *Hub) Accept(fd int) error {
	h.stats.Accepted.Add(1)
	c := &Conn{hub: h, member: -1}
	if err := h.admitSocket(fd, c); err != nil {
		h.refuseAtAccept(fd, err)
		return nil
	}
	if h.tlsPool != nil {
		c.tls = tlswire.NewConn(h.cfg.TLS, h.tlsPool, (*tlsOwner)(c))
	}
	now := time.Now().UnixNano()
	c.lastSeen.Store(now)
	c.deadline.Store(now + int64(h.cfg.HandshakeTimeout))
	h.live.Add(1)
	// Into limbo before registering: the first event may run at once.
	c.setState(stHandshake)
	if err := h.reactor.Add(&c.Desc, fd, c); err != nil {
		c.setState(stNew)
		h.live.Add(-1)
		h.releaseSocket(c)
		return err
	}
	return nil
}

func (h *Hub) admit() error {
	if h.draining.Load() {
		return codec.ErrDraining
	}
	if h.cfg.MaxConns > 0 && h.stats.Open.Load() >= int64(h.cfg.MaxConns) {
		return codec.ErrOverCapacity
	}
	return nil
}

func (h *Hub) authorize(req *codec.Request) error {
	if h.cfg.Authorize == nil {
		return nil
	}
	return h.cfg.Authorize(req)
}

// broadcast sends text to every member of room, the sender included, and
// returns how many members the room had.
func (h *Hub) broadcast(room string, text []byte) int {
	// Once draining, no broadcast is accepted: Shutdown waits for the ones
	// already accepted to be fanned out, which a steady stream of new ones
	// would otherwise put off until its deadline. Both sides are
	// sequentially consistent atomics: either this sees draining, or
	// Shutdown sees this broadcast in flight and waits for it.
	h.inflight.Add(1)
	defer h.inflight.Add(-1)
	if h.draining.Load() {
		return 0
	}
	m := h.newMessage(room, text)
	if h.cfg.OnFanout != nil {
		m.at = time.Now()
	}
	n := h.fanOut(room, m)
	h.forward(room, m) // cluster: bridge.go
	m.doneBuilding()
	h.stats.Broadcasts.Add(1)
	return n
}

// fanOut queues m on every shard with members in room and returns how
// many members that is. The outbox entries are charged to the outbound
// budget together: one add to the shared counter per broadcast, not one
// per shard.
func (h *Hub) fanOut(room string, m *message) int {
	n, entries := 0, int64(0)
	for _, s := range h.table.shards {
		if k := s.roomSize(room); k > 0 {
			n += k
			entries++
			s.fan.add(outboxEntry{msg: m})
		}
	}
	if entries > 0 {
		h.out.add(entries * outboxCost)
	}
	return n
}

// closeAfterFanout closes c with err once its shard's fan-out has handed
// it everything queued so far.
func (h *Hub) closeAfterFanout(c *Conn, err *codec.CloseError) {
	if !h.table.isMember(c) {
		c.requestClose(err)
		return
	}
	h.table.shardOf(c.key).fan.add(outboxEntry{close: c, closeErr: err})
	h.out.add(outboxCost)
}

// Publish sends text to every member of room ("" is the global room) and
// returns how many connections it was queued for.
func (h *Hub) Publish(room string, text []byte) int { return h.broadcast(room, text) }

// Send sends text to the connection holding key and reports whether there
// was one.
func (h *Hub) Send(key string, text []byte) bool {
	s := h.table.shardOf(key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.byKey[key]
	if c == nil {
		return false
	}
	m := h.newMessage(c.room, text)
	v := m.variantFor(c)
	ok := c.deliver([]outItem{{b: m.frame(v), msg: m, v: uint8(v)}})
	m.doneBuilding()
	if ok {
		h.stats.FramesOut.Add(1)
	}
	h.stats.Direct.Add(1)
	return ok
}

// Rooms returns the rooms with members and their sizes, largest first.
func (h *Hub) Rooms() []RoomCount {
	counts := h.table.roomCounts()
	out := make([]RoomCount, 0, len(counts))
	for name, n := range counts {
		out = append(out, RoomCount{Room: name, Members: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Members != out[j].Members {
			return out[i].Members > out[j].Members
		}
		return out[i].Room < out[j].Room
	})
	return out
}

// sweepEvery is how often deadlines and idle connections are checked: a
// single goroutine walks the table instead of a timer per connection.
func (h *Hub) sweepEvery() time.Duration {
	d := min(h.cfg.PingInterval, h.cfg.HandshakeTimeout, h.cfg.CloseTimeout) / 4
	return max(20*time.Millisecond, min(d, time.Second))
}

func (h *Hub) sweep() {
	defer close(h.stopped)
	t := time.NewTicker(h.sweepEvery())
	defer t.Stop()
	var members []*Conn
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			members = h.sweepOnce(now.UnixNano(), members[:0])
		case <-h.squeezeReq:
			h.shedLargest()
			h.resumeReaders()
		}
	}
}

func (h *Hub) sweepOnce(now int64, scratch []*Conn) []*Conn {
	ping, idle := int64(h.cfg.PingInterval), int64(h.cfg.IdleTimeout)
	msgTimeout := int64(h.cfg.MessageTimeout)
	var slow []*Conn
	for _, s := range h.table.shards {
		s.mu.RLock()
		for _, r := range s.rooms {
			for _, c := range r.members {
				quiet := now - c.lastSeen.Load()
				started := c.msgStart.Load()
				switch {
				case quiet > idle:
					scratch = append(scratch, c)
				case started != 0 && now-started > msgTimeout && !c.paused.Load():
					// (A paused reader is not slow: wsd stopped reading it.)
					slow = append(slow, c)
				case quiet > ping && now-c.pingedAt.Load() > ping:
					c.pingedAt.Store(now)
					if c.deliver([]outItem{{b: pingFrame}}) {
						h.stats.PingsSent.Add(1)
					}
				}
			}
		}
		s.mu.RUnlock()
		s.limboMu.Lock()
		for c := range s.limbo {
			if d := c.deadline.Load(); d != 0 && now > d {
				if c.state.Load() == stHandshake {
					h.stats.HandshakeTimeouts.Add(1)
				}
				c.deadline.Store(0)
				c.abort()
			}
		}
		s.limboMu.Unlock()
	}
	for i, c := range scratch {
		h.stats.IdleTimeouts.Add(1)
		c.requestClose(codec.ErrIdle)
		scratch[i] = nil
	}
	for _, c := range slow {
		h.stats.MessageTimeouts.Add(1)
		c.requestClose(codec.ErrMessageTimeout)
	}
	if h.out.over() {
		h.shedLargest()
	}
	h.resumeReaders()
	return scratch
}

// fanoutIdle reports whether no broadcast waits for a shard.
func (h *Hub) fanoutIdle() bool {
	for _, s := range h.table.shards {
		if !s.fan.idle() {
			return false
		}
	}
	return true
}

// Shutdown drains the Hub: new upgrades and new broadcasts are refused,
// broadcasts already accepted reach their rooms, then every connection gets
// 1001 after what is queued for it and is closed once the peer answers. When ctx ends first,
// the remaining sockets are closed at once and ctx's error is returned.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.draining.Store(true)
	err := waitUntil(ctx, func() bool { return h.inflight.Load() == 0 && h.fanoutIdle() })
	var open []*Conn
	h.table.eachMember(func(c *Conn) { open = append(open, c) })
	for _, c := range open {
		c.requestClose(codec.ErrShutdown)
	}
	for _, s := range h.table.shards {
		s.limboMu.Lock()
		for c := range s.limbo {
			if c.state.Load() == stHandshake {
				c.abort()
			}
		}
		s.limboMu.Unlock()
	}
	if err == nil {
		err = waitUntil(ctx, func() bool { return h.live.Load() == 0 })
	}
	if err != nil {
		h.killAll()
		grace, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = waitUntil(grace, func() bool { return h.live.Load() == 0 })
		cancel()
	}
	h.Close()
	return err
}

// killAll closes every socket without ceremony.
func (h *Hub) killAll() {
	h.table.eachMember((*Conn).abort)
	for _, s := range h.table.shards {
		s.limboMu.Lock()
		for c := range s.limbo {
			c.abort()
		}
		s.limboMu.Unlock()
	}
}

// Close stops the Hub's sweeper. Shutdown calls it.
func (h *Hub) Close() {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.stopped
}

func waitUntil(ctx context.Context, done func() bool) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
