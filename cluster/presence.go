package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsd-chat/wsd/chat"
)

// Presence across boxes: each box tells the others its own members of
// the rooms it has members in, and keeps theirs of those rooms; its Hub's
// chat.Presence counts and lists the union (chat/presence_remote.go).
//
//	<prefix>.presence.<room token>   a box's changes of the room
//	                                 (kindPresence) and asks for a box's
//	                                 whole set (kindPresenceAsk); a box
//	                                 subscribes while it has members there
//	<prefix>.boxes                   leases (kindLease) and goodbyes
//	                                 (kindGone); every box subscribes
//
// Once per presence interval the bridge takes the box's changes since the
// last time (chat.Presence.LocalChanges: the keys that joined and left,
// coalesced as the presence events are) and publishes one message per
// changed room, numbered per room; its lease goes out every lease/3. A
// receiver applies a change that follows the last one it applied, takes
// a whole set (a snapshot, or change 1: from empty) as it is, and asks
// the box for its whole set when it sees a gap or a box it does not know
// in the room; a box that newly follows a room asks every box. A box that
// reconnects to NATS sends its whole sets again and asks for everyone's.
//
// A box whose lease runs out (it crashed, or is cut off) has its members
// removed: those on no other box leave. A box that shuts down keeps its
// lease going through the drain, its closed connections counted for the
// presence grace as on one box, so a member who reconnects to another box
// within the grace is on two boxes for a moment and no one sees it leave;
// when the box finally goes it says so (kindGone) and the others keep
// its members for the grace more (the last it closed are reconnecting
// right then), then drop what is left.
//
// Why leases on core NATS rather than a NATS KV bucket with TTLs: a KV
// member set costs a JetStream write (replicated, on disk) per join and
// per leave of every member, and a TTL refresh per key to tell a crashed
// box's members from live ones; leases cost one small core message per
// box per lease/3 whatever the members, and the changes go at most once
// per room per interval, coalesced. What KV would add, a set that
// outlives every box, wsd has no use for: members are connections.

// Defaults of presence across boxes.
const (
	// DefaultPresenceLease is how long a box's members outlive its last
	// lease renewal (-presence-lease).
	DefaultPresenceLease = 15 * time.Second
	// maxPresenceBoxes bounds the boxes a box keeps members of; more are
	// dropped (counted) rather than grow without limit.
	maxPresenceBoxes = 1024
)

// presenceState is the bridge's side of presence; owned by the loop.
type presenceState struct {
	// id names this box in presence messages: its box id and a random
	// suffix drawn at start, so a box restarted under the same -box-id is
	// a new box whose predecessor's members leave with its lease.
	id        string
	p         *chat.Presence
	interval  time.Duration
	lease     time.Duration
	rooms     map[string]*presRoom // followed: rooms with members here
	lingering map[string]*presRoom // of those, rooms whose last member here is in its grace
	boxes     map[string]*presBox  // other boxes with members in them
	nextShare time.Time
	nextBeat  time.Time
	msg       presenceMsg
	buf       []byte
}

// presRoom is one followed room.
type presRoom struct {
	sub   *nats.Subscription
	seqs  map[string]uint64    // box → the last change of it applied
	asked map[string]time.Time // box → when it was last asked for its whole set
}

// presBox is another box with members in a followed room.
type presBox struct {
	deadline time.Time
	lease    time.Duration
	rooms    int  // followed rooms it has members in
	gone     bool // it said goodbye: deadline is the end of the grace, not of a lease
}

func (s subjects) presence(room string) string {
	return s.prefix + ".presence." + chat.RoomToken(room)
}
func (s subjects) boxes() string { return s.prefix + ".boxes" }

