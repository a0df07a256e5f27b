package cluster

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"github.com/wsd-chat/wsd/chat"
	"github.com/wsd-chat/wsd/codec"
)

// wireVersion is the wire format version this box writes and accepts.
const wireVersion = 1

// msgKind says what a message is.
type msgKind byte

// Message kinds.
const (
	kindRoom     msgKind = 1 // broadcast to Target, a room
	kindAll      msgKind = 2 // broadcast to every room
	kindDirect   msgKind = 3 // text for the connection holding key Target
	kindClaim    msgKind = 4 // a new connection holds key Target with Stamp
	kindHold     msgKind = 5 // answer to a lower claim: an older holder with Stamp
	kindAnnounce msgKind = 6 // after a reconnect: still holding key Target with Stamp
	// Presence (presence_wire.go): on the room's presence subject, and on
	// the boxes subject for the last two.
	kindPresence    msgKind = 7  // the sender's members of room Target changed; Seq is the room's change number
	kindPresenceAsk msgKind = 8  // asks the box named in the text (any, if none) for its whole set of room Target
	kindLease       msgKind = 9  // the sender is alive: renew its lease (text: the lease)
	kindGone        msgKind = 10 // the sender is going: forget its members
)

func (k msgKind) String() string {
	switch k {
	case kindRoom:
		return "room"
	case kindAll:
		return "all"
	case kindDirect:
		return "direct"
	case kindClaim:
		return "claim"
	case kindHold:
		return "hold"
	case kindAnnounce:
		return "announce"
	case kindPresence:
		return "presence"
	case kindPresenceAsk:
		return "presence_ask"
	case kindLease:
		return "lease"
	case kindGone:
		return "gone"
	}
	return "unknown"
}

func (k msgKind) isKey() bool { return k >= kindClaim && k <= kindAnnounce }

// isPresence reports whether k is one of presence's kinds, whose text is
// binary (presence_wire.go).
func (k msgKind) isPresence() bool { return k >= kindPresence && k <= kindGone }

// flagGzip marks a message with a section between its target and its
// text: 4 bytes of length, then that many bytes. Earlier boxes put the
// gzip'd binary frame of the text there; no box sends one now, and a box
// skips one it receives (the frame could say something else than the
// text). The section now carries the origin extension (below) instead:
// a box of the release before it (wire version 1 as well) accepts the
// flag and its section, and skips the section whatever it holds, so the
// extension reaches it as a plain message of the text.
const flagGzip = 1

// The origin extension: the section of a room message, when it begins
// with extOrigin, names the message's sender (wsd 1 builds it for every
// room message with a sender):
//
//	tag    1 byte  (extOrigin: a legacy gzip frame begins with 0x82, a
//	               FIN binary frame's first byte, never with it)
//	from   2 bytes length + bytes (0..maxFrom): the sender's key
//	id     1 byte length + bytes (0..maxID): the client id of its send
//	...    later versions append fields: the rest is ignored
//
// The MAC of a signed message covers the section like every other byte.
const extOrigin = 0x01

// Limits of the origin extension: a key as the handshake caps specialKey
// (codec), a client id as chat.MaxIDLen.
const (
	maxFrom = 256
	maxID   = chat.MaxIDLen
)

// flagMAC marks a signed message: its last macSize bytes are its MAC
// (buskey.go).
const flagMAC = 2

// Limits of the header fields.
const (
	maxBoxID  = 64
	maxTarget = 4096 // a key or a room name
)

// message is one decoded bus message.
//
// Layout (integers big-endian):
//
//	version   1 byte  (wireVersion)
//	kind      1 byte
//	flags     1 byte  (bit 0: a section follows the target; bit 1: signed)
//	box id    1 byte length + bytes (1..64)
//	seq       8 bytes: the sender box's message counter
//	stamp     8 bytes: hybrid logical clock (claim.go), key kinds only
//	target    2 bytes length + bytes: room or key
//	section   4 bytes length + bytes, if flagged: the origin extension
//	          of a room message, or (earlier boxes) a gzip frame
//	text      the rest: UTF-8 payload (room, all, direct)
//	mac       16 bytes, if signed: see buskey.go
type message struct {
	Kind   msgKind
	BoxID  string
	Seq    uint64
	Stamp  uint64
	Target string
	// From and ID are the origin extension: the sender's key and its
	// client id (ID aliases the input). Room messages only.
	From string
	ID   []byte
	// Gzip is a legacy section (not the origin extension), skipped on
	// receipt; aliases the input. Append writes it instead of the origin
	// when set: tests play earlier boxes with it.
	Gzip []byte
	Text []byte // aliases the input
}

// hasOrigin reports whether Append writes the origin extension.
func (m *message) hasOrigin() bool { return m.Gzip == nil && (m.From != "" || len(m.ID) > 0) }

// originSize is the origin extension's length, without its 4-byte length.
func (m *message) originSize() int { return 1 + 2 + len(m.From) + 1 + len(m.ID) }

