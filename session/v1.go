package session

import (
	"sort"
	"sync"
	"time"

	"github.com/wsd-chat/wsd/chat"
	"github.com/wsd-chat/wsd/codec"
)

// Chat protocol v1 (docs/protocol.md) on a connection: the opt-in
// connection's rooms, its commands, and the envelope side of a room
// message. Package chat holds the protocol's core; this file connects it
// to the table and the fan-out.
//
// Every room message, whoever sends it, is stamped by the Hub's Ring
// (seq, epoch, ts) and its envelope kept as history. The Ring hands the
// envelope to the message (message.Publish) with the room's log locked,
// and Publish queues the message on the shards' outboxes before the lock
// is released: every shard sees a room's messages in seq order. Seed
// members get the message's seed variants, byte for byte what they always
// got; v1 members get the envelope's, built once per broadcast.
//
// A v1 connection is in the table by its key like a seed one, but its
// rooms are subscriptions (sub) in each room's subs list rather than
// entries in members, so the seed fan-out loop is unchanged and a v1
// connection may be in many rooms. A sub remembers after, the last seq
// its join replayed (as the Hub's order of published messages): a message
// stamped before the join but fanned out after it (it was in an outbox
// already) is skipped, so the seam between replay and live traffic has no
// duplicate; and no message stamped after the join can miss the sub,
// which closes the gap.
//
// Lock order: a Ring room's lock, then shard.mu, then Conn.wmu. The Hub
// never calls the Ring with a shard lock held.

// A v1 connection's room is two small values, both under the key's shard
// mu: a subEntry in the room's subs list (what the fan-out walks, in one
// contiguous array as the seed members are) and a sub in the connection's
// list, which finds the entry again.
type subEntry struct {
	c *Conn
	// Live messages published (message.Publish) at or before after, the
	// Hub's order when the sub joined, are not delivered: the join
	// replayed them or they came before it. An order rather than a seq,
	// so a room whose seqs restart (a Log's epoch, log.go) keeps it.
	after uint64
	lag   *lagFilter // a join that read the Log: log.go; nil otherwise
}

type sub struct {
	r   *room // in its shard's rooms while it has this sub
	idx int32 // index of the entry in r.subs
}

// v1Conn is what a v1 connection holds beyond a seed one: what it keeps
// while idle (its rooms) and, behind a pointer, the work of one command or
// join, taken from a pool while that runs and given back after, so an idle
// v1 connection holds none of it.
type v1Conn struct {
	subs []sub // under the key's shard mu; the first room first

	// The rooms the credentials allow (a JWT rooms claim); nil: any.
	// Set at upgrade.
	allowed *[]string
	// The rooms removeSubs took it out of, for presence (roomsLeft); nil
	// until then, under the key's shard mu.
	gone *[]string

	// OnReady only: set from the upgrade to the first join's end, while a
	// command is handled (work, done) and while a join waits for the Log
	// (cold), nil otherwise.
	*v1Work
}

// v1Reader is a v1 connection as the chat.Reader of its joins (Attach,
// Replay): the Conn under another name, so a join allocates no closure and
// the v1Conn holds no pointer back to its connection.
type v1Reader Conn

func (c *Conn) reader() *v1Reader { return (*v1Reader)(c) }

// v1Work is a v1 connection's command or join in progress.
type v1Work struct {
	// The position the query asked for in the first room.
	hasSince, hasHistory bool
	since                uint64
	epoch                string
	history              int

	// The command being handled and the join in progress (the Conn, as a
	// v1Reader, is the Ring's Reader for it, so a join allocates no closure).
	cmd      chat.Command
	buf      []byte    // envelope scratch
	keys     []string  // members scratch
	batch    []outItem // replayed frames not yet handed over: a pooled replayBatch during a replay, else nil
	join     pendingJoin
	welcome  *ownFrame // the 101, for the first join
	replaced *Conn     // what the first join displaced
	// The join waits for a Read of the Log (logread.go): this v1Work
	// stays until it is answered. Read it through v1Conn.cold, which
	// OnReady can call whether or not a command is in progress.
	coldWait *coldJoin
}

// cold returns the join of v's that waits for the Log, nil if none.
func (v *v1Conn) cold() *coldJoin {
	if v.v1Work == nil {
		return nil
	}
	return v.coldWait
}

// v1Works are the v1Work of the commands in progress, reused.
var v1Works = sync.Pool{New: func() any { return new(v1Work) }}

