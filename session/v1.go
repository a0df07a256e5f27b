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
// its join replayed: a message stamped before the join but fanned out
// after it (it was in an outbox already) is skipped, so the seam between
// replay and live traffic has no duplicate; and no message stamped after
// the join can miss the sub, which closes the gap.
//
// Lock order: a Ring room's lock, then shard.mu, then Conn.wmu. The Hub
// never calls the Ring with a shard lock held.

// sub is one room a v1 connection is in; it lives in the room's subs list
// of the connection's key's shard, under that shard's mu.
type sub struct {
	c     *Conn
	room  string
	idx   int32  // index in the room's subs
	after uint64 // live messages with seq <= after are not delivered
}

// v1Conn is what a v1 connection holds beyond a seed one.
type v1Conn struct {
	c    *Conn
	subs []*sub // under the key's shard mu; the first room first

	// The rooms the credentials allow (a JWT rooms claim), if limited.
	rooms        []string
	roomsLimited bool

	// The position the query asked for in the first room.
	hasSince, hasHistory bool
	since                uint64
	epoch                string
	history              int

	// OnReady only: the command being handled and the join in progress
	// (v1Conn is the Ring's Reader for it, so a join allocates no closure).
	cmd      chat.Command
	buf      []byte // envelope scratch
	join     pendingJoin
	welcome  *ownFrame // the 101, for the first join
	replaced *Conn     // what the first join displaced
}

type pendingJoin struct {
	room      string
	id        []byte
	hasSince  bool
	since     uint64
	epoch     string
	count     int  // members before this join
	attached  bool // Attach registered the sub: replay what follows
	refused   chat.Code
	recovered bool
}

// newV1Conn returns the v1 state for a request that opted in.
func newV1Conn(c *Conn, req *codec.Request) *v1Conn {
	v := &v1Conn{c: c, hasSince: req.HasSince, since: req.Since, hasHistory: req.HasHistory, history: req.History,
		rooms: req.Rooms, roomsLimited: req.Rooms != nil}
	if req.HasSince {
		v.epoch = string(req.Epoch)
	}
	return v
}

// The message's envelope variants.

// Publish implements chat.Sink: the Ring stamped the message as env; the
// envelope frame is built and the message queued for the room's members,
// all before the room's next message is stamped.
func (m *message) Publish(room string, s chat.Stamp, env []byte) {
	m.seq = s.Seq
	m.env = codec.AppendFrame(m.env[:0], codec.OpText, env)
	m.envBody = m.env[len(m.env)-len(env):]
	m.recharge(&m.envHeld, m.env)
	m.local = m.hub.fanOut(room, m)
}

// envVariantFor is variantFor for a v1 member.
func (m *message) envVariantFor(c *Conn) int {
	switch {
	case c.gzip:
		return varEnvGzip
	case c.deflate.Enabled && c.deflate.ServerFits(len(m.envBody)) && m.envDeflated():
		return varEnvDeflate
	}
	return varEnv
}

func (m *message) envDeflated() bool {
	m.envDfOnce.Do(func() {
		if len(m.envBody) < codec.DeflateMinSize {
			return
		}
		m.envDf, m.envDfUse = codec.AppendDeflateFrame(m.envDf[:0], m.envBody)
		m.hub.stats.DeflateEncodings.Add(1)
		m.recharge(&m.envDfHeld, m.envDf)
	})
	return m.envDfUse
}

func (m *message) envFrame(v int) []byte {
	switch v {
	case varEnv:
		return m.env
	case varEnvDeflate:
		m.envDeflated()
		return m.envDf
	}
	m.envGzOnce.Do(func() {
		m.envGz = codec.AppendGzipFrame(m.envGz[:0], m.envBody)
		m.hub.stats.GzipEncodings.Add(1)
		m.recharge(&m.envGzHeld, m.envGz)
	})
	return m.envGz
}

// trimEnv is trim for the envelope variants; m.mu is held.
func (m *message) trimEnv() {
	if m.envHeld != 0 && m.queued[varEnv].Load() == 0 {
		m.hub.out.add(-m.envHeld)
		m.env, m.envBody, m.envHeld = nil, nil, 0
	}
	if m.envGzHeld != 0 && m.queued[varEnvGzip].Load() == 0 {
		m.hub.out.add(-m.envGzHeld)
		m.envGz, m.envGzHeld = nil, 0
	}
	if m.envDfHeld != 0 && m.queued[varEnvDeflate].Load() == 0 {
		m.hub.out.add(-m.envDfHeld)
		m.envDf, m.envDfHeld = nil, 0
	}
}

