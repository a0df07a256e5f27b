package session

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsd-chat/wsd/codec"
)

// Message is an encoded outgoing frame shared by every queue that holds it:
// a broadcast's text frame and, built at most once and only if some member
// wants it, its gzip'd binary frame. Control frames and handshake responses
// are Messages too, with a single holder. The last holder to release it
// returns it, buffers and all, to a pool.
type Message struct {
	refs   atomic.Int32
	plain  []byte // the text frame (or control frame, or HTTP response)
	gz     []byte // the gzip'd binary frame, once built
	gzOnce sync.Once
	text   []byte // the text payload, kept to build gz lazily
	room   string
	hub    *Hub
	static bool      // never released (shared ping frame)
	at     time.Time // when a broadcast was accepted, if Config.OnFanout is set

	// A close marker carries no frame: when the fan-out reaches it, every
	// broadcast queued before it has been handed to closeConn, which is
	// then closed with closeErr. It keeps a peer's close reply behind the
	// echo of the messages that peer sent before closing.
	closeConn *Conn
	closeErr  *codec.CloseError
}

var messages = sync.Pool{New: func() any { return new(Message) }}

// maxPooledFrame bounds the buffers a pooled Message keeps.
const maxPooledFrame = 64 << 10

// newText returns a Message holding the text frame of payload, with one
// reference owned by the caller.
func (h *Hub) newText(room string, payload []byte) *Message {
	m := messages.Get().(*Message)
	m.hub = h
	m.room = room
	m.plain = codec.AppendFrame(m.plain[:0], codec.OpText, payload)
	m.text = m.plain[len(m.plain)-len(payload):]
	m.refs.Store(1)
	return m
}

// newRaw returns a single-holder Message around bytes built by fill.
func newRaw(fill func([]byte) []byte) *Message {
	m := messages.Get().(*Message)
	m.plain = fill(m.plain[:0])
	m.refs.Store(1)
	return m
}

// frameFor returns the bytes a member receives: the gzip'd binary frame
// for gzip-capable members, the text frame for the others.
func (m *Message) frameFor(gzip bool) []byte {
	if !gzip || m.text == nil {
		return m.plain
	}
	m.gzOnce.Do(func() {
		m.gz = codec.AppendGzipFrame(m.gz[:0], m.text)
		if m.hub != nil {
			m.hub.stats.GzipEncodings.Add(1)
		}
	})
	return m.gz
}

func (m *Message) retain() { m.refs.Add(1) }

func (m *Message) release() {
	if m.static {
		return
	}
	switch n := m.refs.Add(-1); {
	case n > 0:
		return
	case n < 0:
		panic("session: Message released too often")
	}
	if cap(m.plain) > maxPooledFrame {
		m.plain = nil
	}
	if cap(m.gz) > maxPooledFrame {
		m.gz = nil
	}
	m.plain, m.gz = m.plain[:0], m.gz[:0]
	m.text = nil
	m.gzOnce = sync.Once{}
	m.room = ""
	m.at = time.Time{}
	m.hub = nil
	m.closeConn, m.closeErr = nil, nil
	messages.Put(m)
}

// pingMessage is the empty ping wsd sends to quiet connections, shared by all.
var pingMessage = &Message{plain: codec.AppendFrame(nil, codec.OpPing, nil), static: true}