// presenceStart sets presence up at Start: the boxes subject.
func (b *Bridge) presenceStart() error {
	ps := &b.pres
	ps.id = presenceID(b.cfg.BoxID)
	ps.p = b.hub.Presence()
	ps.interval = b.hub.Config().PresenceInterval
	ps.lease = b.cfg.PresenceLease
	ps.rooms = make(map[string]*presRoom)
	ps.lingering = make(map[string]*presRoom)
	ps.boxes = make(map[string]*presBox)
	// The first renewal after a third of the lease, like the others: a
	// box's first change starts its lease on the receivers.
	ps.nextBeat = time.Now().Add(ps.lease / 3)
	if _, err := b.nc.ChanSubscribe(b.subj.boxes(), b.inbox); err != nil {
		return err
	}
	b.stats.Subscriptions.Add(1)
	return nil
}

// presenceEvery is how often the loop looks at presence: often enough
// for one share per interval and one lease renewal per lease/3.
func (b *Bridge) presenceEvery() time.Duration {
	return max(min(b.hub.Config().PresenceInterval, b.cfg.PresenceLease/3)/2, 5*time.Millisecond)
}

// presenceTick shares this box's changes, renews its lease and expires
// the leases of silent boxes.
func (b *Bridge) presenceTick(now time.Time) {
	ps := &b.pres
	connected := b.stats.Connected.Load()
	if connected && !now.Before(ps.nextShare) {
		ps.nextShare = now.Add(ps.interval)
		ps.p.LocalChanges(b.sharePresence)
	}
	if connected && !now.Before(ps.nextBeat) {
		ps.nextBeat = now.Add(ps.lease / 3)
		ps.buf = appendLease(ps.buf[:0], ps.lease)
		b.publish(b.subj.boxes(), &message{Kind: kindLease, BoxID: b.pres.id, Seq: b.seq.Load(), Text: ps.buf})
	}
	for room := range ps.lingering {
		if ps.p.LocalCount(room) == 0 {
			b.unfollow(room)
		}
	}
	for id, box := range ps.boxes {
		if box.gone && now.After(box.deadline) {
			b.forgetBox(id)
			continue
		}
		if now.After(box.deadline) {
			b.stats.LeasesExpired.Add(1)
			b.log.Info("presence lease expired: the box's members leave", "of_box", id, "lease", box.lease)
			b.forgetBox(id)
		}
	}
}

// sharePresence publishes one room's change (LocalChanges' emit).
func (b *Bridge) sharePresence(lc *chat.LocalChange) {
	ps := &b.pres
	if cap(ps.buf) < presenceSize(lc) {
		ps.buf = make([]byte, 0, presenceSize(lc))
	}
	ps.buf = appendPresence(ps.buf[:0], lc)
	if b.publish(b.subj.presence(lc.Room), &message{Kind: kindPresence, BoxID: b.pres.id, Seq: lc.Seq, Target: lc.Room, Text: ps.buf}) {
		b.stats.PresenceSent.Add(1)
	}
}

// presenceOpen follows room (its first member here joined) and asks
// every box for its members there, unless it was still followed.
func (b *Bridge) presenceOpen(room string) {
	ps := &b.pres
	if ps.rooms[room] != nil {
		delete(ps.lingering, room)
		return
	}
	sub, err := b.nc.ChanSubscribe(b.subj.presence(room), b.inbox)
	if err != nil {
		b.log.Warn("nats subscribe failed", "room", room, "err", err)
		return
	}
	ps.rooms[room] = &presRoom{sub: sub, seqs: make(map[string]uint64)}
	b.stats.Subscriptions.Add(1)
	b.stats.PresenceSubscriptions.Add(1)
	b.askPresence(room, "")
}

// presenceClose: no member is connected here any more. The room is
// followed on while some are in their grace (counted here, so this box
// still answers asks for them and shares their leaving), then dropped.
func (b *Bridge) presenceClose(room string) {
	ps := &b.pres
	if pr := ps.rooms[room]; pr != nil {
		if ps.p.LocalCount(room) > 0 {
			ps.lingering[room] = pr
			return
		}
		b.unfollow(room)
	}
}