// maxPooledScratch is the largest scratch buffer a v1Work keeps in the
// pool: one large envelope does not stay held for good.
const maxPooledScratch = 16 << 10

// work gives v its v1Work for a command, from the pool.
func (v *v1Conn) work() {
	if v.v1Work == nil {
		v.v1Work = v1Works.Get().(*v1Work)
	}
}

// done gives v's v1Work back to the pool, its scratch kept, the rest
// cleared (nothing of the command stays reachable), unless a join waits
// for the Log: then coldReady gives it back once the join is answered.
func (v *v1Conn) done() {
	w := v.v1Work
	if w == nil || v.cold() != nil {
		return
	}
	v.v1Work = nil
	buf, keys, batch := w.buf[:0], w.keys[:0], w.batch[:0]
	if cap(buf) > maxPooledScratch {
		buf = nil
	}
	if cap(batch) > maxReplayBatch {
		batch = nil
	}
	clear(keys[:cap(keys)])
	clear(batch[:cap(batch)])
	*w = v1Work{buf: buf, keys: keys, batch: batch}
	v1Works.Put(w)
}

type pendingJoin struct {
	room      string
	id        []byte
	hasSince  bool
	since     uint64
	epoch     string
	history   int  // without since: the last history messages
	attached  bool // Attach registered the sub: replay what follows
	refused   chat.Code
	recovered bool
	lag       *lagFilter // set by a join that read the Log (log.go)
	expect    int        // messages the Ring will replay (known at Attach)
	replayed  int
	held      bool // frames are held for one write (Conn.hold): runJoin flushes
	storeSlow bool // refused: the Log did not answer and the Ring knows nothing (logread.go)
	// A first join that waited for the Log (logread.go) must not displace
	// a connection of its key that upgraded while it waited: holder is
	// the key's connection when the wait began (nil: none), and
	// superseded says joinV1 found another one holding it.
	waited     bool
	holder     *Conn
	superseded bool
}

// maxReplayBatch bounds the replayed frames batched before they are handed
// to the connection's queue (held, all written at the end of the join).
const maxReplayBatch = 256

// replayBatch is the scratch a replay batches its frames in. It is pooled
// rather than kept in the v1Conn: a connection replays only at its joins,
// and most replays are a reconnect's, the connection's first and only one,
// where a batch grown from nil cost eight allocations (12 KiB) for 100
// messages, and every connection kept its grown batch (6 KiB) after its
// joins. A pooled batch is 12 KiB (256 frames of 48 B).
type replayBatch [maxReplayBatch]outItem

var replayBatches = sync.Pool{New: func() any { return new(replayBatch) }}

// newV1Conn returns the v1 state for a request that opted in.
func newV1Conn(c *Conn, req *codec.Request) *v1Conn {
	v := new(v1Conn)
	if req.Rooms != nil {
		rooms := req.Rooms // the request's own copy (codec.Request)
		v.allowed = &rooms
	}
	v.work() // until the first join is done (joinFirst)
	v.hasSince, v.since, v.hasHistory, v.history = req.HasSince, req.Since, req.HasHistory, req.History
	if req.HasSince {
		v.epoch = string(req.Epoch)
	}
	return v
}

// The message's envelope variants.

// Publish implements chat.Sink: the Ring stamped the message as env; the
// envelope frame is built and the message queued for the room's members,
// all before the room's next message is stamped.
//
// With no v1 member on the box the envelope frame is not built: a box of
// seed clients pays only the history. A sub is added only under its room's
// log lock (Attach), so a member that joins after this check gets a seq
// past this message's and never asks for its envelope.
func (m *message) Publish(room string, s chat.Stamp, env []byte) {
	m.seq, m.epoch = s.Seq, s.Epoch
	m.order = m.hub.order.Add(1) // under the room's lock: see subEntry.after
	if m.hub.v1Subs.Load() > 0 {
		m.setEnv(env)
	}
	m.local = m.hub.fanOut(room, m, m.by)
}

// setEnv builds the envelope's text frame from env (copied). Only the
// creator may call it, before the message is shared.
func (m *message) setEnv(env []byte) {
	m.env.setText(env)
	m.recharge(&m.env.textHeld, m.env.text)
}

// historyHeld is what the rooms' history and the dedup table hold of the
// outbound budget.
func (h *Hub) historyHeld() int64 { return h.ring.Bytes() + h.dedup.Bytes() }

