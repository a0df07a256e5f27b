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

	mu     sync.Mutex // orders dropping a variant against the final release
	text   []byte     // the text frame
	gz     []byte     // the gzip'd binary frame, once built
	gzOnce sync.Once
	df     []byte // the permessage-deflate frame, once built
	dfOnce sync.Once
	dfUse  bool // df is a compressed frame worth sending; else deflate peers get text
	// What each variant is charged to the outbound budget: exactly what was
	// built for this message (a pooled buffer's spare capacity from an
	// earlier one is not charged, so it must not be refunded either).
	textHeld, gzHeld, dfHeld int64
	body                     []byte // the payload inside text, kept to build gz and df lazily
	hub                      *Hub
	at                       time.Time // when the broadcast was accepted, if Config.OnFanout is set

	// A room message's v1 side (v1.go): its stamp and the envelope's
	// variants, for v1 members, each built once like the seed ones. env is
	// built when the Ring stamps the message; envGz and envDf lazily.
	seq                           uint64
	env, envBody                  []byte
	envGz, envDf                  []byte
	envGzOnce, envDfOnce          sync.Once
	envDfUse                      bool
	envHeld, envGzHeld, envDfHeld int64
	local                         int   // members queued for, set by Publish
	by                            *Conn // the sending connection, for fanOut's hold; nil if none
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

var messages = sync.Pool{New: func() any { return new(message) }}

// maxPooledFrame bounds the buffers a pooled message keeps.
const maxPooledFrame = 64 << 10

// newMessage returns a broadcast of payload (to any number of rooms or one key), with one reference
// and one builder hold owned by the caller (see doneBuilding).
func (h *Hub) newMessage(payload []byte) *message {
	m := messages.Get().(*message)
	m.hub = h
	m.text = codec.AppendFrame(m.text[:0], codec.OpText, payload)
	m.body = m.text[len(m.text)-len(payload):]
	m.refs.Store(1)
	m.builders.Store(1)
	// A pooled message brings the buffers of an earlier broadcast: their
	// capacity is held from now on, built into or not, and charged so.
	m.textHeld, m.gzHeld, m.dfHeld = int64(cap(m.text)), int64(cap(m.gz)), int64(cap(m.df))
	m.envHeld, m.envGzHeld, m.envDfHeld = int64(cap(m.env)), int64(cap(m.envGz)), int64(cap(m.envDf))
	h.out.add(messageCost + m.textHeld + m.gzHeld + m.dfHeld + m.envHeld + m.envGzHeld + m.envDfHeld)
	return m
}

// recharge brings a variant's charge to its buffer's capacity after a
// build that may have grown it.
func (m *message) recharge(held *int64, buf []byte) {
	if d := int64(cap(buf)) - *held; d != 0 {
		*held += d
		m.hub.out.add(d)
	}
}

// variantFor returns the variant member c receives: gzip for gzip-capable
// members, the compressed frame for deflate members when compression pays
// and the message fits their server_max_window_bits, text otherwise.
// Deciding may compress the message (once). Only holders of a builder
// hold may call it.
func (m *message) variantFor(c *Conn) int {
	if c.v1 != nil && m.env != nil {
		return m.envVariantFor(c)
	}
	switch {
	case c.gzip:
		return varGzip
	case c.deflate.Enabled && c.deflate.ServerFits(len(m.body)) && m.deflated():
		return varDeflate
	}
	return varText
}

// deflated compresses the payload on first use and reports whether the
// deflate frame is worth sending: the payload is at least
// codec.DeflateMinSize bytes and compression shrank it.
func (m *message) deflated() bool {
	m.dfOnce.Do(func() {
		if len(m.body) < codec.DeflateMinSize {
			return
		}
		m.df, m.dfUse = codec.AppendDeflateFrame(m.df[:0], m.body)
		m.hub.stats.DeflateEncodings.Add(1)
		// Charged whether or not compression paid: the buffer is held
		// either way (trim drops it once no queue can want it).
		m.recharge(&m.dfHeld, m.df)
	})
	return m.dfUse
}

// frame returns variant v's bytes, building it on first use. Only holders
// of a builder hold may call it.
func (m *message) frame(v int) []byte {
	switch v {
	case varEnv, varEnvGzip, varEnvDeflate:
		return m.envFrame(v)
	case varText:
		return m.text
	case varDeflate:
		m.deflated()
		return m.df
	}
	m.gzOnce.Do(func() {
		m.gz = codec.AppendGzipFrame(m.gz[:0], m.body)
		m.hub.stats.GzipEncodings.Add(1)
		m.recharge(&m.gzHeld, m.gz)
	})
	return m.gz
}

// useGzip makes a copy of gz, a gzip'd binary frame of the text built
// elsewhere (another box), the message's gzip variant. Only the creator may
// call it, before the message is shared.
func (m *message) useGzip(gz []byte) {
	m.gzOnce.Do(func() {
		m.gz = append(m.gz[:0], gz...)
		m.recharge(&m.gzHeld, m.gz)
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
	if m.textHeld != 0 && m.queued[varText].Load() == 0 {
		m.hub.out.add(-m.textHeld)
		m.text, m.body, m.textHeld = nil, nil, 0
	}
	if m.gzHeld != 0 && m.queued[varGzip].Load() == 0 {
		m.hub.out.add(-m.gzHeld)
		m.gz, m.gzHeld = nil, 0
	}
	if m.dfHeld != 0 && m.queued[varDeflate].Load() == 0 {
		m.hub.out.add(-m.dfHeld)
		m.df, m.dfHeld = nil, 0
	}
	m.trimEnv()
}

func (m *message) release() {
	switch n := m.refs.Add(-1); {
	case n > 0:
		return
	case n < 0:
		panic("session: message released too often")
	}
	m.mu.Lock()
	m.hub.out.add(-messageCost - m.textHeld - m.gzHeld - m.dfHeld - m.envHeld - m.envGzHeld - m.envDfHeld)
	if cap(m.text) > maxPooledFrame {
		m.text = nil
	}
	if cap(m.gz) > maxPooledFrame {
		m.gz = nil
	}
	if cap(m.df) > maxPooledFrame {
		m.df = nil
	}
	m.text, m.gz, m.df, m.body = m.text[:0], m.gz[:0], m.df[:0], nil
	m.gzOnce, m.dfOnce, m.dfUse = sync.Once{}, sync.Once{}, false
	m.textHeld, m.gzHeld, m.dfHeld = 0, 0, 0
	m.releaseEnv()
	m.at = time.Time{}
	m.by = nil
	m.hub = nil
	m.mu.Unlock()
	messages.Put(m)
}