// releaseEnv is release for the envelope variants (their charge is
// refunded by release); m.mu is held.
func (m *message) releaseEnv() {
	if cap(m.env) > maxPooledFrame {
		m.env = nil
	}
	if cap(m.envGz) > maxPooledFrame {
		m.envGz = nil
	}
	if cap(m.envDf) > maxPooledFrame {
		m.envDf = nil
	}
	m.env, m.envGz, m.envDf, m.envBody = m.env[:0], m.envGz[:0], m.envDf[:0], nil
	m.envGzOnce, m.envDfOnce, m.envDfUse = sync.Once{}, sync.Once{}, false
	m.envHeld, m.envGzHeld, m.envDfHeld = 0, 0, 0
	m.seq, m.local = 0, 0
}

// historyHeld is what the rooms' history and the dedup table hold of the
// outbound budget.
func (h *Hub) historyHeld() int64 { return h.ring.Bytes() + h.dedup.Bytes() }

// stamp has the Ring stamp m, a message to room from key (id its client
// id), which queues it for the room's members (Publish).
func (h *Hub) stamp(room string, m *message, key string, id []byte) chat.Stamp {
	st, _ := h.ring.Append(chat.Message{Room: room, From: key, ID: id, Text: m.body}, m)
	return st
}

// The table side.

// deliverSubs is deliverRoom for the room's v1 members; s.mu is held.
func (f *fanout) deliverSubs(r *room, msgs []*message) (frames uint64) {
	for _, sb := range r.subs {
		c := sb.c
		items := f.items[:0]
		for _, m := range msgs {
			if m.seq <= sb.after {
				continue // replayed at the join, or stamped before it
			}
			v := m.variantFor(c)
			items = append(items, outItem{b: m.frame(v), msg: m, v: uint8(v)})
		}
		if len(items) > 0 && c.deliver(items) {
			frames += uint64(len(items))
		}
		clear(items)
		f.items = items[:0]
	}
	return frames
}

// addSub puts c in room with after; s.mu is held.
func (s *shard) addSub(c *Conn, name string, after uint64) {
	r := s.rooms[name]
	if r == nil {
		r = &room{}
		s.rooms[name] = r
		s.hub.roomOpened(name) // cluster: bridge.go
	}
	sb := &sub{c: c, room: name, idx: int32(len(r.subs)), after: after}
	r.subs = append(r.subs, sb)
	c.v1.subs = append(c.v1.subs, sb)
}

// removeSub takes c's i-th room away; s.mu is held.
func (s *shard) removeSub(c *Conn, i int) {
	v := c.v1
	sb := v.subs[i]
	r := s.rooms[sb.room]
	last := len(r.subs) - 1
	moved := r.subs[last]
	r.subs[sb.idx] = moved
	moved.idx = sb.idx
	r.subs[last] = nil
	r.subs = r.subs[:last]
	if last == 0 && len(r.members) == 0 {
		delete(s.rooms, sb.room)
		s.hub.roomClosed(sb.room) // cluster: bridge.go
	}
	copy(v.subs[i:], v.subs[i+1:])
	v.subs[len(v.subs)-1] = nil
	v.subs = v.subs[:len(v.subs)-1]
}

// removeSubs takes c out of all its rooms; s.mu is held.
func (s *shard) removeSubs(c *Conn) {
	for len(c.v1.subs) > 0 {
		s.removeSub(c, len(c.v1.subs)-1)
	}
}