// Append encodes m after dst. The caller keeps From within maxFrom and ID
// within maxID (Forward does), so what it writes decodes.
func (m *message) Append(dst []byte) []byte {
	flags := byte(0)
	if m.Gzip != nil || m.hasOrigin() {
		flags |= flagGzip
	}
	dst = append(dst, wireVersion, byte(m.Kind), flags, byte(len(m.BoxID)))
	dst = append(dst, m.BoxID...)
	dst = binary.BigEndian.AppendUint64(dst, m.Seq)
	if m.Kind.isKey() {
		dst = binary.BigEndian.AppendUint64(dst, m.Stamp)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Target)))
	dst = append(dst, m.Target...)
	switch {
	case m.Gzip != nil:
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(m.Gzip)))
		dst = append(dst, m.Gzip...)
	case m.hasOrigin():
		dst = binary.BigEndian.AppendUint32(dst, uint32(m.originSize()))
		dst = append(dst, extOrigin)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.From)))
		dst = append(dst, m.From...)
		dst = append(dst, byte(len(m.ID)))
		dst = append(dst, m.ID...)
	}
	return append(dst, m.Text...)
}

// Size is the encoded length of m.
func (m *message) Size() int {
	n := 4 + len(m.BoxID) + 8 + 2 + len(m.Target) + len(m.Text)
	if m.Kind.isKey() {
		n += 8
	}
	switch {
	case m.Gzip != nil:
		n += 4 + len(m.Gzip)
	case m.hasOrigin():
		n += 4 + m.originSize()
	}
	return n
}

// Decoding errors, each a drop reason in the metrics.
var (
	errVersion   = errors.New("unknown wire version")
	errMalformed = errors.New("malformed message")
	errTooLarge  = errors.New("text over -max-message")
	errInvalid   = errors.New("invalid field")
)

// decode parses p into m; m's slices alias p. maxText bounds the text.
func decode(p []byte, maxText int, m *message) error {
	if len(p) < 1 {
		return errMalformed
	}
	if p[0] != wireVersion {
		return errVersion
	}
	if len(p) < 4 {
		return errMalformed
	}
	*m = message{Kind: msgKind(p[1])}
	flags := p[2]
	if m.Kind < kindRoom || m.Kind > kindGone || flags&^(flagGzip|flagMAC) != 0 {
		return errMalformed
	}
	if flags&flagMAC != 0 {
		if len(p) < 4+macSize {
			return errMalformed
		}
		p = p[:len(p)-macSize] // checked, if this box has keys, before decode
	}
	n := int(p[3])
	p = p[4:]
	if n == 0 || n > maxBoxID || len(p) < n+8 {
		return errMalformed
	}
	m.BoxID = string(p[:n])
	m.Seq = binary.BigEndian.Uint64(p[n:])
	p = p[n+8:]
	if m.Kind.isKey() {
		if len(p) < 8 {
			return errMalformed
		}
		m.Stamp = binary.BigEndian.Uint64(p)
		p = p[8:]
	}
	if len(p) < 2 {
		return errMalformed
	}
	n = int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if n > maxTarget || len(p) < n {
		return errMalformed
	}
	m.Target = string(p[:n])
	p = p[n:]
	if flags&flagGzip != 0 {
		if len(p) < 4 {
			return errMalformed
		}
		g := binary.BigEndian.Uint32(p)
		p = p[4:]
		if uint64(g) > uint64(len(p)) {
			return errMalformed
		}
		sec := p[:g]
		p = p[g:]
		if len(sec) > 0 && sec[0] == extOrigin {
			if m.Kind != kindRoom {
				return errInvalid
			}
			if err := m.decodeOrigin(sec[1:]); err != nil {
				return err
			}
		} else {
			m.Gzip = sec
		}
	}
	m.Text = p
	switch m.Kind {
	case kindRoom, kindPresence, kindPresenceAsk:
		if m.Target != "" && !codec.ValidRoom([]byte(m.Target)) {
			return errInvalid
		}
	case kindAll, kindLease, kindGone:
		if m.Target != "" {
			return errInvalid
		}
	default:
		if m.Target == "" {
			return errInvalid
		}
	}
	if m.Kind.isKey() {
		if len(m.Text) != 0 || m.Gzip != nil || m.Stamp == 0 {
			return errInvalid
		}
		return nil
	}
	if m.Kind.isPresence() {
		if m.Gzip != nil {
			return errInvalid
		}
		return nil // its text is parsed by its kind (presence_wire.go)
	}
	if len(m.Text) > maxText {
		return errTooLarge
	}
	if !utf8.Valid(m.Text) {
		return errInvalid
	}
	return nil
}

// decodeOrigin reads the origin extension's fields from p (after its
// tag); bytes past them are a later version's fields, ignored.
func (m *message) decodeOrigin(p []byte) error {
	if len(p) < 2 {
		return errMalformed
	}
	n := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if n > maxFrom {
		return errInvalid
	}
	if len(p) < n+1 {
		return errMalformed
	}
	m.From = string(p[:n])
	p = p[n:]
	n = int(p[0])
	p = p[1:]
	if n > maxID {
		return errInvalid
	}
	if len(p) < n {
		return errMalformed
	}
	if n > 0 {
		m.ID = p[:n]
	}
	if !utf8.Valid(m.Text) {
		return errInvalid
	}
	return nil
}
