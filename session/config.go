package session

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/wsd-chat/wsd/chat"
	"github.com/wsd-chat/wsd/codec"
)

// Defaults for Config's zero values: every default of a Hub is here.
const (
	DefaultShards           = 64
	DefaultMaxMessage       = 1 << 20 // 1 MiB, like NATS's max_payload
	DefaultMaxQueue         = 4 << 20 // per-connection outbound bytes before 1008
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultPingInterval     = 30 * time.Second
	DefaultIdleTimeout      = 90 * time.Second // three missed pings
	DefaultCloseTimeout     = 3 * time.Second  // wait for the peer's close frame or EOF
	DefaultMsgBurst         = 10000            // messages at once above MaxMsgRate

	// The memory budgets and the limits that keep clients within them
	// (budget.go, ratelimit.go).
	DefaultInboundBudget  = 128 << 20 // partial input, all connections together
	DefaultOutboundBudget = 256 << 20 // queued output, all connections together
	DefaultMessageTimeout = 30e9      // nanoseconds: 30 s from a message's first byte to its last
	DefaultMaxMsgRate     = 10000     // frames (a one-frame message is one) per second per connection
	DefaultMaxByteRate    = 64 << 20  // payload bytes per second per connection, after gunzip
	DefaultInflateRatio   = 100       // compressed messages may inflate to this many times their size

	// Per-address limits.
	DefaultMaxHandshakesPerIP = 64   // sockets one address may hold before they upgrade
	DefaultInboundSharePerIP  = 0.25 // of InboundBudget one address's partial input may hold

	// What a sender costs is its deliveries: one message to a room of N
	// members is N (limits.go). 100,000 a second is a person sending ten
	// messages a second into a room of 10,000; a burst of one second's
	// worth on top, and any one message passes however large its room.
	DefaultMaxDeliveryRate = 100000 // deliveries per second per sending connection

	// Chat protocol v1 (v1.go).
	DefaultMaxRoomsPerConn  = 100                          // rooms one v1 connection may be in
	DefaultHistorySize      = 100                          // messages retained per room
	DefaultHistoryTTL       = 5 * time.Minute              // a retained message is dropped after this
	DefaultHistoryBytes     = 256 << 10                    // envelope bytes retained per room
	DefaultPresenceListMax  = chat.DefaultPresenceListMax  // members above which presence carries counts only
	DefaultPresenceInterval = chat.DefaultPresenceInterval // least time between a room's presence frames
	DefaultPresenceGrace    = chat.DefaultPresenceGrace    // a key back within it causes no leave/join
	DefaultDedupWindow      = chat.MinDedupWindow          // also the shortest allowed
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
	MaxMsgRate       float64 // frames per second per connection; 0: DefaultMaxMsgRate, <0: unlimited
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
	InflateRatio      int     // a compressed message may inflate this many times (past 64 KiB); 0: DefaultInflateRatio
	// Deliveries (a message times the members it was queued for on this
	// box) per second a connection's messages may cost; 0:
	// DefaultMaxDeliveryRate, <0: unlimited. Over it: 1008.
	MaxDeliveryRate float64
	// The same for all the connections of one source address together;
	// 0: no cap (behind a proxy every client shares one address).
	MaxDeliveryRatePerIP float64

	// The memory budgets (see budget.go); 0 takes the defaults.
	InboundBudget  int64         // partial messages and request heads, all connections
	OutboundBudget int64         // broadcasts, queued frames, all connections
	MessageTimeout time.Duration // first to last byte of one message

	// Subprotocols are selected from a client's Sec-WebSocket-Protocol
	// offer; codec.V1Protocol is always offered after them.
	Subprotocols []string

	// Chat protocol v1 (v1.go); 0 takes the defaults. The history bounds
	// are per room, and what it holds is charged to the outbound budget.
	MaxRoomsPerConn int           // rooms one v1 connection may be in, its first included
	HistorySize     int           // messages retained per room; also the largest history a join may ask for
	HistoryTTL      time.Duration // age past which a retained message is dropped
	HistoryBytes    int           // envelope bytes retained per room
	// HistoryTotalBytes bounds the history of all rooms together (a room
	// that takes it over sheds its own oldest); 0: a quarter of the
	// outbound budget, so history can never starve the queues.
	HistoryTotalBytes int64
	DedupWindow       time.Duration // how long a send's id is remembered; at least chat.MinDedupWindow
	DedupMax          int           // ids remembered at most, all connections together (oldest evicted first); 0: chat.DefaultDedupMax
	// Presence: at most one presence frame per room per PresenceInterval,
	// with the joined/left lists only while the room and the lists have
	// at most PresenceListMax keys (also what a members answer lists); a
	// key back within PresenceGrace shows neither leave nor join (< 0: no
	// grace).
	PresenceInterval time.Duration
	PresenceGrace    time.Duration
	PresenceListMax  int
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

	// Log, if set, keeps every room's order and history outside the
	// process (package history), for all the boxes sharing it; see
	// log.go. Nil: the Ring orders each room on this box, in memory. The
	// Hub starts it (NewHub; LogError says how that went) but does not
	// close it. LogPublishTimeout bounds Publish's wait for the Log's
	// stamp; 0: DefaultLogPublishTimeout.
	Log               chat.Log
	LogPublishTimeout time.Duration
	// A join the Ring cannot answer reads the Log off the reactor's
	// workers (logread.go): at most LogReads Reads at once, LogReadQueue
	// more joins waiting for one (past it a join is answered from the
	// Ring alone), each answered within LogReadTimeout. 0: the defaults.
	LogReads       int
	LogReadQueue   int
	LogReadTimeout time.Duration

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
	c.setRateDefaults()
	if c.MaxByteRate == 0 {
		c.MaxByteRate = DefaultMaxByteRate
	}
	if c.MaxDeliveryRate == 0 {
		c.MaxDeliveryRate = DefaultMaxDeliveryRate
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
	c.setV1Defaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// setRateDefaults applies the message rate's defaults, the part of
// setDefaults a reload (SetRateLimit) shares: 0 is the default rate, < 0
// unlimited.
func (c *Config) setRateDefaults() {
	if c.MsgBurst <= 0 {
		c.MsgBurst = DefaultMsgBurst
	}
	if c.MaxMsgRate == 0 {
		c.MaxMsgRate = DefaultMaxMsgRate
	}
}

func (c *Config) setV1Defaults() {
	if c.MaxRoomsPerConn <= 0 {
		c.MaxRoomsPerConn = DefaultMaxRoomsPerConn
	}
	if c.HistorySize <= 0 {
		c.HistorySize = DefaultHistorySize
	}
	if c.HistoryTTL <= 0 {
		c.HistoryTTL = DefaultHistoryTTL
	}
	if c.HistoryTotalBytes <= 0 {
		c.HistoryTotalBytes = c.OutboundBudget / 4
	}
	if c.HistoryBytes <= 0 {
		c.HistoryBytes = DefaultHistoryBytes
	}
	if c.LogPublishTimeout <= 0 {
		c.LogPublishTimeout = DefaultLogPublishTimeout
	}
	if c.LogReads <= 0 {
		c.LogReads = DefaultLogReads
	}
	if c.LogReadQueue <= 0 {
		c.LogReadQueue = DefaultLogReadQueue
	}
	if c.LogReadTimeout <= 0 {
		c.LogReadTimeout = DefaultLogReadTimeout
	}
	if c.DedupWindow < DefaultDedupWindow {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.PresenceListMax <= 0 {
		c.PresenceListMax = DefaultPresenceListMax
	}
	if c.PresenceInterval <= 0 {
		c.PresenceInterval = DefaultPresenceInterval
	}
	if c.PresenceGrace == 0 {
		c.PresenceGrace = DefaultPresenceGrace
	}
}
