package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsd-chat/wsd/session"
)

// Config configures a Bridge.
type Config struct {
	URL      string // nats://host:4222[,nats://…]; required
	Creds    string // NATS credentials file (JWT + nkey seed)
	Token    string
	User     string
	Password string
	CAFile   string // PEM roots to verify the NATS server's TLS certificate
	Prefix   string // first subject token(s); default DefaultPrefix
	BoxID    string // this box's name on the bus; default DefaultBoxID()

	// MaxMessage bounds the text of messages accepted from the bus, like
	// -max-message for clients. 0: session.DefaultMaxMessage.
	MaxMessage int
	// CarryGzip makes the box that accepts a broadcast build its gzip
	// frame once and send it along, so other boxes build none.
	CarryGzip bool
	// QueueLimit bounds the publishes waiting for the bridge goroutine;
	// more are dropped (counted). Default 65536.
	QueueLimit int
	// QueueBytes bounds the bytes of those publishes (a stalled NATS
	// connection must not hold QueueLimit large messages). Default 64 MiB.
	QueueBytes int
	// Inbox is how many received messages may wait before the NATS client
	// drops more as a slow consumer. Default 65536.
	Inbox int
	// ReconnectMin and ReconnectMax bound the reconnect back-off: it
	// doubles from Min to Max, with up to 25% jitter. Defaults 100ms, 5s.
	ReconnectMin, ReconnectMax time.Duration

	Logger *slog.Logger
	// Options are appended to the NATS connection options (tests).
	Options []nats.Option
}

// DefaultBoxID names a box after its host and process, plus four random
// hex digits so a restarted process with a reused pid is a new box.
func DefaultBoxID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "wsd"
	}
	var r [2]byte
	_, _ = rand.Read(r[:])
	id := host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(r[:])
	if len(id) > MaxBoxID {
		id = id[len(id)-MaxBoxID:]
	}
	return id
}