// unfollow stops following room and forgets the other boxes' members
// there.
func (b *Bridge) unfollow(room string) {
	ps := &b.pres
	pr := ps.rooms[room]
	if pr == nil {
		return
	}
	delete(ps.lingering, room)
	_ = pr.sub.Unsubscribe()
	b.stats.Subscriptions.Add(-1)
	b.stats.PresenceSubscriptions.Add(-1)
	for id := range pr.seqs {
		b.leaveRoom(id)
	}
	delete(ps.rooms, room)
	ps.p.RemoteDropRoom(room)
}

// leaveRoom notes that box id has no members in one more followed room.
func (b *Bridge) leaveRoom(id string) {
	ps := &b.pres
	if box := ps.boxes[id]; box != nil {
		if box.rooms--; box.rooms <= 0 {
			delete(ps.boxes, id)
			b.stats.PresenceBoxes.Store(int64(len(ps.boxes)))
		}
	}
}

// forgetBox drops every member of box id: its lease ran out, or it went.
func (b *Bridge) forgetBox(id string) {
	ps := &b.pres
	for _, pr := range ps.rooms {
		delete(pr.seqs, id)
		delete(pr.asked, id)
	}
	delete(ps.boxes, id)
	b.stats.PresenceBoxes.Store(int64(len(ps.boxes)))
	ps.p.RemoteDropBox(id)
}

// askPresence asks box id (any box with members, if "") for its whole
// set of room, at most once per interval per box.
func (b *Bridge) askPresence(room, id string) {
	pr := b.pres.rooms[room]
	now := time.Now()
	if pr.asked == nil {
		pr.asked = make(map[string]time.Time)
	}
	if t, ok := pr.asked[id]; ok && now.Sub(t) < b.pres.interval {
		return
	}
	pr.asked[id] = now
	b.publish(b.subj.presence(room), &message{Kind: kindPresenceAsk, BoxID: b.pres.id, Target: room, Text: []byte(id)})
}

// presenceResync follows a (re)connect to NATS: what this box shared and
// heard meanwhile may be lost, so it shares its whole sets again and asks
// for everyone's in the rooms it follows.
func (b *Bridge) presenceResync() {
	ps := &b.pres
	if ps.p == nil {
		return
	}
	ps.p.ShareAllAgain()
	ps.nextShare = time.Time{}
	for _, pr := range ps.rooms {
		clear(pr.asked)
	}
	b.presenceAskAll()
}

// presenceAskAll asks every box for its whole sets of the rooms followed
// here: after this box may have missed changes (a reconnect, or the NATS
// client dropping messages for want of room in the inbox). At most once
// per interval per room.
func (b *Bridge) presenceAskAll() {
	if b.pres.p == nil {
		return
	}
	for room := range b.pres.rooms {
		b.askPresence(room, "")
	}
}

// presenceGone tells the other boxes this one is going, and stops
// following its rooms: at Close.
func (b *Bridge) presenceGone() {
	ps := &b.pres
	if ps.p == nil {
		return
	}
	for room := range ps.rooms {
		b.unfollow(room)
	}
	if b.stats.Connected.Load() {
		m := message{Kind: kindGone, BoxID: b.pres.id, Seq: b.seq.Load()}
		b.send(b.subj.boxes(), m.Append(make([]byte, 0, m.Size()+macSize)))
	}
}

// dropPresence counts a presence message refused.
func (b *Bridge) dropPresence(reason int) {
	b.stats.drop(reason)
	b.stats.PresenceDropped.Add(1)
}