// stamp has the Ring stamp m, a message to room from key (id its client
// id), which queues it for the room's members (Publish).
func (h *Hub) stamp(room string, m *message, key string, id []byte) chat.Stamp {
	st, _ := h.ring.Append(chat.Message{Room: room, From: key, ID: id, Text: m.seed.body}, m)
	return st
}

// The table side.

// deliverSubs is deliverRoom for the room's v1 members; s.mu is held.
func (f *fanout) deliverSubs(r *room, msgs []*message) (frames, saved uint64) {
	for i := range r.subs {
		e := &r.subs[i]
		c := e.c
		items := f.items[:0]
		for _, m := range msgs {
			if m.order <= e.after || len(m.env.text) == 0 || e.lag.skip(m) {
				continue // replayed at the join, or stamped before it (see Publish)
			}
			v := m.variantFor(c)
			b := m.frame(v)
			items = append(items, outItem{b: b, msg: m, v: uint8(v)})
			if v == varEnvDeflate {
				saved += uint64(len(m.env.text) - len(b))
			}
		}
		if len(items) > 0 && c.deliver(items) {
			frames += uint64(len(items))
		}
		clear(items)
		f.items = items[:0]
	}
	return frames, saved
}

// addSub puts c in room with after; s.mu is held.
func (s *shard) addSub(c *Conn, name string, after uint64, lag *lagFilter) {
	r := s.rooms[name]
	if r == nil {
		r = &room{name: name}
		s.rooms[name] = r
		s.hub.roomOpened(name) // cluster: bridge.go
	}
	s.hub.v1Subs.Add(1)
	c.v1.subs = append(c.v1.subs, sub{r: r, idx: int32(len(r.subs))})
	r.subs = append(r.subs, subEntry{c: c, after: after, lag: lag})
}

// removeSub takes c's i-th room away; s.mu is held.
func (s *shard) removeSub(c *Conn, i int) {
	v := c.v1
	sb := v.subs[i]
	s.hub.v1Subs.Add(-1)
	r := sb.r
	last := int32(len(r.subs) - 1)
	if sb.idx != last {
		// The last entry takes the hole; its connection (of this shard
		// too) learns where it went.
		moved := r.subs[last]
		r.subs[sb.idx] = moved
		ms := moved.c.v1.subs
		for j := range ms {
			if ms[j].r == r {
				ms[j].idx = sb.idx
				break
			}
		}
	}
	r.subs[last] = subEntry{}
	r.subs = r.subs[:last]
	if last == 0 && len(r.members) == 0 {
		delete(s.rooms, r.name)
		s.hub.roomClosed(r.name) // cluster: bridge.go
	}
	copy(v.subs[i:], v.subs[i+1:])
	v.subs[len(v.subs)-1] = sub{}
	v.subs = v.subs[:len(v.subs)-1]
}

// removeSubs takes c out of all its rooms; s.mu is held.
func (s *shard) removeSubs(c *Conn) {
	if len(c.v1.subs) == 0 {
		return
	}
	if c.v1.gone == nil {
		c.v1.gone = new([]string)
	}
	gone := c.v1.gone
	for len(c.v1.subs) > 0 {
		*gone = append(*gone, c.v1.subs[len(c.v1.subs)-1].r.name)
		s.removeSub(c, len(c.v1.subs)-1)
	}
}

// roomsLeft tells presence that c, out of the table now, left its rooms;
// except is the first room of the connection that replaced it (which
// holds the key there still). Exactly one caller does it for each c: c's
// own close if it was still in the table, else the connection that
// replaced it.
func (h *Hub) roomsLeft(c *Conn, except string) {
	if c.v1 == nil {
		if c.room != except {
			h.presence.Depart(c.room, c.key)
		}
		return
	}
	s := h.table.shardOf(c.key)
	s.mu.Lock()
	var gone []string
	if c.v1.gone != nil {
		gone, c.v1.gone = *c.v1.gone, nil
	}
	s.mu.Unlock()
	for _, r := range gone {
		if r != except {
			h.presence.Depart(r, c.key) // out of the roster: counted for the grace
		}
	}
}

// subIndex returns the index of c's sub of room, -1 if none; s.mu is held.
func (v *v1Conn) subIndex(room []byte) int {
	for i, sb := range v.subs {
		if sb.r.name == string(room) {
			return i
		}
	}
	return -1
}

