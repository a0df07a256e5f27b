package session

import (
	"sync"
	"unsafe"
)

// table is the sharded session table: connections by specialKey, grouped
// into rooms. A key hashes to one shard, so the replace-on-same-key rule is
// one critical section: there is never a moment with both connections or
// with neither. Each shard also runs its own fan-out (see fanout.go), so a
// broadcast is spread over the workers shard by shard.
type table struct {
	shards []*shard
}

type shard struct {
	hub *Hub

	mu    sync.RWMutex
	byKey keyTable         // connections by key (keytable.go)
	rooms map[string]*room // only rooms with members; an empty room costs nothing

	limboMu sync.Mutex
	limbo   map[*Conn]struct{} // handshaking and closing connections (deadlines)

	fan fanout // this shard's broadcasts and closes, in order
}

type room struct {
	members []*Conn
	subs    []subEntry // v1 connections in the room (v1.go)
	// name is the room's name, held once: every sub of it (v1.go) holds
	// this string rather than a copy of its join's.
	name string
}

func newTable(h *Hub, n int) *table {
	t := &table{shards: make([]*shard, n)}
	for i := range t.shards {
		s := &shard{
			hub:   h,
			rooms: make(map[string]*room),
			limbo: make(map[*Conn]struct{}),
		}
		s.fan.shard = s
		t.shards[i] = s
	}
	return t
}

// shardOf returns the shard of a key (FNV-1a).
func (t *table) shardOf(key string) *shard {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return t.shards[h%uint32(len(t.shards))]
}

// limboOf returns the shard that tracks c's deadlines while it is not a
// member. It hashes c's address (Go's heap does not move objects), which
// is known before the fd is registered and spreads like the fds would.
func (t *table) limboOf(c *Conn) *shard {
	return t.shards[(uintptr(unsafe.Pointer(c))>>6)%uintptr(len(t.shards))]
}

// roomName returns name as a string, the one of the room of that name in
// key's shard if it has members there: the members of a room hold its name
// once per shard rather than once each.
func (t *table) roomName(key string, name []byte) string {
	if len(name) == 0 {
		return ""
	}
	s := t.shardOf(key)
	s.mu.RLock()
	r := s.rooms[string(name)]
	s.mu.RUnlock()
	if r != nil {
		return r.name
	}
	return string(name)
}

// join adds c under its key and returns the connection it displaced. It
// first hands welcome (if not nil) to c under the shard lock, so nothing
// fanned out to the room reaches c before it, and nothing fanned out after
// it misses c.
func (t *table) join(c *Conn, welcome *ownFrame) (old *Conn) {
	s := t.shardOf(c.key)
	s.mu.Lock()
	if welcome != nil {
		c.send(welcome)
	}
	old = s.replaceLocked(c)
	s.addMember(c)
	s.hub.keyJoined(c) // cluster: bridge.go
	s.mu.Unlock()
	return old
}

// replaceLocked makes c the holder of its key and returns the connection
// it displaced, taken out of its rooms; s.mu is held. The caller puts c in
// its room.
func (s *shard) replaceLocked(c *Conn) (old *Conn) {
	if old = s.byKey.put(c); old != nil {
		s.leaveRooms(old)
		old.inTable = false
	}
	c.inTable = true
	return old
}

// leaveRooms takes c out of every room it is in; s.mu is held.
func (s *shard) leaveRooms(c *Conn) {
	if c.v1 != nil {
		s.removeSubs(c)
		return
	}
	s.removeMember(c)
}

