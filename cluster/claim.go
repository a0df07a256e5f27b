package cluster

import (
	"time"

	"github.com/wsd-chat/wsd/session"
)

// Which connection wins when one key is connected on two boxes.
//
// A box that gets a connection for key k subscribes to k's subject and
// then publishes a claim on it carrying a stamp: (clock, box id). The
// clock is a hybrid logical clock (see tick): at least the box's wall time
// in nanoseconds and one more than the highest stamp the box has seen on
// any key subject, so a box that has seen another's claim always stamps
// above it. Stamps are totally ordered (clock, then box id) and both boxes
// compare the same two stamps, so they agree on the winner; wall time
// only keeps the clocks near each other, the order does not rely on it.
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
	stamp   uint64 // our clock for conn's claim
	yielded bool   // conn lost to a later connection elsewhere; waiting for KeyLeft

	// A claim above a hold from too far ahead, waiting (see reclaim).
	reclaimTimer *time.Timer
	reclaimAbove uint64
}

func (st *keyState) stopReclaim() {
	if st.reclaimTimer != nil {
		st.reclaimTimer.Stop()
		st.reclaimTimer, st.reclaimAbove = nil, 0
	}
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
	st.stopReclaim()
	st.conn, st.stamp, st.yielded = c, b.tick(), false
	b.sendKey(kindClaim, key, st.stamp)
}

func (b *Bridge) keyLeft(c *session.Conn) {
	key := c.Key()
	st := b.keys[key]
	if st == nil || st.conn != c {
		return
	}
	st.stopReclaim()
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
	b.send(b.subj.key(key), m.Append(make([]byte, 0, m.Size()+macSize)))
	b.stats.ClaimsSent.Add(1)
}

// Stamps are hybrid logical clocks: nanoseconds of wall time, pushed
// forward by the stamps other boxes send. A clock pushed by the bus alone
// could be driven by forged stamps to the end of its range, and a box
// whose clock ran far ahead of the others' would have its claims refused
// by them for good (each box in the race keeping its connection). Tying
// the clock to wall time bounds both:
//
//   - a stamp from the bus pushes this box's clock at most to
//     now+maxClockLead, so this box's own stamps never run further ahead
//     of its wall clock than that (plus one per claim);
//   - a stamp more than maxStampLead ahead of now is refused (counted as
//     invalid): no honest box, whose clock is within maxStampLead-
//     maxClockLead of ours, sends one;
//   - a hold above now+maxClockLead (an older holder whose clock is ahead
//     of ours) is answered when our wall clock has caught up with it, so
//     our claim above it is again within the lead: no box ever stamps
//     beyond its own bound, whatever was forged.
//
// Forged stamps can then move a clock at most maxClockLead ahead of wall
// time, and every later claim still wins.
const (
	maxClockLead = time.Second
	maxStampLead = 10 * time.Minute
)

// wallClock is the clock stamps follow (Bridge.wall; tests skew it).
func wallClock() uint64 { return uint64(time.Now().UnixNano()) }

// tick advances the clock for a new claim and returns its stamp.
func (b *Bridge) tick() uint64 {
	b.clock = max(b.clock+1, b.wall())
	return b.clock
}

// keyMessage applies a claim, hold or announce from another box.
func (b *Bridge) keyMessage(m *message) {
	now := b.wall()
	if m.Stamp > now+uint64(maxStampLead) {
		b.stats.drop(DropInvalid)
		return
	}
	b.clock = max(b.clock, min(m.Stamp, now+uint64(maxClockLead)))
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
			b.reclaim(m.Target, st, m.Stamp)
		}
	case kindAnnounce:
		if theirsLater {
			b.yield(st)
		} else {
			b.sendKey(kindAnnounce, m.Target, st.stamp)
		}
	}
}

// reclaim claims key again above a hold stamped above. If that is further
// ahead of our wall clock than maxClockLead, the claim waits until it is
// not (at most maxStampLead-maxClockLead); one wait per key at a time.
func (b *Bridge) reclaim(key string, st *keyState, above uint64) {
	now := b.wall()
	if limit := now + uint64(maxClockLead); above >= limit {
		st.reclaimAbove = max(st.reclaimAbove, above)
		if st.reclaimTimer == nil {
			b.armReclaim(key, st, above-limit+1)
		}
		return
	}
	b.clock = max(b.clock, above)
	st.stamp = b.tick()
	b.sendKey(kindClaim, key, st.stamp)
}

// armReclaim queues an evReclaim for key's connection after ns.
func (b *Bridge) armReclaim(key string, st *keyState, ns uint64) {
	c := st.conn
	st.reclaimTimer = time.AfterFunc(time.Duration(ns), func() {
		b.push(event{kind: evReclaim, name: key, conn: c})
	})
}

// reclaimDue runs a waiting claim (evReclaim) if key is still held here
// by the same connection and not yet above the hold.
func (b *Bridge) reclaimDue(key string, c *session.Conn) {
	st := b.keys[key]
	if st == nil || st.conn != c || st.reclaimTimer == nil {
		return
	}
	st.reclaimTimer = nil
	above := st.reclaimAbove
	st.reclaimAbove = 0
	if st.yielded || st.stamp > above {
		return
	}
	b.reclaim(key, st, above)
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
	b.presenceResync()
	for key, st := range b.keys {
		if !st.yielded {
			b.sendKey(kindAnnounce, key, st.stamp)
		}
	}
}
