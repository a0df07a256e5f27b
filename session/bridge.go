package session

import (
	"sync"
	"time"

	"github.com/wsd-chat/wsd/codec"
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

// Bridged reports whether the Hub has a Bridge.
func (h *Hub) Bridged() bool { return h.cfg.Bridge != nil }

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

// forward hands a broadcast that started on this box to the Bridge. The
// caller holds a builder hold on m.
func (h *Hub) forward(room string, m *message) {
	if b := h.bridge(); b != nil {
		b.Forward(room, Broadcast{m})
	}
}

// Broadcast is a Bridge's view of a broadcast during Forward.
type Broadcast struct{ m *message }

// Text returns the broadcast's payload.
func (b Broadcast) Text() []byte { return b.m.body }

// GzipFrame returns the broadcast's gzip'd binary frame, building it if no
// member needed it yet (once per broadcast, counted as a gzip encoding).
func (b Broadcast) GzipFrame() []byte { return b.m.frame(varGzip) }

// deliverLocal fans text out to room's members on this box and, if
// forward, hands it to the Bridge. gz, if not nil, is text's gzip'd binary
// frame, already built elsewhere: gzip members get it as it is.
func (h *Hub) deliverLocal(room string, text, gz []byte, forward bool) (n int, sent bool) {
	h.inflight.Add(1)
	defer h.inflight.Add(-1)
	if h.draining.Load() {
		return 0, false
	}
	m := h.newMessage(room, text)
	if gz != nil {
		m.useGzip(gz)
	}
	if h.cfg.OnFanout != nil {
		m.at = time.Now()
	}
	n = h.fanOut(room, m)
	if forward {
		if b := h.bridge(); b != nil {
			sent = b.Forward(room, Broadcast{m})
		}
	}
	m.doneBuilding()
	return n, sent
}

// DeliverRemote fans out a broadcast that came from another box to room's
// members here, without forwarding it again, and returns how many members
// it was queued for. gz is as in deliverLocal (nil: built here if needed).
func (h *Hub) DeliverRemote(room string, text, gz []byte) int {
	n, _ := h.deliverLocal(room, text, gz, false)
	return n
}

// DeliverRemoteAll is DeliverRemote to every room with members here.
func (h *Hub) DeliverRemoteAll(text, gz []byte) int {
	n := 0
	for room := range h.table.roomCounts() {
		n += h.DeliverRemote(room, text, gz)
	}
	return n
}

// PublishCluster is Publish that also reports whether the Bridge took the
// message for the other boxes.
func (h *Hub) PublishCluster(room string, text []byte) (delivered int, sent bool) {
	n, sent := h.deliverLocal(room, text, nil, true)
	if !h.draining.Load() {
		h.stats.Broadcasts.Add(1)
	}
	return n, sent
}

// PublishAll sends text to every connection in every room on this box and,
// through the Bridge, on every other box.
func (h *Hub) PublishAll(text []byte) (delivered int, sent bool) {
	for room := range h.table.roomCounts() {
		n, _ := h.deliverLocal(room, text, nil, false)
		delivered += n
		h.stats.Broadcasts.Add(1)
	}
	if b := h.bridge(); b != nil && !h.draining.Load() {
		sent = b.ForwardAll(text)
	}
	return delivered, sent
}

// SendAnywhere sends text to the connection holding key: on this box if
// it is here, otherwise through the Bridge to the box that holds it.
func (h *Hub) SendAnywhere(key string, text []byte) (local, sent bool) {
	if h.Send(key, text) {
		return true, false
	}
	if b := h.bridge(); b != nil && !h.draining.Load() {
		sent = b.ForwardKey(key, text)
	}
	return false, sent
}

// Kick closes c with 4001 (replaced) if it still holds its key: a newer
// connection with the same key won on another box.
func (h *Hub) Kick(c *Conn) bool {
	s := h.table.shardOf(c.key)
	s.mu.RLock()
	held := s.byKey[c.key] == c
	s.mu.RUnlock()
	if !held {
		return false
	}
	h.stats.Kicks.Add(1)
	h.log.Info("connection replaced", "key", c.key, "by", "another box")
	c.requestClose(codec.ErrReplaced)
	return true
}

// Draining reports whether the Hub is shutting down.
func (h *Hub) Draining() bool { return h.draining.Load() }