// remove takes c out of the table unless a newer connection replaced it,
// and reports whether it did.
func (t *table) remove(c *Conn) (removed bool) {
	s := t.shardOf(c.key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.inTable {
		removed = true
		s.leaveRooms(c)
		if s.byKey.remove(c) {
			s.hub.keyLeft(c) // cluster: bridge.go
		}
		c.inTable = false
	}
	return removed
}

// lookup returns the connection holding key, if any.
func (t *table) lookup(key string) *Conn {
	s := t.shardOf(key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byKey.get(key)
}

// eachMember calls f for every connection in the table, one shard at a
// time under its read lock: f must not take a shard lock (Conn.wmu is fine,
// see the lock order in doc.go).
func (t *table) eachMember(f func(*Conn)) {
	for _, s := range t.shards {
		s.mu.RLock()
		for c := range s.byKey.all() {
			f(c)
		}
		s.mu.RUnlock()
	}
}

// isMember reports whether c is in the table; it takes c's shard lock.
func (t *table) isMember(c *Conn) bool {
	s := t.shardOf(c.key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return c.inTable
}

func (s *shard) addMember(c *Conn) {
	r := s.rooms[c.room]
	if r == nil {
		r = &room{name: c.room}
		s.rooms[c.room] = r
		s.hub.roomOpened(c.room) // cluster: bridge.go
	}
	c.member = int32(len(r.members))
	r.members = append(r.members, c)
}

func (s *shard) removeMember(c *Conn) {
	r := s.rooms[c.room]
	last := len(r.members) - 1
	moved := r.members[last]
	r.members[c.member] = moved
	moved.member = c.member
	r.members[last] = nil
	r.members = r.members[:last]
	c.member = -1
	if last == 0 && len(r.subs) == 0 {
		delete(s.rooms, c.room)
		s.hub.roomClosed(c.room) // cluster: bridge.go
	}
}

// roomSize reports how many members room has in this shard.
func (s *shard) roomSize(name string) int {
	s.mu.RLock()
	n := 0
	if r := s.rooms[name]; r != nil {
		n = len(r.members) + len(r.subs)
	}
	s.mu.RUnlock()
	return n
}

func (s *shard) addLimbo(c *Conn) {
	s.limboMu.Lock()
	s.limbo[c] = struct{}{}
	s.limboMu.Unlock()
}

func (s *shard) removeLimbo(c *Conn) {
	s.limboMu.Lock()
	delete(s.limbo, c)
	s.limboMu.Unlock()
}

// RoomCount is one room's size, for snapshots.
type RoomCount struct {
	Room    string `json:"room"`
	Members int    `json:"members"`
}

// roomCounts returns every room with its size across shards.
func (t *table) roomCounts() map[string]int {
	counts := make(map[string]int)
	for _, s := range t.shards {
		s.mu.RLock()
		for name, r := range s.rooms {
			counts[name] += len(r.members) + len(r.subs)
		}
		s.mu.RUnlock()
	}
	return counts
}

// The table is the Presence's Roster (chat.Roster): a connection is
// counted and listed in its rooms through its entries here — a seed
// connection's member entry, a v1 connection's subs — so presence costs a
// present member nothing of its own (handshake.go: Arrive; v1.go: Enter,
// and Depart when it leaves). Called with the Presence locked, which comes
// before shard.mu.

// RosterCount implements chat.Roster: room's members.
func (t *table) RosterCount(name string) int {
	n := 0
	for _, s := range t.shards {
		s.mu.RLock()
		if r := s.rooms[name]; r != nil {
			n += len(r.members) + len(r.subs)
		}
		s.mu.RUnlock()
	}
	return n
}

// AppendRoster implements chat.Roster: up to max of room's members' keys.
func (t *table) AppendRoster(dst []string, name string, limit int) []string {
	for _, s := range t.shards {
		if limit <= 0 {
			break
		}
		s.mu.RLock()
		if r := s.rooms[name]; r != nil {
			for _, c := range r.members[:min(limit, len(r.members))] {
				dst = append(dst, c.key)
			}
			limit -= len(r.members)
			for _, e := range r.subs[:min(max(limit, 0), len(r.subs))] {
				dst = append(dst, e.c.key)
			}
			limit -= len(r.subs)
		}
		s.mu.RUnlock()
	}
	return dst
}

// InRoster implements chat.Roster: whether key's connection is a member
// of room.
func (t *table) InRoster(name, key string) bool {
	s := t.shardOf(key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.byKey.get(key)
	switch {
	case c == nil:
		return false
	case c.v1 == nil:
		return c.room == name
	}
	return c.v1.subIndex([]byte(name)) >= 0
}
