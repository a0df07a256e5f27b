package cluster

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsd-chat/wsd/session"
)

// Bridge connects one Hub to NATS. It implements session.Bridge; give it
// to session.Config.Bridge, then Start it with the Hub.
type Bridge struct {
	cfg  Config
	subj subjects
	log  *slog.Logger
	hub  *session.Hub
	nc   *nats.Conn // set by Start, before the loop runs
	ncp  atomic.Pointer[nats.Conn]

	stats Stats
	seq   atomic.Uint64

	// The queue from the hooks to the loop.
	mu       sync.Mutex
	events   []event
	spare    []event
	pubs     int // publishes among events
	pubBytes int // their bytes
	wake     chan struct{}
	inbox    chan *nats.Msg
	announce chan struct{}
	quit     chan struct{}
	done     chan struct{}
	started  bool
	closing  atomic.Bool

	slowEpisode atomic.Bool
	scMu        sync.Mutex
	scSubs      map[*nats.Subscription]int // subscriptions that dropped, with their last count
	lastErr     atomic.Pointer[string]

	// Owned by the loop goroutine.
	rooms map[string]*nats.Subscription
	keys  map[string]*keyState
	ksubs map[string]*keySub // key subject → subscription, shared by keys with one hash
	clock uint64             // hybrid logical clock of key claims (claim.go)
	pres  presenceState      // presence across boxes (presence.go)

	// Publishes the server has not confirmed yet (loop.go: batch).
	open       batch       // owned by the loop
	confirming atomic.Bool // the confirmer holds a batch
	toConfirm  chan batch
	confirmed  chan struct{} // closed when the confirmer is done

	wall func() uint64 // wall time in ns: wallClock

	busKeys       atomic.Pointer[busKeys] // nil: messages are neither signed nor checked
	maxPay        atomic.Int64            // the server's max_payload, once connected
	warnedPayload atomic.Bool
}

type keySub struct {
	sub  *nats.Subscription
	refs int
}

type evKind uint8

const (
	evPublish evKind = iota
	evRoomOpen
	evRoomClose
	evKeyJoin
	evKeyLeave
	evSync
	evReclaim // a claim that waited for the wall clock (claim.go)
)

type event struct {
	kind evKind
	name string        // room, subject for evPublish, key for evReclaim
	data []byte        // encoded message for evPublish
	conn *session.Conn // evKeyJoin, evKeyLeave, evReclaim
	sync chan struct{} // evSync
}

// New checks cfg and returns a Bridge that queues what the Hub tells it
// until Start.
func New(cfg Config) (*Bridge, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	keys, err := newBusKeys(cfg.BusKeys)
	if err != nil {
		return nil, err
	}
	b := &Bridge{
		cfg:       cfg,
		subj:      subjects{prefix: cfg.Prefix},
		log:       cfg.Logger.With("box", cfg.BoxID),
		wake:      make(chan struct{}, 1),
		inbox:     make(chan *nats.Msg, cfg.Inbox),
		announce:  make(chan struct{}, 1),
		quit:      make(chan struct{}),
		toConfirm: make(chan batch, 1),
		confirmed: make(chan struct{}),
		done:      make(chan struct{}),
		rooms:     make(map[string]*nats.Subscription),
		keys:      make(map[string]*keyState),
		ksubs:     make(map[string]*keySub),
		wall:      wallClock,
	}
	b.busKeys.Store(keys)
	return b, nil
}

// BoxID returns this box's id on the bus.
func (b *Bridge) BoxID() string { return b.cfg.BoxID }

// Prefix returns the subject prefix.
func (b *Bridge) Prefix() string { return b.cfg.Prefix }

// Stats returns the bridge's live counters.
func (b *Bridge) Stats() *Stats { return &b.stats }

// Sync waits until everything the Hub told the bridge before the call has
// been applied and the NATS server has seen it (one round trip): after it,
// this box's subscriptions are in place. For tests and tools.
func (b *Bridge) Sync(timeout time.Duration) error {
	ch := make(chan struct{})
	b.push(event{kind: evSync, sync: ch})
	select {
	case <-ch:
	case <-time.After(timeout):
		return errors.New("cluster: sync timed out")
	}
	return b.nc.FlushTimeout(timeout)
}
