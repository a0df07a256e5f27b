package session

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsd-chat/wsd/chat"
	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/poller"
	"github.com/wsd-chat/wsd/tlswire"
)

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
	deliveries rateLimit // deliveries a connection's messages cost (limits.go)
	addrRates  *addrRates
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
	ring       *chat.Ring    // every room's order and history (v1.go)
	dedup      *chat.Dedup   // v1 sends' ids (v1.go)
	presence   *chat.Presence
	v1Subs     atomic.Int64  // v1 subscriptions on this box (v1.go)
	order      atomic.Uint64 // room messages published (v1.go: subEntry.after)
	lg         logState      // the room order kept outside, if Config.Log (log.go)
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
		deliveries: newRateLimit(cfg.MaxDeliveryRate, deliveryBurst(cfg.MaxDeliveryRate)),
		addrRates:  newAddrRates(cfg.MaxDeliveryRatePerIP),
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
	charge := func(d int64) { h.out.add(d) }
	h.ring = chat.NewRing(chat.RingConfig{MaxMessages: cfg.HistorySize, MaxAge: cfg.HistoryTTL,
		MaxBytes: cfg.HistoryBytes, MaxTotalBytes: cfg.HistoryTotalBytes, Charge: charge, Encode: h.gzipReplayFrame, Frame: textReplayFrame})
	h.dedup = chat.NewDedup(chat.DedupConfig{Window: cfg.DedupWindow, MaxEntries: cfg.DedupMax, Charge: charge})
	h.presence = chat.NewPresence(chat.PresenceConfig{Interval: cfg.PresenceInterval, Grace: cfg.PresenceGrace, ListMax: cfg.PresenceListMax,
		Roster: h.table, Share: cfg.Bridge != nil})
	protocols := append(append([]string(nil), cfg.Subprotocols...), codec.V1Protocol)
	h.upgraders.New = func() any {
		u := codec.NewUpgrader()
		u.Admit = h.admit
		u.Protocols = protocols
		u.Deflate = cfg.Deflate
		return u
	}
	h.startLog() // log.go
	go h.sweep()
	go h.sweepHistory()  // v1.go
	go h.sweepPresence() // v1.go
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

// debugging reports whether debug lines are logged: a line on a
// connection's path is built only then, since its arguments cost
// allocations whether or not the logger drops it.
func (h *Hub) debugging() bool { return h.log.Enabled(context.Background(), slog.LevelDebug) }

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
		c.extension().tls = tlswire.NewConn(h.cfg.TLS, h.tlsPool, (*tlsOwner)(c))
	}
	now := time.Now().UnixNano()
	c.lastSeen.Store(now)
	c.timer.Store(now + int64(h.cfg.HandshakeTimeout))
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