// roomOf returns c's room name matching room (the sub's string, so no
// allocation) and whether c is in it.
func (c *Conn) roomOf(room []byte) (string, bool) {
	s := c.hub.table.shardOf(c.key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if i := c.v1.subIndex(room); i >= 0 {
		return c.v1.subs[i].r.name, true
	}
	return "", false
}

// roomCount is how many connections are in room, across shards.
func (t *table) roomCount(name string) int {
	n := 0
	for _, s := range t.shards {
		n += s.roomSize(name)
	}
	return n
}

// Joins. The first room's join runs right after the upgrade and puts the
// connection in the table (table.join), its 101 first and joined second;
// later ones come from join commands.

// joinFirst is Conn.join for a v1 connection: the first room's join, with
// the query's position. pending: it waits for a Read of the Log, and
// logread.go finishes it (joinedFirst).
func (c *Conn) joinFirst(welcome *ownFrame) (old *Conn, pending bool) {
	v := c.v1
	v.work() // newV1Conn's, unless the connection was made without it
	defer v.done()
	v.welcome = welcome
	v.join = pendingJoin{room: c.room, hasSince: v.hasSince, since: v.since, epoch: v.epoch}
	k := 0
	if v.hasHistory {
		k = v.history
	}
	old, pending = c.runJoin(k)
	if pending {
		return nil, true // v.welcome goes out with the answer (logread.go)
	}
	v.welcome = nil
	return old, false
}

// runJoin runs v.join through the Ring and reports the connection a first
// join displaced, or pending: the join waits for a Read of the Log, and
// is answered when it is in (logread.go), or, a first join, was refused
// before its 101 (the caller has nothing more to do for it).
func (c *Conn) runJoin(history int) (old *Conn, pending bool) {
	v, h := c.v1, c.hub
	v.join.history = history
	if h.lg.log != nil {
		if c.joinLogged() { // log.go
			return nil, true
		}
		if v.welcome != nil && v.join.storeSlow {
			c.refuseFirst(errHistoryUnavailable) // logread.go
			return nil, true                     // answered: nothing more to do for it
		}
	} else if v.join.hasSince {
		h.ring.Since(v.join.room, v.join.since, v.join.epoch, c.reader())
	} else {
		h.ring.Last(v.join.room, history, c.reader())
	}
	return c.endJoin(), false
}

// endJoin sends v.join's answer and reports the connection a first join
// displaced.
func (c *Conn) endJoin() (old *Conn) {
	v := c.v1
	if len(v.batch) > 0 {
		// Not reached: Attach counts what the Ring replays. Should the
		// count be off, the frames still go out rather than leak.
		c.flushReplay()
	}
	if v.join.held {
		// The 101 (first join), joined and the replay, in one writev,
		// after the Ring's lock is released; whatever came for the
		// connection meanwhile is queued behind them.
		c.flushHeld()
	}
	old, v.replaced = v.replaced, nil
	if v.join.refused != 0 {
		reason := refusedReason(v.join.refused)
		if v.join.storeSlow {
			reason = storeSlowReason
		}
		c.sendError(v.join.id, v.join.refused, reason)
	}
	v.join = pendingJoin{}
	return old
}

// Attach implements chat.Reader: under the room's log lock, register the
// sub with the room's position, count the key in the room's presence and
// queue joined.
func (r *v1Reader) Attach(info chat.Info) {
	c := (*Conn)(r)
	v, j, h := c.v1, &c.v1.join, c.hub
	j.recovered = j.hasSince && chat.Recoverable(info, j.since, j.epoch)
	switch {
	case j.recovered:
		j.expect = int(info.Seq - j.since)
	case !j.hasSince:
		j.expect = min(max(j.history, 0), info.Len)
	}
	t := h.table
	after := h.order.Load() // under the room's lock: see subEntry.after
	// joined is queued under the shard lock that registers the sub, so
	// nothing for the room (or, first, for the key) can come before it.
	joined := func(count int) {
		v.buf = chat.AppendJoined(v.buf[:0], &chat.Joined{ID: j.id, Room: j.room, Seq: info.Seq,
			Epoch: info.Epoch, Recovered: j.recovered, Count: count})
		c.holdEnvelope(v.buf)
	}
	if v.welcome != nil {
		// Counted through the table (the Roster) once in it: presence
		// keeps nothing of its own for a present v1 member (chat.Enter).
		h.presence.Enter(j.room, c.key, func(count int) bool {
			v.replaced = t.joinV1(c, v.welcome, after, j.lag, func() { joined(count) })
			return !j.superseded // the newer connection holds the key's count
		})
		j.attached = !j.superseded
		return
	}
	// Refusals first, so a refused join is never counted. Only this
	// connection's OnReady changes its rooms; a replace can still take it
	// out of the table meanwhile, which is checked again below.
	s := t.shardOf(c.key)
	s.mu.RLock()
	i, in, n := v.subIndex([]byte(j.room)), c.inTable, len(v.subs)
	s.mu.RUnlock()
	switch {
	case !in:
		j.refused = chat.CodeUnavailable
		return
	case i < 0 && n >= h.cfg.MaxRoomsPerConn:
		j.refused = chat.CodeTooManyRooms
		return
	}
	// Presence before the shard lock (doc.go).
	h.presence.Enter(j.room, c.key, func(count int) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch i := v.subIndex([]byte(j.room)); {
		case !c.inTable:
			j.refused = chat.CodeUnavailable // replaced meanwhile: not counted
		case i >= 0:
			e := &v.subs[i].r.subs[v.subs[i].idx]
			e.after, e.lag = after, j.lag // a resync: replay from the new position
			j.attached = true
			joined(count)
		default:
			s.addSub(c, j.room, after, j.lag)
			j.attached = true
			joined(count)
		}
		return j.attached
	})
}

