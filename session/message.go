package session

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsd-chat/wsd/codec"
)

// message is one encoded broadcast, shared by every queue that holds it.
// Its frame variants are built lazily, each at most once and only if some
// recipient wants it: the text frame (built with the message, since it is
// where the payload lives) and the gzip'd binary frame for seed clients with
// support_gzip. Once no fan-out can build from it any more, a variant no
// queue holds is dropped, so a queue of gzip frames does not keep the
// (often much larger) text alive. The last holder to release the message
// returns it, buffers and all, to a pool.
//
// Every byte of it is charged to the outbound budget while it lives.
type message struct {
	refs     atomic.Int32 // every holder: builders and queued items
	builders atomic.Int32 // the creator and each outbox entry not yet fanned out
	queued   [nVariants]atomic.Int32

	mu     sync.Mutex // orders dropping a variant against the final release
	text   []byte     // the text frame
	gz     []byte     // the gzip'd binary frame, once built
	gzOnce sync.Once
	body   []byte // the payload inside text, kept to build gz lazily
	room   string
	hub    *Hub
	at     time.Time // when the broadcast was accepted, if Config.OnFanout is set
}

// Frame variants of a message.
const (
	varText = iota
	varGzip
	nVariants
)

var messages = sync.Pool{New: func() any { return new(message) }}

// maxPooledFrame bounds the buffers a pooled message keeps.
const maxPooledFrame = 64 << 10

// newMessage returns a broadcast of payload to room, with one reference
// and one builder hold owned by the caller (see doneBuilding).
func (h *Hub) newMessage(room string, payload []byte) *message {
	m := messages.Get().(*message)
	m.hub = h
	m.room = room
	m.text = codec.AppendFrame(m.text[:0], codec.OpText, payload)
	m.body = m.text[len(m.text)-len(payload):]
	m.refs.Store(1)
	m.builders.Store(1)
	h.out.add(messageCost + int64(cap(m.text)))
	return m
}

// variant returns the variant a member receives.
func variant(gzip bool) int {
	if gzip {
		return varGzip
	}
	return varText
}

// frame returns variant v's bytes, building it on first use. Only holders
// of a builder hold may call it.
func (m *message) frame(v int) []byte {
	if v == varText {
		return m.text
	}
	m.gzOnce.Do(func() {
		m.gz = codec.AppendGzipFrame(m.gz[:0], m.body)
		m.hub.stats.GzipEncodings.Add(1)
		m.hub.out.add(int64(cap(m.gz)))
	})
	return m.gz
}

// retainBuilder takes a reference for a new outbox entry.
func (m *message) retainBuilder() {
	m.builders.Add(1)
	m.refs.Add(1)
}

// doneBuilding gives up a builder hold and its reference. After the last
// builder, variants no queue holds are dropped.
func (m *message) doneBuilding() {
	if m.builders.Add(-1) == 0 && m.refs.Load() > 1 {
		m.trim()
	}
	m.release()
}

// retainQueued takes a reference for a queued item of variant v.
func (m *message) retainQueued(v int) {
	m.queued[v].Add(1)
	m.refs.Add(1)
}

// releaseQueued gives up a queued item's reference.
func (m *message) releaseQueued(v int) {
	if m.queued[v].Add(-1) == 0 && m.builders.Load() == 0 && m.refs.Load() > 1 {
		m.trim()
	}
	m.release()
}

// trim drops the variants no one can use any more. It runs only while the
// message stays alive (some other holder remains), so the common case —
// everything written at once — keeps its buffers for the pool.
func (m *message) trim() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.builders.Load() != 0 {
		return
	}
	if m.text != nil && m.queued[varText].Load() == 0 {
		m.hub.out.add(-int64(cap(m.text)))
		m.text, m.body = nil, nil
	}
	if m.gz != nil && m.queued[varGzip].Load() == 0 {
		m.hub.out.add(-int64(cap(m.gz)))
		m.gz = nil
	}
}

func (m *message) release() {
	switch n := m.refs.Add(-1); {
	case n > 0:
		return
	case n < 0:
		panic("session: message released too often")
	}
	m.mu.Lock()
	m.hub.out.add(-messageCost - int64(cap(m.text)+cap(m.gz)))
	if cap(m.text) > maxPooledFrame {
		m.text = nil
	}
	if cap(m.gz) > maxPooledFrame {
		m.gz = nil
	}
	m.text, m.gz, m.body = m.text[:0], m.gz[:0], nil
	m.gzOnce = sync.Once{}
	m.room = ""
	m.at = time.Time{}
	m.hub = nil
	m.mu.Unlock()
	messages.Put(m)
}