func (c *Config) setDefaults() error {
	if c.URL == "" {
		return errors.New("cluster: no NATS URL")
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !ValidPrefix(c.Prefix) {
		return fmt.Errorf("cluster: bad subject prefix %q", c.Prefix)
	}
	if c.BoxID == "" {
		c.BoxID = DefaultBoxID()
	}
	if len(c.BoxID) > MaxBoxID {
		return fmt.Errorf("cluster: box id longer than %d bytes", MaxBoxID)
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = session.DefaultMaxMessage
	}
	if c.QueueLimit <= 0 {
		c.QueueLimit = 1 << 16
	}
	if c.QueueBytes <= 0 {
		c.QueueBytes = 64 << 20
	}
	if c.Inbox <= 0 {
		c.Inbox = 1 << 16
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 100 * time.Millisecond
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = max(5*time.Second, c.ReconnectMin)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

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
	clock uint64             // Lamport clock of key claims

	maxPay        atomic.Int64 // the server's max_payload, once connected
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
)

type event struct {
	kind evKind
	name string        // room, or subject for evPublish
	data []byte        // encoded message for evPublish
	conn *session.Conn // evKeyJoin, evKeyLeave
	sync chan struct{} // evSync
}

// New checks cfg and returns a Bridge that queues what the Hub tells it
// until Start.
func New(cfg Config) (*Bridge, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Bridge{
		cfg:      cfg,
		subj:     subjects{prefix: cfg.Prefix},
		log:      cfg.Logger.With("box", cfg.BoxID),
		wake:     make(chan struct{}, 1),
		inbox:    make(chan *nats.Msg, cfg.Inbox),
		announce: make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		rooms:    make(map[string]*nats.Subscription),
		keys:     make(map[string]*keyState),
		ksubs:    make(map[string]*keySub),
	}, nil
}

// BoxID returns this box's id on the bus.
func (b *Bridge) BoxID() string { return b.cfg.BoxID }

// Prefix returns the subject prefix.
func (b *Bridge) Prefix() string { return b.cfg.Prefix }

// Stats returns the bridge's live counters.
func (b *Bridge) Stats() *Stats { return &b.stats }

// State describes the NATS connection: "connected", "reconnecting",
// "connecting", "closed".
func (b *Bridge) State() string {
	nc := b.ncp.Load()
	if nc == nil {
		return "connecting"
	}
	switch nc.Status() {
	case nats.CONNECTED:
		return "connected"
	case nats.RECONNECTING:
		return "reconnecting"
	case nats.CLOSED:
		return "closed"
	case nats.DRAINING_PUBS, nats.DRAINING_SUBS:
		return "draining"
	}
	return "connecting"
}

// Server returns the URL of the NATS server connected to, without
// credentials, or "".
func (b *Bridge) Server() string {
	nc := b.ncp.Load()
	if nc == nil || !nc.IsConnected() {
		return ""
	}
	return nc.ConnectedUrlRedacted()
}

// Start connects to NATS and starts delivering. NATS being unreachable is
// not an error: the bridge keeps trying in the background while local
// chat goes on. A bad credentials or CA file is.
func (b *Bridge) Start(hub *session.Hub) error {
	b.hub = hub
	opts := []nats.Option{
		nats.Name("wsd " + b.cfg.BoxID),
		nats.NoEcho(),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(-1), // a publish reaches a server or is counted as dropped
		nats.CustomReconnectDelay(b.backoff),
		nats.PingInterval(10 * time.Second),
		nats.ConnectHandler(func(nc *nats.Conn) { b.connected(nc, false) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { b.connected(nc, true) }),
		nats.DisconnectErrHandler(b.disconnected),
		nats.ErrorHandler(b.asyncError),
	}
	if b.cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(b.cfg.Creds))
	}
	if b.cfg.Token != "" {
		opts = append(opts, nats.Token(b.cfg.Token))
	}
	if b.cfg.User != "" || b.cfg.Password != "" {
		opts = append(opts, nats.UserInfo(b.cfg.User, b.cfg.Password))
	}
	if b.cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(b.cfg.CAFile))
	}
	opts = append(opts, b.cfg.Options...)
	nc, err := nats.Connect(b.cfg.URL, opts...)
	if err != nil {
		// Never echo the URL: it may hold credentials, and a URL that
		// does not parse comes back inside a *url.Error.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("-nats-url does not parse: %w", ue.Err)
		}
		return fmt.Errorf("cluster: nats: %w", err)
	}
	b.nc = nc
	b.ncp.Store(nc)
	if nc.IsConnected() {
		b.connected(nc, false)
	}
	if _, err := nc.ChanSubscribe(b.subj.all(), b.inbox); err != nil {
		nc.Close()
		return fmt.Errorf("cluster: subscribe: %w", err)
	}
	b.stats.Subscriptions.Add(1)
	b.mu.Lock()
	b.started = true
	b.mu.Unlock()
	go b.loop()
	b.signal()
	return nil
}

// Close unsubscribes from everything, flushes what is queued and closes
// the NATS connection. Call it after the Hub's Shutdown.
func (b *Bridge) Close() {
	if b.nc == nil || !b.closing.CompareAndSwap(false, true) {
		return
	}
	close(b.quit)
	<-b.done
	if b.nc.IsConnected() {
		_ = b.nc.FlushTimeout(time.Second)
	}
	b.nc.Close()
	b.stats.Connected.Store(false)
	b.stats.Subscriptions.Store(0)
	b.stats.RoomSubscriptions.Store(0)
	b.stats.KeySubscriptions.Store(0)
}

func (b *Bridge) backoff(attempts int) time.Duration {
	d := b.cfg.ReconnectMin
	for i := 1; i < attempts && d < b.cfg.ReconnectMax; i++ {
		d *= 2
	}
	d = min(d, b.cfg.ReconnectMax)
	var r [1]byte
	_, _ = rand.Read(r[:])
	return d + d*time.Duration(r[0])/1024 // up to 25% jitter
}