// Replay implements chat.Reader: a missed message, in seq order, queued
// right behind joined.
//
// Every member gets a frame that the Ring keeps with the message: its
// gzip'd frame for a gzip member (gzipReplayFrame), its text frame for any
// other (textReplayFrame), each built by the first replay that wants it
// and shared by all the later ones, as a live broadcast shares its frame:
// queued by reference, no copy and no allocation per replayed message,
// its bytes charged to the outbound budget as history. A Store that keeps
// none (no Encode, Frame) makes the connection its own copy.
//
// The frames are handed over in batches, the last one when the count
// Attach expects is reached, still under the room's log lock, so all of
// them are queued before the room's next message can be; they are held
// behind joined (Conn.hold) and written with it when the join is done
// (runJoin): one writev for the join, not one per batch.
func (r *v1Reader) Replay(e chat.Entry) {
	c := (*Conn)(r)
	v := c.v1
	if !v.join.attached {
		return
	}
	var b []byte
	if c.gzip {
		b = e.Encoded()
	} else {
		b = e.Framed()
	}
	if v.batch == nil {
		v.batch = replayBatches.Get().(*replayBatch)[:0]
	}
	if b != nil {
		v.batch = append(v.batch, outItem{b: b})
	} else {
		f := c.envelopeFrame(e.Frame)
		v.batch = append(v.batch, outItem{b: f.b, own: f})
	}
	v.join.replayed++
	if len(v.batch) == maxReplayBatch || v.join.replayed == v.join.expect {
		c.flushReplay()
	}
}

// flushReplay hands the batched replay frames to the connection's queue,
// held for runJoin's write, and the batch back to its pool.
func (c *Conn) flushReplay() {
	v := c.v1
	c.hold(v.batch)
	v.join.held = true
	clear(v.batch)
	replayBatches.Put((*replayBatch)(v.batch[:maxReplayBatch]))
	v.batch = nil
}

// joinV1 is table.join for a v1 connection: c enters the table under its
// key in its first room, with after as that sub's position, and the 101
// goes out first.
func (t *table) joinV1(c *Conn, welcome *ownFrame, after uint64, lag *lagFilter, joined func()) (old *Conn) {
	s := t.shardOf(c.key)
	s.mu.Lock()
	if j := &c.v1.join; j.waited && s.byKey.get(c.key) != j.holder {
		// The key changed hands while this join waited: the newer
		// connection stays, and this one is refused (endCold).
		j.superseded = true
		s.mu.Unlock()
		return nil
	}
	one := [1]outItem{{b: welcome.b, own: welcome}}
	c.hold(one[:]) // written with joined and the replay (runJoin)
	c.v1.join.held = true
	joined()
	old = s.replaceLocked(c)
	s.addSub(c, c.room, after, lag)
	s.hub.keyJoined(c) // cluster: bridge.go
	s.mu.Unlock()
	return old
}

// The commands.

