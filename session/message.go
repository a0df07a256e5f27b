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
// where the payload lives), the gzip'd binary frame for seed clients with
// support_gzip, and the permessage-deflate text frame (RSV1 set, compressed
// from an empty window) shared byte for byte by every deflate peer. A gzip
// client that also negotiated deflate gets the gzip frame: never compressed
// twice. Once no fan-out can build from it any more, a variant no
// queue holds is dropped, so a queue of gzip frames does not keep the
// (often much larger) text alive. The last holder to release the message
// returns it, buffers and all, to a pool.
//
// Every byte of it is charged to the outbound budget while it lives.
type message struct {
	refs     atomic.Int32 // every holder: builders and queued items
	builders atomic.Int32 // the creator and each outbox entry not yet fanned out
	queued   [nVariants]atomic.Int32

	mu   sync.Mutex // orders dropping a variant against the final release
	seed encoding   // the payload as seed members get it
	hub  *Hub
	at   time.Time // when the broadcast was accepted, if Config.OnFanout is set

	// A room message's v1 side (v1.go): its stamp and the envelope, for v1
	// members, built when the Ring stamps the message (its text frame;
	// gzip and deflate lazily, like the seed ones).
	seq   uint64
	epoch string // the stamp's; a Log's join filter (log.go) compares it
	order uint64 // the Hub's order of published messages (subEntry.after)
	env   encoding
	local int   // members queued for, set by Publish
	by    *Conn // the sending connection, for fanOut's hold; nil if none
}

// encoding is one payload's frames: its text frame (built with it, since
// it is where the payload lives), the gzip'd binary frame and the
// permessage-deflate frame, each built at most once and only when some
// member wants it. A message has two: the seed payload and, for v1
// members, its envelope.
type encoding struct {
	text   []byte // the text frame
	body   []byte // the payload inside text, kept to build gz and df lazily
	gz     []byte // the gzip'd binary frame, once built
	gzOnce sync.Once
	df     []byte // the permessage-deflate frame, once built
	dfOnce sync.Once
	dfUse  bool // df is a compressed frame worth sending; else deflate peers get text
	// What each frame is charged to the outbound budget: exactly what was
	// built for this message (a pooled buffer's spare capacity from an
	// earlier one is not charged, so it must not be refunded either).
	textHeld, gzHeld, dfHeld int64
}

// setText builds e's text frame of payload (copied).
func (e *encoding) setText(payload []byte) {
	e.text = codec.AppendFrame(e.text[:0], codec.OpText, payload)
	e.body = e.text[len(e.text)-len(payload):]
}

// holdBuffers charges, from now on, the capacity of the buffers a pooled
// message brought, built into or not, and returns it.
func (e *encoding) holdBuffers() int64 {
	e.textHeld, e.gzHeld, e.dfHeld = int64(cap(e.text)), int64(cap(e.gz)), int64(cap(e.df))
	return e.held()
}

func (e *encoding) held() int64 { return e.textHeld + e.gzHeld + e.dfHeld }

// pooled is b emptied for reuse, or nil if it is over maxPooledFrame.
func pooled(b []byte) []byte {
	if cap(b) > maxPooledFrame {
		return nil
	}
	return b[:0]
}

// reset empties e for the pool, keeping buffers up to maxPooledFrame; its
// charge is refunded by the caller.
func (e *encoding) reset() {
	e.text, e.gz, e.df = pooled(e.text), pooled(e.gz), pooled(e.df)
	e.body = nil
	e.gzOnce, e.dfOnce, e.dfUse = sync.Once{}, sync.Once{}, false
	e.textHeld, e.gzHeld, e.dfHeld = 0, 0, 0
}

// Frame variants of a message.
const (
	varText = iota
	varGzip
	varDeflate
	varEnv        // the v1 envelope's text frame
	varEnvGzip    // its gzip'd binary frame
	varEnvDeflate // its permessage-deflate frame
	nVariants
)

// encodingOf returns the encoding variant v is a frame of, and v's kind
// within it (varText, varGzip or varDeflate).
func (m *message) encodingOf(v int) (*encoding, int) {
	if v >= varEnv {
		return &m.env, v - varEnv
	}
	return &m.seed, v
}

var messages = sync.Pool{New: func() any { return new(message) }}

// maxPooledFrame bounds the buffers a pooled message keeps.
const maxPooledFrame = 64 << 10

