package cluster

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

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
	}
	return "unknown"
}

func (k msgKind) isKey() bool { return k >= kindClaim && k <= kindAnnounce }

// flagGzip marks a message that carries the gzip'd binary frame of its
// text. Earlier boxes sent one; a box now never does, and skips one it
// receives: the frame could say something else than the text.
const flagGzip = 1

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
//	flags     1 byte  (bit 0: a gzip frame follows the target; bit 1: signed)
//	box id    1 byte length + bytes (1..64)
//	seq       8 bytes: the sender box's message counter
//	stamp     8 bytes: hybrid logical clock (claim.go), key kinds only
//	target    2 bytes length + bytes: room or key
//	gzip      4 bytes length + the complete binary WebSocket frame, if flagged
//	text      the rest: UTF-8 payload (room, all, direct)
//	mac       16 bytes, if signed: see buskey.go
type message struct {
	Kind   msgKind
	BoxID  string
	Seq    uint64
	Stamp  uint64
	Target string
	Gzip   []byte // a carried gzip frame (skipped, see flagGzip), aliases the input
	Text   []byte // aliases the input
}

// Append encodes m after dst.
func (m *message) Append(dst []byte) []byte {
	flags := byte(0)
	if m.Gzip != nil {
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
	if m.Gzip != nil {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(m.Gzip)))
		dst = append(dst, m.Gzip...)
	}
	return append(dst, m.Text...)
}

// Size is the encoded length of m.
func (m *message) Size() int {
	n := 4 + len(m.BoxID) + 8 + 2 + len(m.Target) + len(m.Text)
	if m.Kind.isKey() {
		n += 8
	}
	if m.Gzip != nil {
		n += 4 + len(m.Gzip)
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
	if m.Kind < kindRoom || m.Kind > kindAnnounce || flags&^(flagGzip|flagMAC) != 0 {
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
		m.Gzip = p[:g]
		p = p[g:]
	}
	m.Text = p
	switch m.Kind {
	case kindRoom:
		if m.Target != "" && !codec.ValidRoom([]byte(m.Target)) {
			return errInvalid
		}
	case kindAll:
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
	if len(m.Text) > maxText {
		return errTooLarge
	}
	if !utf8.Valid(m.Text) {
		return errInvalid
	}
	return nil
}