// allows reports whether the connection's credentials let it join room:
// the rules of auth.Claims.AllowsRoom ("*" is every room).
func (v *v1Conn) allows(room []byte) bool {
	if v.allowed == nil {
		return true
	}
	for _, r := range *v.allowed {
		if r == "*" || r == string(room) {
			return true
		}
	}
	return false
}

// command handles one v1 frame's text: parse, do, answer.
func (c *Conn) command(payload []byte) error {
	h, v := c.hub, c.v1
	if v.cold() != nil {
		// A join waits for the Log: what follows it waits behind it, so
		// the answers keep the commands' order (logread.go).
		c.deferCommand(payload)
		return nil
	}
	v.work()
	defer v.done()
	cmd := &v.cmd
	if err := chat.ParseCommand(cmd, payload, chat.Limits{MaxText: h.cfg.MaxMessage, MaxHistory: h.cfg.HistorySize}); err != nil {
		e := err.(*chat.Error)
		c.sendError(cmd.ID, e.Code, e.Reason)
		return nil
	}
	switch cmd.Type {
	case chat.TypeSend:
		return c.send1(cmd)
	case chat.TypeJoin:
		if !v.allows(cmd.Room) {
			c.sendError(cmd.ID, chat.CodeForbidden, refusedReason(chat.CodeForbidden))
			return nil
		}
		room, ok := c.roomOf(cmd.Room)
		if !ok {
			room = string(cmd.Room)
		}
		v.join = pendingJoin{room: room, id: cmd.ID, hasSince: cmd.HasSince, since: cmd.Since, epoch: string(cmd.Epoch)}
		k := 0
		if cmd.HasHistory {
			k = cmd.History
		}
		c.runJoin(k) // pending or not: the next command waits for its answer
	case chat.TypeLeave:
		s := h.table.shardOf(c.key)
		s.mu.Lock()
		i := v.subIndex(cmd.Room)
		var room string
		if i >= 0 {
			room = v.subs[i].r.name
			s.removeSub(c, i)
		}
		s.mu.Unlock()
		if i < 0 {
			c.sendError(cmd.ID, chat.CodeNotMember, refusedReason(chat.CodeNotMember))
			return nil
		}
		h.presence.Depart(room, c.key) // out of the roster: counted for the grace
		v.buf = chat.AppendLeft(v.buf[:0], cmd.ID, room)
		c.sendEnvelope(v.buf)
	case chat.TypeMembers:
		room, ok := c.roomOf(cmd.Room)
		if !ok {
			c.sendError(cmd.ID, chat.CodeNotMember, refusedReason(chat.CodeNotMember))
			return nil
		}
		var n int
		v.keys, n = h.presence.Members(room, v.keys[:0])
		v.buf = chat.AppendMembers(v.buf[:0], cmd.ID, room, n, v.keys)
		clear(v.keys)
		c.sendEnvelope(v.buf)
	}
	return nil
}

// send1 is the send command: deduplicated by id, stamped, broadcast, acked.
//
// Past the sender's delivery limit (limits.go) it returns the close, as a
// seed message would.
func (c *Conn) send1(cmd *chat.Command) error {
	h, v := c.hub, c.v1
	room, ok := c.roomOf(cmd.Room)
	if !ok {
		c.sendError(cmd.ID, chat.CodeNotMember, refusedReason(chat.CodeNotMember))
		return nil
	}
	if cmd.ID != nil {
		if a, dup := h.dedup.Check(c.key, cmd.ID); dup {
			v.buf = chat.AppendAck(v.buf[:0], cmd.ID, &a, true)
			c.sendEnvelope(v.buf)
			return nil
		}
	}
	h.stats.MessagesIn.Add(1)
	h.stats.BytesIn.Add(uint64(len(cmd.Text)))
	if h.lg.log != nil {
		return c.send1Logged(room, cmd) // log.go
	}
	d, err := h.broadcast(c, time.Now().UnixNano(), room, cmd.Text, cmd.ID)
	if err != nil {
		return err
	}
	if d.Seq == 0 {
		c.sendError(cmd.ID, chat.CodeUnavailable, refusedReason(chat.CodeUnavailable))
		return nil
	}
	a := chat.Ack{Room: room, Stamp: chat.Stamp{Seq: d.Seq, Epoch: d.Epoch, TS: d.TS}}
	if cmd.ID != nil {
		h.dedup.Put(c.key, cmd.ID, a)
	}
	v.buf = chat.AppendAck(v.buf[:0], cmd.ID, &a, false)
	c.sendEnvelope(v.buf)
	return nil
}

