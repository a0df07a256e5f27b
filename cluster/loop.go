package cluster

import (
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// loop is the bridge goroutine: it owns the subscriptions and the key
// states, publishes what the hooks queued, and delivers what arrives.
func (b *Bridge) loop() {
	defer close(b.done)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	ptick := time.NewTicker(b.presenceEvery())
	defer ptick.Stop()
	for {
		select {
		case <-tick.C:
			b.countSlowDrops()
		case now := <-ptick.C:
			b.presenceTick(now)
		case <-b.quit:
			b.drainEvents()
			b.countSlowDrops()
			b.presenceGone()
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
		b.handOver()
	}
}

// countSlowDrops adds what the NATS client dropped for want of room in
// the inbox to the slow_consumer drops, and ends an episode once the
// inbox is back under half full.
func (b *Bridge) countSlowDrops() {
	b.scMu.Lock()
	grew := false
	for sub, last := range b.scSubs {
		n, err := sub.Dropped()
		if err != nil { // unsubscribed: its last drops were counted on earlier ticks
			delete(b.scSubs, sub)
			continue
		}
		if n > last {
			b.stats.dropped[DropSlowConsumer].Add(uint64(n - last))
			b.scSubs[sub] = n
			grew = true
		}
	}
	b.scMu.Unlock()
	if grew {
		b.presenceAskAll() // presence changes may be among the lost (presence.go)
	}
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
		b.presenceOpen(e.name)
	case evRoomClose:
		if sub := b.rooms[e.name]; sub != nil {
			_ = sub.Unsubscribe()
			delete(b.rooms, e.name)
			b.stats.Subscriptions.Add(-1)
			b.stats.RoomSubscriptions.Add(-1)
		}
		b.presenceClose(e.name)
	case evKeyJoin:
		b.keyJoined(e.conn)
	case evKeyLeave:
		b.keyLeft(e.conn)
	case evSync:
		close(e.sync)
	case evReclaim:
		b.reclaimDue(e.name, e.conn)
	}
}

// send publishes one encoded message now.
func (b *Bridge) send(subject string, data []byte) {
	if k := b.busKeys.Load(); k != nil {
		data = k.sign(subject, data)
	}
	epoch := b.nc.Stats().Reconnects
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
	b.took(len(data), epoch)
}

// confirmTimeout bounds the wait for the NATS server's answer to the ping
// that follows a batch of publishes; a slower answer is waited for again.
const confirmTimeout = time.Second

// A batch is a run of publishes the client took on one connection (the
// client's reconnect count when they were taken), not yet settled.
type batch struct {
	n     uint64
	bytes uint64
	epoch uint64
}

// Publishes are settled in batches: counted as published once the NATS
// server has answered a ping sent after them on the same connection, as
// dropped (disconnected) once that connection is gone without the answer.
// Taken by the client is not enough: it discards what it has not written
// when a connection breaks, and what it wrote may never have reached the
// server. The loop closes a batch after each round of work and hands it to
// the confirmer goroutine, which sends the ping and waits, so the loop
// never waits for NATS; while one batch waits, the next one grows.

// took adds a publish the client took to the open batch. A batch whose
// connection is gone (the reconnect count moved) can no longer be
// answered: it is dropped.
func (b *Bridge) took(size int, epoch uint64) {
	if b.open.n > 0 && b.open.epoch != epoch {
		b.stats.dropped[DropDisconnected].Add(b.open.n)
		b.open = batch{}
	}
	if b.open.n == 0 {
		b.open.epoch = epoch
	}
	b.open.n++
	b.open.bytes += uint64(size)
}

// handOver gives the open batch to the confirmer unless it is busy with
// the one before.
func (b *Bridge) handOver() {
	if b.open.n == 0 || b.confirming.Load() {
		return
	}
	b.confirming.Store(true)
	b.toConfirm <- b.open
	b.open = batch{}
}

// confirmer settles the batches handOver gives it, until toConfirm closes.
func (b *Bridge) confirmer() {
	defer close(b.confirmed)
	for bt := range b.toConfirm {
		b.settle(bt)
		b.confirming.Store(false)
		b.signal() // the loop hands over what grew meanwhile
	}
}

func (b *Bridge) settle(bt batch) {
	for {
		if b.nc.Status() != nats.CONNECTED || b.nc.Stats().Reconnects != bt.epoch {
			break // the ping would go on another connection
		}
		err := b.nc.FlushTimeout(confirmTimeout)
		if b.nc.Stats().Reconnects != bt.epoch {
			break // answered, if at all, on a new connection
		}
		if err == nil {
			b.stats.Published.Add(bt.n)
			b.stats.PublishedBytes.Add(bt.bytes)
			return
		}
		if !errors.Is(err, nats.ErrTimeout) || b.closing.Load() {
			break
		}
	}
	b.stats.dropped[DropDisconnected].Add(bt.n)
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
	for _, st := range b.keys {
		st.stopReclaim()
	}
	clear(b.keys)
}

// receive checks and acts on one message from the bus.
func (b *Bridge) receive(nm *nats.Msg) {
	b.stats.Received.Add(1)
	b.stats.ReceivedBytes.Add(uint64(len(nm.Data)))
	if k := b.busKeys.Load(); k != nil {
		if reason := k.verify(nm.Subject, nm.Data); reason >= 0 {
			b.stats.drop(reason)
			if len(nm.Data) > 1 && msgKind(nm.Data[1]).isPresence() {
				b.stats.PresenceDropped.Add(1)
			}
			return
		}
	}
	var m message
	if err := decode(nm.Data, b.cfg.MaxMessage, &m); err != nil {
		if len(nm.Data) > 1 && msgKind(nm.Data[1]).isPresence() {
			b.stats.PresenceDropped.Add(1)
		}
		switch err {
		case errVersion:
			b.stats.drop(DropVersion)
		case errTooLarge:
			b.stats.drop(DropTooLarge)
		case errInvalid:
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
	case kindRoom:
		if nm.Subject != b.subj.room(m.Target) {
			b.stats.drop(DropInvalid)
			return
		}
		b.deliver(b.hub.DeliverRemoteFrom(m.Target, m.Text, m.From, m.ID))
	case kindAll:
		b.deliver(b.hub.DeliverRemoteAll(m.Text, nil))
	case kindPresence, kindPresenceAsk, kindLease, kindGone:
		b.receivePresence(nm.Subject, &m)
	case kindDirect:
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