// subIndex returns the index of c's sub of room, -1 if none; s.mu is held.
func (v *v1Conn) subIndex(room []byte) int {
	for i, sb := range v.subs {
		if sb.room == string(room) {
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
		return c.v1.subs[i].room, true
	}
	return "", false
}

// roomKeys returns the keys in room across shards (at most max of them,
// sorted) and how many there are. It takes each shard's read lock in turn.
func (t *table) roomKeys(name string, max int) ([]string, int) {
	var keys []string
	n := 0
	for _, s := range t.shards {
		s.mu.RLock()
		if r := s.rooms[name]; r != nil {
			n += len(r.members) + len(r.subs)
			for _, c := range r.members {
				if len(keys) < max {
					keys = append(keys, c.key)
				}
			}
			for _, sb := range r.subs {
				if len(keys) < max {
					keys = append(keys, sb.c.key)
				}
			}
		}
		s.mu.RUnlock()
	}
	sort.Strings(keys)
	return keys, n
}

// keyInRoom reports whether the connection holding key is in room.
func (t *table) keyInRoom(key, name string) bool {
	s := t.shardOf(key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.byKey[key]
	switch {
	case c == nil:
		return false
	case c.v1 != nil:
		return c.v1.subIndex([]byte(name)) >= 0
	}
	return c.room == name
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
// the query's position.
func (c *Conn) joinFirst(welcome *ownFrame) *Conn {
	v := c.v1
	v.welcome = welcome
	v.join = pendingJoin{room: c.room, hasSince: v.hasSince, since: v.since, epoch: v.epoch}
	k := 0
	if v.hasHistory {
		k = v.history
	}
	old := c.runJoin(k)
	v.welcome = nil
	return old
}

// runJoin runs v.join through the Ring and reports the connection a first
// join displaced.
func (c *Conn) runJoin(history int) (old *Conn) {
	v, h := c.v1, c.hub
	v.join.count = h.table.roomCount(v.join.room)
	if v.welcome != nil && h.table.keyInRoom(c.key, v.join.room) {
		v.join.count-- // the connection this one replaces: one key, counted once
	}
	if v.join.hasSince {
		h.ring.Since(v.join.room, v.join.since, v.join.epoch, v)
	} else {
		h.ring.Last(v.join.room, history, v)
	}
	old, v.replaced = v.replaced, nil
	if v.join.refused != 0 {
		c.sendError(v.join.id, v.join.refused, refusedReason(v.join.refused))
	}
	v.join = pendingJoin{}
	return old
}

// Attach implements chat.Reader: under the room's log lock, register the
// sub with the room's position and queue joined.
func (v *v1Conn) Attach(info chat.Info) {
	c, j := v.c, &v.join
	j.recovered = j.hasSince && chat.Recoverable(info, j.since, j.epoch)
	t := c.hub.table
	// joined is queued under the shard lock that registers the sub, so
	// nothing for the room (or, first, for the key) can come before it.
	joined := func(count int) {
		v.buf = chat.AppendJoined(v.buf[:0], &chat.Joined{ID: j.id, Room: j.room, Seq: info.Seq,
			Epoch: info.Epoch, Recovered: j.recovered, Count: count})
		c.sendEnvelope(v.buf)
	}
	if v.welcome != nil {
		v.replaced = t.joinV1(c, v.welcome, info.Seq, func() { joined(j.count + 1) })
		j.attached = true
		return
	}
	s := t.shardOf(c.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch i := v.subIndex([]byte(j.room)); {
	case !c.inTable:
		j.refused = chat.CodeUnavailable
	case i >= 0:
		v.subs[i].after = info.Seq // a resync: replay from the new position
		j.attached = true
		joined(j.count) // counted already
	case len(v.subs) >= c.hub.cfg.MaxRoomsPerConn:
		j.refused = chat.CodeTooManyRooms
	default:
		s.addSub(c, j.room, info.Seq)
		j.attached = true
		joined(j.count + 1)
	}
}

// Replay implements chat.Reader: a missed message, in seq order, queued
// right behind joined.
func (v *v1Conn) Replay(e chat.Entry) {
	if v.join.attached {
		v.c.sendEnvelope(e.Frame)
	}
}

// joinV1 is table.join for a v1 connection: c enters the table under its
// key in its first room, with after as that sub's position, and the 101
// goes out first.
func (t *table) joinV1(c *Conn, welcome *ownFrame, after uint64, joined func()) (old *Conn) {
	s := t.shardOf(c.key)
	s.mu.Lock()
	c.send(welcome)
	joined()
	old = s.replaceLocked(c)
	s.addSub(c, c.room, after)
	s.hub.keyJoined(c) // cluster: bridge.go
	s.mu.Unlock()
	return old
}

// The commands.

// allows reports whether the connection's credentials let it join room:
// the rules of auth.Claims.AllowsRoom ("*" is every room).
func (v *v1Conn) allows(room []byte) bool {
	if !v.roomsLimited {
		return true
	}
	for _, r := range v.rooms {
		if r == "*" || r == string(room) {
			return true
		}
	}
	return false
}

// command handles one v1 frame's text: parse, do, answer.
func (c *Conn) command(payload []byte) error {
	h, v := c.hub, c.v1
	cmd := &v.cmd
	if err := chat.ParseCommand(cmd, payload, chat.Limits{MaxText: h.cfg.MaxMessage, MaxHistory: h.cfg.HistorySize}); err != nil {
		e := err.(*chat.Error)
		c.sendError(cmd.ID, e.Code, e.Reason)
		return nil
	}
	switch cmd.Type {
	case chat.TypeSend:
		c.send1(cmd)
	case chat.TypeJoin:
		if !chat.ValidRoom(cmd.Room) {
			c.sendError(cmd.ID, chat.CodeBadRoom, "bad room name")
			return nil
		}
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
		c.runJoin(k)
	case chat.TypeLeave:
		s := h.table.shardOf(c.key)
		s.mu.Lock()
		i := v.subIndex(cmd.Room)
		var room string
		if i >= 0 {
			room = v.subs[i].room
			s.removeSub(c, i)
		}
		s.mu.Unlock()
		if i < 0 {
			c.sendError(cmd.ID, chat.CodeNotMember, refusedReason(chat.CodeNotMember))
			return nil
		}
		v.buf = chat.AppendLeft(v.buf[:0], cmd.ID, room)
		c.sendEnvelope(v.buf)
	case chat.TypeMembers:
		room, ok := c.roomOf(cmd.Room)
		if !ok {
			c.sendError(cmd.ID, chat.CodeNotMember, refusedReason(chat.CodeNotMember))
			return nil
		}
		keys, n := h.table.roomKeys(room, h.cfg.MembersListMax)
		v.buf = chat.AppendMembers(v.buf[:0], cmd.ID, room, n, keys)
		c.sendEnvelope(v.buf)
	}
	return nil
}

// send1 is the send command: deduplicated by id, stamped, broadcast, acked.
func (c *Conn) send1(cmd *chat.Command) {
	h, v := c.hub, c.v1
	room, ok := c.roomOf(cmd.Room)
	if !ok {
		c.sendError(cmd.ID, chat.CodeNotMember, refusedReason(chat.CodeNotMember))
		return
	}
	if cmd.ID != nil {
		if a, dup := h.dedup.Check(c.key, cmd.ID); dup {
			v.buf = chat.AppendAck(v.buf[:0], cmd.ID, &a, true)
			c.sendEnvelope(v.buf)
			return
		}
	}
	h.stats.MessagesIn.Add(1)
	h.stats.BytesIn.Add(uint64(len(cmd.Text)))
	d := h.deliverFrom(target{kind: toRoom, name: room}, cmd.Text, nil, fromHere, c.key, cmd.ID)
	if d.Seq == 0 {
		c.sendError(cmd.ID, chat.CodeUnavailable, refusedReason(chat.CodeUnavailable))
		return
	}
	a := chat.Ack{Room: room, Stamp: chat.Stamp{Seq: d.Seq, Epoch: d.Epoch, TS: d.TS}}
	if cmd.ID != nil {
		h.dedup.Put(c.key, cmd.ID, a)
	}
	v.buf = chat.AppendAck(v.buf[:0], cmd.ID, &a, false)
	c.sendEnvelope(v.buf)
}

// refusedReason is the error frame's reason for a refusal of the server's.
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

// sendEnvelope queues env (copied) for c alone: a text frame, or for a
// gzip client the gzip'd binary frame. A deflate client gets it
// uncompressed (a frame without RSV1 is valid on a deflate connection).
func (c *Conn) sendEnvelope(env []byte) {
	f := ownFrames.Get().(*ownFrame)
	if c.gzip {
		f.b = codec.AppendGzipFrame(f.b[:0], env)
	} else {
		f.b = codec.AppendFrame(f.b[:0], codec.OpText, env)
	}
	c.send(f)
}

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