// refusedReason is the error frame's reason for a refusal of the server's.
// storeSlowReason is a join's refusal when the history store did not
// answer in time and the box holds nothing of the room.
const storeSlowReason = "the history store did not answer in time: join again"

func refusedReason(code chat.Code) string {
	switch code {
	case chat.CodeTooManyRooms:
		return "too many rooms for one connection (-max-rooms-per-conn)"
	case chat.CodeNotMember:
		return "not a member of this room: join it first"
	case chat.CodeForbidden:
		return "this connection may not join this room"
	case chat.CodeUnavailable:
		return "not available now: the server is shutting down"
	}
	return code.String()
}

func (c *Conn) sendError(id []byte, code chat.Code, reason string) {
	c.v1.buf = chat.AppendError(c.v1.buf[:0], id, code, reason)
	c.sendEnvelope(c.v1.buf)
}

// holdEnvelope is sendEnvelope for a join's frames: held (Conn.hold) for
// runJoin's write.
func (c *Conn) holdEnvelope(env []byte) {
	f := c.envelopeFrame(env)
	one := [1]outItem{{b: f.b, own: f}}
	c.hold(one[:])
	c.v1.join.held = true
}

// sendEnvelope queues env (copied) for c alone: a text frame, or for a
// gzip client the gzip'd binary frame. A deflate client gets it
// uncompressed (a frame without RSV1 is valid on a deflate connection).
func (c *Conn) sendEnvelope(env []byte) { c.send(c.envelopeFrame(env)) }

// envelopeFrame builds env's frame for c (see sendEnvelope) in a pooled
// own frame.
func (c *Conn) envelopeFrame(env []byte) *ownFrame {
	f := ownFrames.Get().(*ownFrame)
	if c.gzip {
		f.b = appendGzipEnvelope(f.b[:0], env)
	} else {
		f.b = codec.AppendFrame(f.b[:0], codec.OpText, env)
	}
	return f
}

// gzipReplayFrame is the Ring's Encode: the gzip'd binary frame of a
// retained envelope, byte for byte what envelopeFrame gives a gzip member.
// The Ring builds it at most once per message, on its first gzip replay
// rather than when the message is appended: most messages are never
// replayed, and one more gzip per broadcast would cost about what the
// whole live delivery does.
func (h *Hub) gzipReplayFrame(dst, env []byte) []byte {
	h.stats.GzipEncodings.Add(1)
	return appendGzipEnvelope(dst, env)
}

// storedEnvelope is the size below which an envelope for one gzip
// connection is sent in a stored gzip member rather than a compressed one:
// at BestSpeed a 75-byte ack came out 102 bytes compressed and 100 stored,
// a 170-byte message envelope 199 and 197 (codec.AppendGzipStoredFrame),
// and storing costs a copy and a CRC, no compressor.
const storedEnvelope = 256

// appendGzipEnvelope appends env's gzip'd binary frame for a gzip member.
func appendGzipEnvelope(dst, env []byte) []byte {
	if len(env) < storedEnvelope {
		return codec.AppendGzipStoredFrame(dst, env)
	}
	return codec.AppendGzipFrame(dst, env)
}

// textReplayFrame is the Ring's Frame: the text frame of a retained
// envelope, byte for byte what envelopeFrame gives a member without gzip
// (deflate members too: envelopes replayed go uncompressed, as sendEnvelope's
// do), built on the message's first replay to such a member.
func textReplayFrame(dst, env []byte) []byte { return codec.AppendFrame(dst, codec.OpText, env) }

// historySweepEvery is how often the Ring forgets rooms that have retained
// nothing and have no members (after chat.RingConfig.MetaTTL).
const historySweepEvery = 10 * time.Second

// sweepHistory runs until the Hub stops: the Ring's Sweep, keeping the
// epoch of every room with members here.
func (h *Hub) sweepHistory() {
	t := time.NewTicker(historySweepEvery)
	defer t.Stop()
	inUse := func(room string) bool { return h.table.roomCount(room) > 0 }
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.ring.Sweep(inUse)
		}
	}
}

// Presence frames. The ticker flushes the coalescer a few times per
// interval; each room's event is encoded once and delivered to the room's
// v1 members (seed members never see one), like a direct message: not
// through the outboxes, since it has no seq to keep in order.