func (b *Bridge) connected(nc *nats.Conn, again bool) {
	if b.stats.Connected.Swap(true) {
		return
	}
	if again {
		b.stats.Reconnects.Add(1)
		b.log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
	} else {
		b.log.Info("nats connected", "server", nc.ConnectedUrlRedacted())
	}
	// Claims published while NATS was away were dropped: say again which
	// keys this box holds (see claim.go).
	select {
	case b.announce <- struct{}{}:
	default:
	}
	mp := int(nc.MaxPayload())
	b.maxPayload(mp)
	if over := b.cfg.MaxMessage + 512; mp > 0 && over > mp && !b.warnedPayload.Swap(true) {
		b.log.Warn("texts near -max-message cannot cross: NATS max_payload is smaller; they are refused and counted (too_large). Raise max_payload in the NATS server or lower -max-message",
			"max_payload", mp, "max_message", b.cfg.MaxMessage)
	}
}

func (b *Bridge) disconnected(_ *nats.Conn, err error) {
	if !b.stats.Connected.Swap(false) {
		return
	}
	b.stats.Disconnects.Add(1)
	if b.closing.Load() {
		return
	}
	if err != nil {
		b.log.Warn("nats connection lost; local chat goes on, cross-box messages are dropped until it is back", "err", err)
	} else {
		b.log.Warn("nats connection lost; local chat goes on, cross-box messages are dropped until it is back")
	}
}

func (b *Bridge) asyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) {
		if sub != nil {
			b.scMu.Lock()
			if b.scSubs == nil {
				b.scSubs = make(map[*nats.Subscription]int)
			}
			if _, ok := b.scSubs[sub]; !ok {
				b.scSubs[sub] = 0
			}
			b.scMu.Unlock()
		}
		if !b.slowEpisode.Swap(true) {
			b.stats.SlowConsumer.Add(1)
			b.log.Warn("nats slow consumer: the bridge cannot keep up, messages from other boxes are being dropped",
				"inbox", len(b.inbox), "inbox_cap", cap(b.inbox))
		}
		return
	}
	// The same error again and again (a refused password on every
	// reconnect attempt) is logged once.
	msg := err.Error()
	if prev := b.lastErr.Swap(&msg); prev == nil || *prev != msg {
		b.log.Warn("nats error", "err", err)
	}
}

func (b *Bridge) maxPayload(n int) {
	if n > 0 {
		b.maxPay.Store(int64(n))
	}
}

// signal wakes the loop.
func (b *Bridge) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// push queues an event for the loop. Sub/unsub events are never dropped.
func (b *Bridge) push(e event) {
	b.mu.Lock()
	b.events = append(b.events, e)
	run := b.started
	b.mu.Unlock()
	if run {
		b.signal()
	}
}

// publish queues an encoded message; it reports false (and counts why) if
// it cannot go.
func (b *Bridge) publish(subject string, m *Message) bool {
	if !b.stats.Connected.Load() {
		b.stats.drop(DropDisconnected)
		return false
	}
	if limit := b.maxPay.Load(); limit > 0 && int64(m.Size()) > limit {
		if m.Gzip != nil && int64(m.Size()-4-len(m.Gzip)) <= limit {
			m.Gzip = nil // receivers build it
		} else {
			b.stats.drop(DropTooLarge)
			return false
		}
	}
	size := m.Size()
	b.mu.Lock()
	if b.pubs >= b.cfg.QueueLimit || b.pubBytes+size > b.cfg.QueueBytes {
		b.mu.Unlock()
		b.stats.drop(DropQueueFull)
		return false
	}
	m.Seq = b.seq.Add(1)
	data := m.Append(make([]byte, 0, size))
	b.events = append(b.events, event{kind: evPublish, name: subject, data: data})
	b.pubs++
	b.pubBytes += size
	run := b.started
	b.mu.Unlock()
	b.stats.QueueDepth.Add(1)
	if run {
		b.signal()
	}
	return true
}

