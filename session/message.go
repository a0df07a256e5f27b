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
// support_gzip. The last holder to release it returns it, buffers and all,
// to a pool.
type message struct {
	refs   atomic.Int32
	text   []byte // the text frame
	gz     []byte // the gzip'd binary frame, once built
	gzOnce sync.Once
	body   []byte // the payload inside text, kept to build gz lazily
	room   string
	stats  *Stats
	at     time.Time // when the broadcast was accepted, if Config.OnFanout is set
}

var messages = sync.Pool{New: func() any { return new(message) }}

// maxPooledFrame bounds the buffers a pooled message keeps.
const maxPooledFrame = 64 << 10

// newMessage returns a broadcast of payload to room, with one reference
// owned by the caller.
func (h *Hub) newMessage(room string, payload []byte) *message {
	m := messages.Get().(*message)
	m.stats = &h.stats
	m.room = room
	m.text = codec.AppendFrame(m.text[:0], codec.OpText, payload)
	m.body = m.text[len(m.text)-len(payload):]
	m.refs.Store(1)
	return m
}

// frameFor returns the bytes a member receives: the gzip'd binary frame
// for gzip-capable members, the text frame for the others.
func (m *message) frameFor(gzip bool) []byte {
	if !gzip {
		return m.text
	}
	m.gzOnce.Do(func() {
		m.gz = codec.AppendGzipFrame(m.gz[:0], m.body)
		m.stats.GzipEncodings.Add(1)
	})
	return m.gz
}

func (m *message) retain() { m.refs.Add(1) }

func (m *message) release() {
	switch n := m.refs.Add(-1); {
	case n > 0:
		return
	case n < 0:
		panic("session: message released too often")
	}
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
	m.stats = nil
	messages.Put(m)
}
