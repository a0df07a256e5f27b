package cluster

import "github.com/wsd-chat/wsd/session"

// signal wakes the loop.
func (b *Bridge) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// push queues an event for the loop. Sub/unsub events are never dropped.
func (b *Bridge) push(e event) {
	b.mu.Lock()
	b.events = append(b.events, e)
	run := b.started
	b.mu.Unlock()
	if run {
		b.signal()
	}
}

// publish queues an encoded message; it reports false (and counts why) if
// it cannot go.
func (b *Bridge) publish(subject string, m *message) bool {
	if !b.stats.Connected.Load() {
		b.stats.drop(DropDisconnected)
		return false
	}
	if limit := b.maxPay.Load(); limit > 0 && int64(m.Size()+macSize) > limit {
		b.stats.drop(DropTooLarge)
		return false
	}
	size := m.Size()
	b.mu.Lock()
	if b.pubs >= b.cfg.QueueLimit || b.pubBytes+size > b.cfg.QueueBytes {
		b.mu.Unlock()
		b.stats.drop(DropQueueFull)
		return false
	}
	if !m.Kind.isPresence() { // presence numbers its changes per room (presence.go)
		m.Seq = b.seq.Add(1)
	}
	data := m.Append(make([]byte, 0, size+macSize))
	b.events = append(b.events, event{kind: evPublish, name: subject, data: data})
	b.pubs++
	b.pubBytes += size
	run := b.started
	b.mu.Unlock()
	b.stats.QueueDepth.Add(1)
	if run {
		b.signal()
	}
	return true
}

// RoomOpened implements session.Bridge.
func (b *Bridge) RoomOpened(room string) { b.push(event{kind: evRoomOpen, name: room}) }

// RoomClosed implements session.Bridge.
func (b *Bridge) RoomClosed(room string) { b.push(event{kind: evRoomClose, name: room}) }

// KeyJoined implements session.Bridge.
func (b *Bridge) KeyJoined(c *session.Conn) { b.push(event{kind: evKeyJoin, conn: c}) }

// KeyLeft implements session.Bridge.
func (b *Bridge) KeyLeft(c *session.Conn) { b.push(event{kind: evKeyLeave, conn: c}) }

// Forward implements session.Bridge.
func (b *Bridge) Forward(room string, m session.Broadcast) bool {
	// Only the text crosses: each box gzips it for its own gzip members
	// (once per broadcast, if it has any), so no box serves a frame it
	// did not build from the text it serves plain readers. The sender's
	// key and client id go along (the origin extension, wire.go) for the
	// envelopes of v1 members; a key or id the wire cannot carry (the
	// handshake and the v1 parser cap both as the wire does, so only a
	// Hub fed otherwise) leaves the message without them.
	msg := message{Kind: kindRoom, BoxID: b.cfg.BoxID, Target: room, Text: m.Text()}
	if from, id := m.From(), m.ID(); len(from) <= maxFrom && len(id) <= maxID {
		msg.From, msg.ID = from, id
	}
	return b.publish(b.subj.room(room), &msg)
}

// ForwardAll implements session.Bridge.
func (b *Bridge) ForwardAll(text []byte) bool {
	return b.publish(b.subj.all(), &message{Kind: kindAll, BoxID: b.cfg.BoxID, Text: text})
}

// ForwardKey implements session.Bridge.
func (b *Bridge) ForwardKey(key string, text []byte) bool {
	if len(key) > maxTarget {
		b.stats.drop(DropTooLarge)
		return false
	}
	return b.publish(b.subj.key(key), &message{Kind: kindDirect, BoxID: b.cfg.BoxID, Target: key, Text: text})
}
