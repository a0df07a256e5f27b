package codec

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// OpCode is a WebSocket frame opcode (RFC 6455 section 5.2).
type OpCode byte

// Opcodes defined by RFC 6455. All others are reserved and fail the connection.
const (
	OpContinuation OpCode = 0x0
	OpText         OpCode = 0x1
	OpBinary       OpCode = 0x2
	OpClose        OpCode = 0x8
	OpPing         OpCode = 0x9
	OpPong         OpCode = 0xA
)

// IsControl reports whether op is a control opcode (close, ping, pong or reserved control).
func (op OpCode) IsControl() bool { return op&0x8 != 0 }

func (op OpCode) String() string {
	switch op {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return fmt.Sprintf("reserved(%#x)", byte(op))
}

const (
	// maxHeaderSize is the largest frame header: 2 bytes, 8 of extended length, 4 of mask.
	maxHeaderSize = 14
	// MaxControlPayload is the largest payload a control frame may carry (RFC 6455 5.5).
	MaxControlPayload = 125
	// maxServerHeader is the largest header of an unmasked (server) frame.
	maxServerHeader = 10
)

// Header is a decoded frame header.
type Header struct {
	Fin    bool
	Rsv    byte // the three RSV bits, in the low bits
	Op     OpCode
	Masked bool
	Mask   [4]byte
	Length int64
}

// headerSize returns how many bytes the header of a frame carrying n payload
// bytes takes, masked or not.
func headerSize(n int, masked bool) int {
	size := 2
	switch {
	case n > 0xFFFF:
		size += 8
	case n > 125:
		size += 2
	}
	if masked {
		size += 4
	}
	return size
}

// appendHeader appends an unmasked server frame header to dst.
func appendHeader(dst []byte, fin bool, op OpCode, n int) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	switch {
	case n <= 125:
		return append(dst, b0, byte(n))
	case n <= 0xFFFF:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, 127)
		return binary.BigEndian.AppendUint64(dst, uint64(n))
	}
}

// AppendFrame appends a complete unmasked, unfragmented frame to dst.
func AppendFrame(dst []byte, op OpCode, payload []byte) []byte {
	dst = appendHeader(dst, true, op, len(payload))
	return append(dst, payload...)
}

// AppendClose appends a close frame with code and reason. A zero code sends
// an empty close payload. The reason is cut so the payload fits 125 bytes,
// at a character boundary: a close reason must be valid UTF-8.
func AppendClose(dst []byte, code uint16, reason string) []byte {
	if code == 0 {
		return append(dst, 0x80|byte(OpClose), 0)
	}
	if n := MaxControlPayload - 2; len(reason) > n {
		// Drop the character reason[n] is part of, if it started before n.
		for i := n; i > n-utf8.UTFMax && i > 0 && !utf8.RuneStart(reason[i]); i-- {
			n = i - 1
		}
		reason = reason[:n]
	}
	dst = append(dst, 0x80|byte(OpClose), byte(2+len(reason)), byte(code>>8), byte(code))
	return append(dst, reason...)
}

// parseHeader decodes the frame header at the start of p. It returns the
// header and its size, or size 0 when p does not yet hold the whole header.
// It does not validate the header against the protocol; Stream does.
func parseHeader(p []byte) (h Header, size int) {
	if len(p) < 2 {
		return h, 0
	}
	h.Fin = p[0]&0x80 != 0
	h.Rsv = (p[0] >> 4) & 0x7
	h.Op = OpCode(p[0] & 0x0F)
	h.Masked = p[1]&0x80 != 0
	size = 2
	switch l := p[1] & 0x7F; l {
	case 126:
		if len(p) < 4 {
			return h, 0
		}
		h.Length = int64(binary.BigEndian.Uint16(p[2:4]))
		size = 4
	case 127:
		if len(p) < 10 {
			return h, 0
		}
		// The most significant bit must be 0 (RFC 6455 5.2); a negative
		// length here is rejected by Stream as a protocol error.
		h.Length = int64(binary.BigEndian.Uint64(p[2:10]))
		size = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(p) < size+4 {
			return h, 0
		}
		copy(h.Mask[:], p[size:size+4])
		size += 4
	}
	return h, size
}