// receivePresence acts on a presence message from another box, decoded
// and checked (MAC, box id) by receive.
func (b *Bridge) receivePresence(subject string, m *message) {
	ps := &b.pres
	if ps.p == nil {
		return
	}
	b.stats.PresenceReceived.Add(1)
	if m.BoxID == ps.id {
		b.dropPresence(DropOwn)
		return
	}
	switch m.Kind {
	case kindLease, kindGone:
		if subject != b.subj.boxes() {
			b.dropPresence(DropInvalid)
			return
		}
	default:
		if subject != b.subj.presence(m.Target) {
			b.dropPresence(DropInvalid)
			return
		}
	}
	now := time.Now()
	switch m.Kind {
	case kindLease:
		lease, err := parseLease(m.Text)
		if err != nil {
			b.dropPresence(dropReason(err))
			return
		}
		if box := ps.boxes[m.BoxID]; box != nil && !box.gone {
			box.lease, box.deadline = lease, now.Add(lease)
		}
	case kindGone:
		// Its members are kept for the grace, as it kept those it closed:
		// the last it closed before going are reconnecting elsewhere right
		// now, and one back within the grace must not be seen leaving.
		// Those on no other box by then leave.
		if box := ps.boxes[m.BoxID]; box != nil && !box.gone {
			b.log.Info("box gone: its members not back elsewhere leave after the grace", "of_box", m.BoxID)
			if g := b.hub.Config().PresenceGrace; g > 0 {
				box.gone, box.deadline = true, now.Add(g)
			} else {
				b.forgetBox(m.BoxID)
			}
		}
	case kindPresenceAsk:
		if len(m.Text) == 0 || string(m.Text) == b.pres.id {
			ps.p.ShareAgain(m.Target)
		}
	case kindPresence:
		b.applyPresence(m, now)
	}
}

// applyPresence applies one box's change of a followed room.
func (b *Bridge) applyPresence(m *message, now time.Time) {
	ps := &b.pres
	pr := ps.rooms[m.Target]
	if pr == nil {
		return // not followed (any more): no member here
	}
	pm := &ps.msg
	if err := parsePresence(m.Text, pm); err != nil {
		b.dropPresence(dropReason(err))
		return
	}
	box := ps.boxes[m.BoxID]
	if box == nil {
		if len(ps.boxes) >= maxPresenceBoxes {
			b.dropPresence(DropInvalid)
			return
		}
		box = &presBox{lease: ps.lease} // until its own lease says otherwise
		ps.boxes[m.BoxID] = box
		b.stats.PresenceBoxes.Store(int64(len(ps.boxes)))
	}
	if !box.gone {
		box.deadline = now.Add(box.lease)
	}
	last, known := pr.seqs[m.BoxID]
	switch {
	case pm.snapshot || m.Seq == 1:
		ps.p.RemoteSet(m.Target, m.BoxID, pm.joined, pm.count, pm.lists)
	case known && m.Seq == last+1:
		ps.p.RemoteChange(m.Target, m.BoxID, pm.joined, pm.left, pm.count, pm.lists)
	default:
		// A gap, or a box not heard of in this room: its whole set.
		b.askPresence(m.Target, m.BoxID)
		if !known && box.rooms == 0 {
			delete(ps.boxes, m.BoxID)
			b.stats.PresenceBoxes.Store(int64(len(ps.boxes)))
		}
		return
	}
	switch {
	case pm.count == 0 && known:
		delete(pr.seqs, m.BoxID)
		b.leaveRoom(m.BoxID)
	case pm.count == 0:
		if box.rooms == 0 {
			delete(ps.boxes, m.BoxID)
			b.stats.PresenceBoxes.Store(int64(len(ps.boxes)))
		}
	default:
		if !known {
			box.rooms++
		}
		pr.seqs[m.BoxID] = m.Seq
	}
	pm.joined, pm.left = nil, nil
}

// presenceID is box id with a random suffix, within maxBoxID bytes.
func presenceID(box string) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	suffix := "#" + hex.EncodeToString(r[:])
	if len(box) > maxBoxID-len(suffix) {
		box = box[:maxBoxID-len(suffix)]
	}
	return box + suffix
}

// dropReason maps a decoding error to its drop reason.
func dropReason(err error) int {
	switch err {
	case errVersion:
		return DropVersion
	case errTooLarge:
		return DropTooLarge
	case errInvalid:
		return DropInvalid
	}
	return DropMalformed
}