// RoomOpened implements session.Bridge.
func (b *Bridge) RoomOpened(room string) { b.push(event{kind: evRoomOpen, name: room}) }

// RoomClosed implements session.Bridge.
func (b *Bridge) RoomClosed(room string) { b.push(event{kind: evRoomClose, name: room}) }

// KeyJoined implements session.Bridge.
func (b *Bridge) KeyJoined(c *session.Conn) { b.push(event{kind: evKeyJoin, conn: c}) }

// KeyLeft implements session.Bridge.
func (b *Bridge) KeyLeft(c *session.Conn) { b.push(event{kind: evKeyLeave, conn: c}) }

// Forward implements session.Bridge.
func (b *Bridge) Forward(room string, m session.Broadcast) bool {
	msg := Message{Kind: KindRoom, BoxID: b.cfg.BoxID, Target: room, Text: m.Text()}
	if b.cfg.CarryGzip && b.stats.Connected.Load() {
		msg.Gzip = m.GzipFrame()
	}
	return b.publish(b.subj.room(room), &msg)
}

// ForwardAll implements session.Bridge.
func (b *Bridge) ForwardAll(text []byte) bool {
	return b.publish(b.subj.all(), &Message{Kind: KindAll, BoxID: b.cfg.BoxID, Text: text})
}

// ForwardKey implements session.Bridge.
func (b *Bridge) ForwardKey(key string, text []byte) bool {
	if len(key) > MaxTarget {
		b.stats.drop(DropTooLarge)
		return false
	}
	return b.publish(b.subj.key(key), &Message{Kind: KindDirect, BoxID: b.cfg.BoxID, Target: key, Text: text})
}

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

// loop is the bridge goroutine: it owns the subscriptions and the key
// states, publishes what the hooks queued, and delivers what arrives.
func (b *Bridge) loop() {
	defer close(b.done)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			b.countSlowDrops()
		case <-b.quit:
			b.drainEvents()
			b.countSlowDrops()
			b.unsubscribeAll()
			return
		case <-b.wake:
			b.drainEvents()
		case m := <-b.inbox:
			b.receive(m)
			// Deliver a burst before looking at the queue again, but not
			// forever: the hooks' events must not wait behind a flood.
			for i := 0; i < 256; i++ {
				select {
				case m = <-b.inbox:
					b.receive(m)
					continue
				default:
				}
				break
			}
		case <-b.announce:
			b.announceAll()
		}
	}
}

// countSlowDrops adds what the NATS client dropped for want of room in
// the inbox to the slow_consumer drops, and ends an episode once the
// inbox is back under half full.
func (b *Bridge) countSlowDrops() {
	b.scMu.Lock()
	for sub, last := range b.scSubs {
		n, err := sub.Dropped()
		if err != nil { // unsubscribed: its last drops were counted on earlier ticks
			delete(b.scSubs, sub)
			continue
		}
		if n > last {
			b.stats.dropped[DropSlowConsumer].Add(uint64(n - last))
			b.scSubs[sub] = n
		}
	}
	b.scMu.Unlock()
	if b.slowEpisode.Load() && len(b.inbox) < cap(b.inbox)/2 {
		b.slowEpisode.Store(false)
		b.log.Info("nats slow consumer episode over", "dropped_so_far", b.stats.Dropped(DropSlowConsumer))
	}
}

func (b *Bridge) drainEvents() {
	for {
		b.mu.Lock()
		evs := b.events
		b.events = b.spare[:0]
		b.spare = nil
		n := b.pubs
		b.pubs, b.pubBytes = 0, 0
		b.mu.Unlock()
		if len(evs) == 0 {
			b.mu.Lock()
			b.spare = evs
			b.mu.Unlock()
			return
		}
		b.stats.QueueDepth.Add(int64(-n))
		for i := range evs {
			b.apply(&evs[i])
			evs[i] = event{}
		}
		b.mu.Lock()
		if cap(evs) <= 4096 {
			b.spare = evs[:0]
		}
		b.mu.Unlock()
	}
}

