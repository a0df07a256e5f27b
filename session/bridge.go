package session

import (
	"sync"

	"github.com/wsd-chat/wsd/chat"
)

// Bridge extends a Hub's rooms and keys beyond this box (package cluster
// implements it over NATS). The Hub calls it with session locks held, in
// the order the changes happen; every method must return at once without
// blocking or calling back into the Hub: queue the work and return.
type Bridge interface {
	// RoomOpened: the first member of room on this box joined.
	RoomOpened(room string)
	// RoomClosed: the last member of room on this box left.
	RoomClosed(room string)
	// KeyJoined: c now holds its key on this box, new or replacing a
	// local connection with the same key.
	KeyJoined(c *Conn)
	// KeyLeft: c held its key and no longer does; no local connection
	// holds the key now.
	KeyLeft(c *Conn)
	// Forward: b, a broadcast to room that started on this box (a client
	// message or Publish), is to go to the other boxes. b is valid only
	// during the call. It reports whether the message was handed on.
	Forward(room string, b Broadcast) bool
	// ForwardAll: text is for every room on every other box.
	ForwardAll(text []byte) bool
	// ForwardKey: text is for key, not connected on this box.
	ForwardKey(key string, text []byte) bool
}

// bridgeState is the Hub's side of a Bridge: how many shards have members
// of each room, so the bridge hears of a room's first and last member on
// the box, not on each shard.
type bridgeState struct {
	mu     sync.Mutex
	shards map[string]int // room → shards with members
}

func (h *Hub) bridge() Bridge { return h.cfg.Bridge }

// roomOpened is called under shard.mu when room gets its first member in
// that shard.
func (h *Hub) roomOpened(room string) {
	b := h.bridge()
	if b == nil {
		return
	}
	h.br.mu.Lock()
	if h.br.shards == nil {
		h.br.shards = make(map[string]int)
	}
	n := h.br.shards[room]
	h.br.shards[room] = n + 1
	if n == 0 {
		b.RoomOpened(room)
	}
	h.br.mu.Unlock()
}

// roomClosed is called under shard.mu when room's last member in that
// shard left.
func (h *Hub) roomClosed(room string) {
	b := h.bridge()
	if b == nil {
		return
	}
	h.br.mu.Lock()
	n := h.br.shards[room] - 1
	if n <= 0 {
		delete(h.br.shards, room)
		b.RoomClosed(room)
	} else {
		h.br.shards[room] = n
	}
	h.br.mu.Unlock()
}

// keyJoined is called under the key's shard.mu once c holds its key.
func (h *Hub) keyJoined(c *Conn) {
	if b := h.bridge(); b != nil {
		b.KeyJoined(c)
	}
}

// keyLeft is called under the key's shard.mu once c's key is gone.
func (h *Hub) keyLeft(c *Conn) {
	if b := h.bridge(); b != nil {
		b.KeyLeft(c)
	}
}

// Broadcast is a Bridge's view of a broadcast during Forward.
type Broadcast struct {
	m    *message
	from string
	id   []byte
}

// Text returns the broadcast's payload.
func (b Broadcast) Text() []byte { return b.m.seed.body }

// From returns the key of the client that sent the broadcast; "" for the
// admin API.
func (b Broadcast) From() string { return b.from }

// ID returns the client id of the v1 send, nil if it had none (and for a
// seed client or the admin API). Valid only during Forward.
func (b Broadcast) ID() []byte { return b.id }

// GzipFrame returns the broadcast's gzip'd binary frame, building it if no
// member needed it yet (once per broadcast, counted as a gzip encoding).
func (b Broadcast) GzipFrame() []byte { return b.m.frame(varGzip) }

// Kick closes c with 4001 (replaced) if it still holds its key: a newer
// connection with the same key won on another box.
func (h *Hub) Kick(c *Conn) bool {
	s := h.table.shardOf(c.key)
	s.mu.RLock()
	held := s.byKey.get(c.key) == c
	s.mu.RUnlock()
	if !held {
		return false
	}
	h.stats.Kicks.Add(1)
	h.log.Info("connection replaced", "key", c.key, "by", "another box")
	c.requestClose(errReplaced)
	return true
}

// Presence returns the Hub's presence: a Bridge shares this box's
// changes from it with the other boxes and applies theirs to it
// (chat/presence_remote.go).
func (h *Hub) Presence() *chat.Presence { return h.presence }

// Draining reports whether the Hub is shutting down.
func (h *Hub) Draining() bool { return h.draining.Load() }
