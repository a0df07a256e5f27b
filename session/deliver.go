package session

import (
	"time"

	"github.com/wsd-chat/wsd/chat"
)

// Delivery. Every message wsd delivers, whatever its source (a client, the
// admin API, another box), goes through deliver: the message is built once,
// queued for its local recipients, and, when it started on this box, handed
// to the Bridge for the others. Publish, PublishAll and SendTo are the
// entries for messages that start here; DeliverRemote, DeliverRemoteAll and
// DeliverRemoteKey are the Bridge's, for messages from other boxes. Callers
// never need to know whether a Bridge exists: the Delivery says what
// happened on this box and beyond it.

// Delivery is what became of one message.
type Delivery struct {
	// Local is how many connections on this box the message was queued for.
	Local int
	// Cluster is what the Bridge did with it.
	Cluster ClusterOutcome
	// Seq, Epoch and TS are the stamp this box's Ring gave a room message
	// (v1.go), or its Log (log.go); zero for a direct message, PublishAll
	// and a refused one.
	Seq   uint64
	Epoch string
	TS    int64 // Unix milliseconds
	// History is what the Log did with a room message; HistoryNone
	// without one.
	History HistoryOutcome
}

// ClusterOutcome is what the Bridge did with a message that started on
// this box.
type ClusterOutcome uint8

const (
	// ClusterNone: the Hub has no Bridge; the box is the whole service.
	ClusterNone ClusterOutcome = iota
	// ClusterLocal: the key is connected on this box, nothing to forward.
	ClusterLocal
	// ClusterSent: handed to the Bridge for the other boxes.
	ClusterSent
	// ClusterFailed: the Bridge did not take it (unreachable, too slow,
	// the message too large for it) or the Hub is shutting down.
	ClusterFailed
)

var clusterOutcomeNames = [...]string{"none", "local", "sent", "failed"}

func (o ClusterOutcome) String() string {
	if int(o) < len(clusterOutcomeNames) {
		return clusterOutcomeNames[o]
	}
	return "unknown"
}

// target is where a message goes: one room, every room, or one key.
type target struct {
	kind targetKind
	name string // the room or the key; "" for toAll
	by   *Conn  // the client that sent it; nil for the admin API and the Bridge
}

type targetKind uint8

const (
	toRoom targetKind = iota
	toAll
	toKey
)

// origin says where a message started, which decides whether it is
// forwarded and counted as a broadcast of this box.
type origin uint8

const (
	fromHere   origin = iota // a client or the admin API: forward to the other boxes
	fromRemote               // another box, through the Bridge: this box only
)

// Publish sends text to every member of room ("" is the global room), here
// and on the other boxes.
func (h *Hub) Publish(room string, text []byte) Delivery {
	if h.lg.log != nil {
		return h.publishLogged(room, text) // log.go
	}
	return h.deliver(target{kind: toRoom, name: room}, text, nil, fromHere)
}

// PublishAll sends text to every connection in every room, here and on the
// other boxes.
func (h *Hub) PublishAll(text []byte) Delivery {
	return h.deliver(target{kind: toAll}, text, nil, fromHere)
}

// SendTo sends text to the connection holding key: on this box if it is
// here (Cluster is then ClusterLocal with a Bridge), otherwise through the
// Bridge to the box that holds it.
func (h *Hub) SendTo(key string, text []byte) Delivery {
	return h.deliver(target{kind: toKey, name: key}, text, nil, fromHere)
}

// DeliverRemote fans out a broadcast that came from another box to room's
// members here, without forwarding it again, and returns how many members
// it was queued for. gz, if not nil, is text's gzip'd binary frame, built
// on the sending box: gzip members get it as it is (nil: built here if a
// member needs it).
func (h *Hub) DeliverRemote(room string, text, gz []byte) int {
	return h.deliver(target{kind: toRoom, name: room}, text, gz, fromRemote).Local
}

// DeliverRemoteFrom is DeliverRemote for a broadcast whose sender the
// other box named: from is its key and id the client id of its send (nil
// if none), which the envelope of v1 members carries as a local send's
// would. Seed members get the text, as from DeliverRemote.
func (h *Hub) DeliverRemoteFrom(room string, text []byte, from string, id []byte) int {
	return h.deliverFrom(target{kind: toRoom, name: room}, text, nil, fromRemote, from, id).Local
}

// DeliverRemoteAll is DeliverRemote to every room with members here.
func (h *Hub) DeliverRemoteAll(text, gz []byte) int {
	return h.deliver(target{kind: toAll}, text, gz, fromRemote).Local
}

// DeliverRemoteKey delivers a direct message that came from another box to
// the connection holding key here, and reports whether there was one.
func (h *Hub) DeliverRemoteKey(key string, text []byte) bool {
	return h.deliver(target{kind: toKey, name: key}, text, nil, fromRemote).Local > 0
}

// broadcast is c's message to room (its seed room, or a v1 send's, with
// the client's id), arrived at now. It costs c the deliveries it makes
// here (limits.go): past c's delivery limit, or its address's, the message
// is refused and the close to send returned.
func (h *Hub) broadcast(c *Conn, now int64, room string, text, id []byte) (Delivery, error) {
	if err := h.deliveryAllowed(c, now); err != nil {
		return Delivery{}, err
	}
	d := h.deliverFrom(target{kind: toRoom, name: room, by: c}, text, nil, fromHere, c.key, id)
	h.chargeDeliveries(c, now, d.Local)
	return d, nil
}