func (b *Bridge) apply(e *event) {
	switch e.kind {
	case evPublish:
		b.send(e.name, e.data)
	case evRoomOpen:
		if b.rooms[e.name] != nil {
			return
		}
		sub, err := b.nc.ChanSubscribe(b.subj.room(e.name), b.inbox)
		if err != nil {
			b.log.Warn("nats subscribe failed", "room", e.name, "err", err)
			return
		}
		b.rooms[e.name] = sub
		b.stats.Subscriptions.Add(1)
		b.stats.RoomSubscriptions.Add(1)
	case evRoomClose:
		if sub := b.rooms[e.name]; sub != nil {
			_ = sub.Unsubscribe()
			delete(b.rooms, e.name)
			b.stats.Subscriptions.Add(-1)
			b.stats.RoomSubscriptions.Add(-1)
		}
	case evKeyJoin:
		b.keyJoined(e.conn)
	case evKeyLeave:
		b.keyLeft(e.conn)
	case evSync:
		close(e.sync)
	}
}

// send publishes one encoded message now.
func (b *Bridge) send(subject string, data []byte) {
	if err := b.nc.Publish(subject, data); err != nil {
		switch {
		case errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrConnectionClosed),
			errors.Is(err, nats.ErrConnectionReconnecting):
			b.stats.drop(DropDisconnected)
		case errors.Is(err, nats.ErrMaxPayload):
			b.stats.drop(DropTooLarge)
		default:
			b.stats.drop(DropPublishError)
		}
		return
	}
	b.stats.Published.Add(1)
	b.stats.PublishedBytes.Add(uint64(len(data)))
}

func (b *Bridge) unsubscribeAll() {
	for room, sub := range b.rooms {
		_ = sub.Unsubscribe()
		delete(b.rooms, room)
	}
	for subj, ks := range b.ksubs {
		_ = ks.sub.Unsubscribe()
		delete(b.ksubs, subj)
	}
	clear(b.keys)
}

// receive checks and acts on one message from the bus.
func (b *Bridge) receive(nm *nats.Msg) {
	b.stats.Received.Add(1)
	b.stats.ReceivedBytes.Add(uint64(len(nm.Data)))
	var m Message
	if err := Decode(nm.Data, b.cfg.MaxMessage, &m); err != nil {
		switch err {
		case ErrVersion:
			b.stats.drop(DropVersion)
		case ErrTooLarge:
			b.stats.drop(DropTooLarge)
		case ErrInvalid:
			b.stats.drop(DropInvalid)
		default:
			b.stats.drop(DropMalformed)
		}
		return
	}
	if m.BoxID == b.cfg.BoxID {
		b.stats.drop(DropOwn)
		return
	}
	switch m.Kind {
	case KindRoom:
		if nm.Subject != b.subj.room(m.Target) {
			b.stats.drop(DropInvalid)
			return
		}
		b.deliver(b.hub.DeliverRemote(m.Target, m.Text, m.Gzip))
	case KindAll:
		b.deliver(b.hub.DeliverRemoteAll(m.Text, m.Gzip))
	case KindDirect:
		st := b.keys[m.Target]
		if st == nil || st.yielded {
			return // not here (any more), or a key sharing the hash
		}
		if b.hub.DeliverRemoteKey(m.Target, m.Text) {
			b.deliver(1)
		}
	default:
		b.stats.ClaimsReceived.Add(1)
		b.keyMessage(&m)
	}
}

func (b *Bridge) deliver(n int) {
	if b.hub.Draining() {
		b.stats.drop(DropDraining)
		return
	}
	b.stats.RemoteDeliveries.Add(1)
	b.stats.RemoteRecipients.Add(uint64(n))
}
