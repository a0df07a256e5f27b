package cluster

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"unicode/utf8"

	"github.com/wsd-chat/wsd/codec"
)

// Version is the wire format version this box writes and accepts.
const Version = 1

// Kind says what a message is.
type Kind byte

// Message kinds.
const (
	KindRoom     Kind = 1 // broadcast to Target, a room
	KindAll      Kind = 2 // broadcast to every room
	KindDirect   Kind = 3 // text for the connection holding key Target
	KindClaim    Kind = 4 // a new connection holds key Target with Stamp
	KindHold     Kind = 5 // answer to a lower claim: an older holder with Stamp
	KindAnnounce Kind = 6 // after a reconnect: still holding key Target with Stamp
)

func (k Kind) String() string {
	switch k {
	case KindRoom:
		return "room"
	case KindAll:
		return "all"
	case KindDirect:
		return "direct"
	case KindClaim:
		return "claim"
	case KindHold:
		return "hold"
	case KindAnnounce:
		return "announce"
	}
	return "unknown"
}

func (k Kind) isKey() bool { return k >= KindClaim && k <= KindAnnounce }

// flagGzip marks a message that carries the gzip'd binary frame of its text.
const flagGzip = 1

// Limits of the header fields.
const (
	MaxBoxID  = 64
	MaxTarget = 4096 // a key or a room name
)

// Message is one decoded bus message.
//
// Layout (integers big-endian):
//
//	version   1 byte  (Version)
//	kind      1 byte
//	flags     1 byte  (bit 0: a gzip frame follows the target)
//	box id    1 byte length + bytes (1..64)
//	seq       8 bytes: the sender box's message counter
//	stamp     8 bytes: Lamport counter, key kinds only
//	target    2 bytes length + bytes: room or key
//	gzip      4 bytes length + the complete binary WebSocket frame, if flagged
//	text      the rest: UTF-8 payload (room, all, direct)
type Message struct {
	Kind   Kind
	BoxID  string
	Seq    uint64
	Stamp  uint64
	Target string
	Gzip   []byte // the gzip'd binary frame, aliases the input
	Text   []byte // aliases the input
}

// Append encodes m after dst.
func (m *Message) Append(dst []byte) []byte {
	flags := byte(0)
	if m.Gzip != nil {
		flags |= flagGzip
	}
	dst = append(dst, Version, byte(m.Kind), flags, byte(len(m.BoxID)))
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
func (m *Message) Size() int {
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
	ErrVersion   = errors.New("unknown wire version")
	ErrMalformed = errors.New("malformed message")
	ErrTooLarge  = errors.New("text over -max-message")
	ErrInvalid   = errors.New("invalid field")
)

// Decode parses p into m; m's slices alias p. maxText bounds the text.
func Decode(p []byte, maxText int, m *Message) error {
	if len(p) < 1 {
		return ErrMalformed
	}
	if p[0] != Version {
		return ErrVersion
	}
	if len(p) < 4 {
		return ErrMalformed
	}
	*m = Message{Kind: Kind(p[1])}
	flags := p[2]
	if m.Kind < KindRoom || m.Kind > KindAnnounce || flags&^flagGzip != 0 {
		return ErrMalformed
	}
	n := int(p[3])
	p = p[4:]
	if n == 0 || n > MaxBoxID || len(p) < n+8 {
		return ErrMalformed
	}
	m.BoxID = string(p[:n])
	m.Seq = binary.BigEndian.Uint64(p[n:])
	p = p[n+8:]
	if m.Kind.isKey() {
		if len(p) < 8 {
			return ErrMalformed
		}
		m.Stamp = binary.BigEndian.Uint64(p)
		p = p[8:]
	}
	if len(p) < 2 {
		return ErrMalformed
	}
	n = int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if n > MaxTarget || len(p) < n {
		return ErrMalformed
	}
	m.Target = string(p[:n])
	p = p[n:]
	if flags&flagGzip != 0 {
		if len(p) < 4 {
			return ErrMalformed
		}
		g := binary.BigEndian.Uint32(p)
		p = p[4:]
		if uint64(g) > uint64(len(p)) {
			return ErrMalformed
		}
		m.Gzip = p[:g]
		p = p[g:]
	}
	m.Text = p
	switch m.Kind {
	case KindRoom:
		if m.Target != "" && !codec.ValidRoom([]byte(m.Target)) {
			return ErrInvalid
		}
	case KindAll:
		if m.Target != "" {
			return ErrInvalid
		}
	default:
		if m.Target == "" {
			return ErrInvalid
		}
	}
	if m.Kind.isKey() {
		if len(m.Text) != 0 || m.Gzip != nil || m.Stamp == 0 {
			return ErrInvalid
		}
		return nil
	}
	if len(m.Text) > maxText {
		return ErrTooLarge
	}
	if !utf8.Valid(m.Text) {
		return ErrInvalid
	}
	if m.Gzip != nil && !gzipFrameMatches(m.Gzip, m.Text) {
		return ErrInvalid
	}
	return nil
}

// gzipFrameMatches checks a carried gzip frame without inflating it: one
// final binary frame, unmasked, exactly as long as its header says, holding
// a gzip member whose trailer (CRC-32 and length of the original) is the
// text's. A frame that passes is the gzip of this text unless someone
// forged a deflate stream on purpose.
func gzipFrameMatches(frame, text []byte) bool {
	if len(frame) < 2 || frame[0] != 0x80|byte(codec.OpBinary) || frame[1]&0x80 != 0 {
		return false // not one final, unmasked, uncompressed binary frame
	}
	size, n := 2, uint64(frame[1]&0x7f)
	switch n {
	case 126:
		if len(frame) < 4 {
			return false
		}
		size, n = 4, uint64(binary.BigEndian.Uint16(frame[2:]))
	case 127:
		if len(frame) < 10 {
			return false
		}
		size, n = 10, binary.BigEndian.Uint64(frame[2:])
	}
	if n != uint64(len(frame)-size) {
		return false
	}
	body := frame[size:]
	if len(body) < 18 || body[0] != 0x1f || body[1] != 0x8b || body[2] != 8 {
		return false
	}
	t := body[len(body)-8:]
	return binary.LittleEndian.Uint32(t) == crc32.ChecksumIEEE(text) &&
		binary.LittleEndian.Uint32(t[4:]) == uint32(len(text))
}