// newMessage returns a broadcast of payload (to any number of rooms or one key), with one reference
// and one builder hold owned by the caller (see doneBuilding).
func (h *Hub) newMessage(payload []byte) *message {
	m := messages.Get().(*message)
	m.hub = h
	m.seed.setText(payload)
	m.refs.Store(1)
	m.builders.Store(1)
	// A pooled message brings the buffers of an earlier broadcast: their
	// capacity is held from now on, built into or not, and charged so.
	h.out.add(messageCost + m.seed.holdBuffers() + m.env.holdBuffers())
	return m
}

// recharge brings a frame's charge to its buffer's capacity after a
// build that may have grown it.
func (m *message) recharge(held *int64, buf []byte) {
	if d := int64(cap(buf)) - *held; d != 0 {
		*held += d
		m.hub.out.add(d)
	}
}

// variantFor returns the variant member c receives: of the envelope for a
// v1 member (when the message has one), else of the seed payload; gzip for
// gzip-capable members, the compressed frame for deflate members when
// compression pays and the message fits their server_max_window_bits,
// text otherwise. Deciding may compress the message (once). Only holders
// of a builder hold may call it.
func (m *message) variantFor(c *Conn) int {
	e, base := &m.seed, varText
	// A pooled message keeps an earlier envelope's (emptied) buffer: the
	// envelope exists when its frame has bytes, never by a non-nil slice.
	if c.v1 != nil && len(m.env.text) > 0 {
		e, base = &m.env, varEnv
	}
	switch {
	case c.gzip:
		return base + varGzip
	case c.deflate.Enabled && c.deflate.ServerFits(len(e.body)) && m.deflated(e):
		return base + varDeflate
	}
	return base + varText
}

// deflated compresses e's payload on first use and reports whether the
// deflate frame is worth sending: the payload is at least
// codec.DeflateMinSize bytes and compression shrank it.
func (m *message) deflated(e *encoding) bool {
	e.dfOnce.Do(func() {
		if len(e.body) < codec.DeflateMinSize {
			return
		}
		e.df, e.dfUse = codec.AppendDeflateFrame(e.df[:0], e.body)
		m.hub.stats.DeflateEncodings.Add(1)
		// Charged whether or not compression paid: the buffer is held
		// either way (trim drops it once no queue can want it).
		m.recharge(&e.dfHeld, e.df)
	})
	return e.dfUse
}

// frame returns variant v's bytes, building it on first use. Only holders
// of a builder hold may call it.
func (m *message) frame(v int) []byte {
	e, kind := m.encodingOf(v)
	switch kind {
	case varText:
		return e.text
	case varDeflate:
		m.deflated(e)
		return e.df
	}
	e.gzOnce.Do(func() {
		e.gz = codec.AppendGzipFrame(e.gz[:0], e.body)
		m.hub.stats.GzipEncodings.Add(1)
		m.recharge(&e.gzHeld, e.gz)
	})
	return e.gz
}

// useGzip makes a copy of gz, a gzip'd binary frame of the text built
// elsewhere (another box), the message's gzip variant. Only the creator may
// call it, before the message is shared.
func (m *message) useGzip(gz []byte) {
	e := &m.seed
	e.gzOnce.Do(func() {
		e.gz = append(e.gz[:0], gz...)
		m.recharge(&e.gzHeld, e.gz)
	})
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
	m.trimEncoding(&m.seed, varText)
	m.trimEncoding(&m.env, varEnv)
}

// trimEncoding drops e's frames no queue holds; base is e's first
// variant. m.mu is held.
func (m *message) trimEncoding(e *encoding, base int) {
	if e.textHeld != 0 && m.queued[base+varText].Load() == 0 {
		m.hub.out.add(-e.textHeld)
		e.text, e.body, e.textHeld = nil, nil, 0
	}
	if e.gzHeld != 0 && m.queued[base+varGzip].Load() == 0 {
		m.hub.out.add(-e.gzHeld)
		e.gz, e.gzHeld = nil, 0
	}
	if e.dfHeld != 0 && m.queued[base+varDeflate].Load() == 0 {
		m.hub.out.add(-e.dfHeld)
		e.df, e.dfHeld = nil, 0
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
	m.hub.out.add(-messageCost - m.seed.held() - m.env.held())
	m.seed.reset()
	m.env.reset()
	m.seq, m.local, m.order, m.epoch = 0, 0, 0, ""
	m.at = time.Time{}
	m.by = nil
	m.hub = nil
	m.mu.Unlock()
	messages.Put(m)
}