func (h *Hub) sweepPresence() {
	t := time.NewTicker(max(h.cfg.PresenceInterval/4, 10*time.Millisecond))
	defer t.Stop()
	var buf []byte
	var events []presenceOut
	emit := func(e *chat.PresenceEvent) {
		start := len(buf)
		buf = chat.AppendPresence(buf, e)
		events = append(events, presenceOut{room: e.Room, start: start, end: len(buf)})
	}
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.presence.Flush(emit) // encodes under the Presence lock, delivers after it
			for i, e := range events {
				h.publishPresence(e.room, buf[e.start:e.end])
				events[i] = presenceOut{}
			}
			buf, events = buf[:0], events[:0]
		}
	}
}

type presenceOut struct {
	room       string
	start, end int
}

// publishPresence delivers env, a presence envelope, to room's v1 members
// here: one message, its variants built once.
func (h *Hub) publishPresence(room string, env []byte) {
	m := h.newMessage(nil)
	m.setEnv(env)
	var frames uint64
	for _, s := range h.table.shards {
		s.mu.RLock()
		if r := s.rooms[room]; r != nil {
			for _, e := range r.subs {
				v := m.variantFor(e.c) // a sub is a v1 member: an envelope variant
				if e.c.deliver([]outItem{{b: m.frame(v), msg: m, v: uint8(v)}}) {
					frames++
				}
			}
		}
		s.mu.RUnlock()
	}
	h.stats.FramesOut.Add(frames)
	h.stats.PresenceFrames.Add(1)
	m.doneBuilding()
}

// The rooms' order and history, for the admin API.

// RoomState is one room as GET /rooms shows it: its members here and its
// log's position on this box.
type RoomState struct {
	Room     string `json:"room"`
	Members  int    `json:"count"` // keys in the room (in their presence grace included)
	Seq      uint64 `json:"seq"`   // the latest seq; 0 before the first message
	Epoch    string `json:"epoch,omitempty"`
	Retained int    `json:"retained"` // messages kept in its history
	Bytes    int64  `json:"history_bytes"`
}

// RoomStates returns every room with members or a log here, by name.
func (h *Hub) RoomStates() []RoomState {
	counts := h.table.roomCounts()
	infos := h.ring.Infos(nil)
	out := make([]RoomState, 0, len(infos)+len(counts))
	seen := make(map[string]bool, len(infos))
	for _, i := range infos {
		seen[i.Room] = true
		out = append(out, RoomState{Room: i.Room, Members: h.presence.Count(i.Room), Seq: i.Seq, Epoch: i.Epoch, Retained: i.Len, Bytes: i.Bytes})
	}
	for room := range counts {
		if !seen[room] {
			out = append(out, RoomState{Room: room, Members: h.presence.Count(room)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
	return out
}

// RoomState returns one room's state and up to -presence-list-max of its
// keys, sorted; ok is false for a room with neither members nor a log.
func (h *Hub) RoomState(room string) (st RoomState, members []string, ok bool) {
	st.Room = room
	members, st.Members = h.presence.Members(room, nil)
	if i, has := h.ring.Info(room); has {
		st.Seq, st.Epoch, st.Retained, st.Bytes = i.Seq, i.Epoch, i.Len, i.Bytes
		ok = true
	}
	if members == nil {
		members = []string{}
	}
	return st, members, ok || st.Members > 0
}

// RoomHistory returns room's retained message envelopes (JSON objects,
// oldest first) and its state; ok is false for a room without a log.
func (h *Hub) RoomHistory(room string) (st RoomState, envelopes [][]byte, ok bool) {
	if _, has := h.ring.Info(room); !has {
		return RoomState{Room: room}, nil, false
	}
	hc := &historyCopy{}
	info, _ := h.ring.Last(room, h.cfg.HistorySize, hc)
	st = RoomState{Room: room, Members: h.presence.Count(room), Seq: info.Seq, Epoch: info.Epoch, Retained: info.Len, Bytes: info.Bytes}
	return st, hc.envs, true
}

// historyCopy is a chat.Reader that copies what it is replayed.
type historyCopy struct{ envs [][]byte }

func (hc *historyCopy) Attach(chat.Info) {}
func (hc *historyCopy) Replay(e chat.Entry) {
	hc.envs = append(hc.envs, append([]byte(nil), e.Frame...))
}