// deliver is deliverFrom with no sender (the admin API, another box).
func (h *Hub) deliver(t target, text, gz []byte, from origin) Delivery {
	return h.deliverFrom(t, text, gz, from, "", nil)
}

// deliverFrom builds text's message once, queues it for t's members on this
// box and, if it started here, hands it to the Bridge. gz is as in
// DeliverRemote. A room message is stamped by the Ring first (v1.go), key
// and id naming its sender in the envelope v1 members get.
func (h *Hub) deliverFrom(t target, text, gz []byte, from origin, key string, id []byte) Delivery {
	// Once draining, no broadcast is accepted: Shutdown waits for the ones
	// already accepted to be fanned out, which a steady stream of new ones
	// would otherwise put off until its deadline. Both sides are
	// sequentially consistent atomics: either this sees draining, or
	// Shutdown sees this broadcast in flight and waits for it. A direct
	// message is queued on its connection at once, never in an outbox, so
	// there is nothing for Shutdown to wait for and it still goes out.
	h.inflight.Add(1)
	defer h.inflight.Add(-1)
	if h.lg.log != nil && t.kind != toKey {
		return h.deliverLogged(t, text, from, key, id) // log.go
	}
	if t.kind != toKey && h.draining.Load() {
		d := Delivery{}
		if from == fromHere && h.cfg.Bridge != nil {
			d.Cluster = ClusterFailed
		}
		return d
	}
	m := h.newMessage(text)
	if gz != nil {
		m.useGzip(gz)
	}
	if h.cfg.OnFanout != nil {
		m.at = time.Now()
	}
	var d Delivery
	switch t.kind {
	case toRoom:
		// A sender whose message finds a shard's backlog full is held
		// (fanOut); m names it only while it is queued.
		m.by = t.by
		st := h.stamp(t.name, m, key, id) // queues m (message.Publish)
		m.by = nil
		d.Local, d.Seq, d.Epoch, d.TS = m.local, st.Seq, st.Epoch, st.TS
		if from == fromHere {
			h.stats.Broadcasts.Add(1)
		}
	case toAll:
		for room := range h.table.roomCounts() {
			// Each room stamps its own copy: the envelope names the room.
			rm := h.newMessage(text)
			if gz != nil {
				rm.useGzip(gz)
			}
			rm.at = m.at
			h.stamp(room, rm, key, id)
			d.Local += rm.local
			rm.doneBuilding()
			if from == fromHere {
				h.stats.Broadcasts.Add(1) // one per room, as the room's own broadcast would
			}
		}
	case toKey:
		if h.sendDirect(t.name, m) {
			d.Local = 1
		}
	}
	if from == fromHere {
		d.Cluster = h.forward(t, m, d.Local, key, id)
	}
	m.doneBuilding()
	return d
}

// fanOut queues m on every shard with members in room and returns how
// many members that is. The outbox entries are charged to the outbound
// budget together: one add to the shared counter per room, not one per
// shard. A client whose message finds a shard's backlog full (by) reads
// nothing more until it has drained (fanout.go).
func (h *Hub) fanOut(room string, m *message, by *Conn) int {
	n, entries := 0, int64(0)
	for _, s := range h.table.shards {
		if k := s.roomSize(room); k > 0 {
			n += k
			entries++
			s.fan.add(outboxEntry{msg: m, room: room})
			if by != nil && s.fan.full() {
				s.fan.hold(by)
			}
		}
	}
	if entries > 0 {
		h.out.add(entries * outboxCost)
	}
	return n
}

// sendDirect queues m on the connection holding key, if it is on this box,
// and reports whether it was queued.
func (h *Hub) sendDirect(key string, m *message) bool {
	h.stats.Direct.Add(1)
	s := h.table.shardOf(key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.byKey.get(key)
	if c == nil {
		return false
	}
	if c.v1 != nil {
		// A v1 client parses every text frame as an envelope: the text
		// goes in one, so text that looks like JSON cannot pass for one.
		// m is this connection's alone, so building it here is safe.
		m.setEnv(chat.AppendDirect(nil, time.Now().UnixMilli(), "", m.seed.body))
	}
	v := m.variantFor(c)
	if !c.deliver([]outItem{{b: m.frame(v), msg: m, v: uint8(v)}}) {
		return false
	}
	h.stats.FramesOut.Add(1)
	return true
}

// forward hands a message that started on this box, and was queued for
// local members of t already, to the Bridge. The caller holds a builder
// hold on m. key and id name the sender of a room message (deliverFrom).
func (h *Hub) forward(t target, m *message, local int, key string, id []byte) ClusterOutcome {
	b := h.cfg.Bridge
	switch {
	case b == nil:
		return ClusterNone
	case t.kind == toKey && local > 0:
		return ClusterLocal
	case h.draining.Load():
		return ClusterFailed
	}
	var ok bool
	switch t.kind {
	case toRoom:
		ok = b.Forward(t.name, Broadcast{m: m, from: key, id: id})
	case toAll:
		ok = b.ForwardAll(m.seed.body)
	case toKey:
		ok = b.ForwardKey(t.name, m.seed.body)
	}
	if ok {
		return ClusterSent
	}
	return ClusterFailed
}
