package cluster

import "github.com/wsd-chat/wsd/session"

// Which connection wins when one key is connected on two boxes.
//
// A box that gets a connection for key k subscribes to k's subject and
// then publishes a claim on it carrying a stamp: (Lamport counter, box id).
// The counter is one more than the highest stamp the box has seen on any
// key subject, so a box that has seen another's claim always stamps above
// it. Stamps are totally ordered (counter, then box id) and both boxes
// compare the same two stamps, so they agree on the winner without clocks.
//
// "Later" is then defined by what the NATS server saw:
//
//   - If box B subscribed to k's subject after A's claim had passed the
//     server, B could not know of A: B's connection is the later one. A
//     (subscribed since its claim) sees B's claim; if B's stamp is lower,
//     A answers with a hold carrying its own stamp, and B, holding a
//     connection whose claim was never answered by a higher claim, claims
//     again above the hold's stamp. A then yields: its connection is
//     closed with 4001.
//   - If both claims passed the server after both subscriptions (the two
//     connects raced within a NATS round trip), each box sees the other's
//     claim and the higher stamp wins on both, with no further message.
//
// A connection's place in this order is set when its claim reaches NATS,
// a moment after its 101 was written (the hook queues it, the bridge
// goroutine subscribes and publishes): two connects of one key on two
// boxes within that window are a race either may win.
//
// Since a subscription and a publish from one NATS connection are handled
// by the server in order, and each box subscribes before it claims, one of
// the two cases always holds on a single NATS server, so exactly one
// connection is left. Across a NATS cluster, interest travels between
// servers asynchronously; two claims racing within that propagation time
// could both go unseen, and then both connections stay until one of the
// boxes reconnects to NATS and announces its keys again (the higher stamp
// wins then). Claims lost while NATS is away are announced on reconnect
// the same way.

type keyState struct {
	conn    *session.Conn
	stamp   uint64 // our counter for conn's claim
	yielded bool   // conn lost to a later connection elsewhere; waiting for KeyLeft
}

// stampLess orders (counter, box id) pairs.
func stampLess(a uint64, aBox string, b uint64, bBox string) bool {
	return a < b || a == b && aBox < bBox
}

func (b *Bridge) keyJoined(c *session.Conn) {
	key := c.Key()
	if len(key) > maxTarget {
		return // cannot be claimed on the bus; stays a local key
	}
	st := b.keys[key]
	if st == nil {
		st = &keyState{}
		b.keys[key] = st
		b.subscribeKey(key)
	}
	b.clock++
	st.conn, st.stamp, st.yielded = c, b.clock, false
	b.sendKey(kindClaim, key, st.stamp)
}

func (b *Bridge) keyLeft(c *session.Conn) {
	key := c.Key()
	st := b.keys[key]
	if st == nil || st.conn != c {
		return
	}
	delete(b.keys, key)
	b.unsubscribeKey(key)
}

func (b *Bridge) subscribeKey(key string) {
	subject := b.subj.key(key)
	if ks := b.ksubs[subject]; ks != nil {
		ks.refs++
		return
	}
	sub, err := b.nc.ChanSubscribe(subject, b.inbox)
	if err != nil {
		b.log.Warn("nats subscribe failed", "err", err)
		return
	}
	b.ksubs[subject] = &keySub{sub: sub, refs: 1}
	b.stats.Subscriptions.Add(1)
	b.stats.KeySubscriptions.Add(1)
}

func (b *Bridge) unsubscribeKey(key string) {
	subject := b.subj.key(key)
	ks := b.ksubs[subject]
	if ks == nil {
		return
	}
	if ks.refs--; ks.refs > 0 {
		return
	}
	_ = ks.sub.Unsubscribe()
	delete(b.ksubs, subject)
	b.stats.Subscriptions.Add(-1)
	b.stats.KeySubscriptions.Add(-1)
}

func (b *Bridge) sendKey(kind msgKind, key string, stamp uint64) {
	if !b.stats.Connected.Load() {
		b.stats.drop(DropDisconnected)
		return
	}
	m := message{Kind: kind, BoxID: b.cfg.BoxID, Seq: b.seq.Add(1), Stamp: stamp, Target: key}
	b.send(b.subj.key(key), m.Append(make([]byte, 0, m.Size())))
	b.stats.ClaimsSent.Add(1)
}

// maxStampLead bounds how far ahead of this box's clock a stamp from the
// bus may be. Legitimate clocks move by one per claim, so no box is ever
// billions of claims ahead; a stamp that is would drag every clock to the
// end of its range (and, at 2^64, wrap it), breaking the order for good.
const maxStampLead = 1 << 32

// keyMessage applies a claim, hold or announce from another box.
func (b *Bridge) keyMessage(m *message) {
	if m.Stamp > b.clock+maxStampLead {
		b.stats.drop(DropInvalid)
		return
	}
	b.clock = max(b.clock, m.Stamp)
	st := b.keys[m.Target]
	if st == nil || st.yielded {
		return
	}
	theirsLater := stampLess(st.stamp, b.cfg.BoxID, m.Stamp, m.BoxID)
	switch m.Kind {
	case kindClaim:
		if theirsLater {
			b.yield(st)
		} else {
			b.sendKey(kindHold, m.Target, st.stamp)
		}
	case kindHold:
		// An older holder we never saw claim: ours is the later
		// connection. Claim again above it.
		if theirsLater {
			b.clock++
			st.stamp = b.clock
			b.sendKey(kindClaim, m.Target, st.stamp)
		}
	case kindAnnounce:
		if theirsLater {
			b.yield(st)
		} else {
			b.sendKey(kindAnnounce, m.Target, st.stamp)
		}
	}
}

func (b *Bridge) yield(st *keyState) {
	st.yielded = true
	if b.hub.Kick(st.conn) {
		b.stats.RemoteKicks.Add(1)
	}
}

// announceAll re-publishes the claim of every key held here, after the
// NATS connection came (back).
func (b *Bridge) announceAll() {
	for key, st := range b.keys {
		if !st.yielded {
			b.sendKey(kindAnnounce, key, st.stamp)
		}
	}
}
