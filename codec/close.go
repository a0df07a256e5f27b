package codec

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Close status codes of RFC 6455 section 7.4.1 that wsd sends. The codes of
// wsd's own (4000-4999) are package session's.
const (
	CloseNormal          uint16 = 1000
	CloseGoingAway       uint16 = 1001
	CloseProtocolError   uint16 = 1002
	CloseUnsupportedData uint16 = 1003
	CloseNoStatus        uint16 = 1005 // never sent: means "the peer sent no code"
	CloseInvalidPayload  uint16 = 1007
	ClosePolicyViolation uint16 = 1008
	CloseTooBig          uint16 = 1009
	CloseInternalError   uint16 = 1011
	CloseTryAgainLater   uint16 = 1013
)

// CloseError is a protocol failure: the connection must be closed with Code.
type CloseError struct {
	Code   uint16
	Reason string
}

func (e *CloseError) Error() string { return fmt.Sprintf("websocket close %d: %s", e.Code, e.Reason) }

// The protocol failures Stream, ParseClose and Gunzip report: what RFC 6455
// and RFC 7692, or the codec's own limits on what it parses, decide. They
// are shared values so the read path never allocates an error. The closes
// wsd decides by policy (limits, budgets, timeouts, shutdown) are package
// session's.
var (
	ErrUnmasked        = &CloseError{CloseProtocolError, "client frame not masked"}
	ErrReservedBits    = &CloseError{CloseProtocolError, "reserved bits set"}
	ErrReservedOpcode  = &CloseError{CloseProtocolError, "reserved opcode"}
	ErrControlTooLong  = &CloseError{CloseProtocolError, "control frame payload over 125 bytes"}
	ErrControlFragment = &CloseError{CloseProtocolError, "fragmented control frame"}
	ErrBadLength       = &CloseError{CloseProtocolError, "invalid payload length"}
	ErrUnexpectedCont  = &CloseError{CloseProtocolError, "continuation frame without a message"}
	ErrExpectedCont    = &CloseError{CloseProtocolError, "new message inside a fragmented message"}
	ErrBadClosePayload = &CloseError{CloseProtocolError, "close payload of 1 byte"}
	ErrBadCloseCode    = &CloseError{CloseProtocolError, "invalid close code"}
	ErrInvalidUTF8     = &CloseError{CloseInvalidPayload, "invalid UTF-8"}
	ErrMessageTooBig   = &CloseError{CloseTooBig, "message too big"}
	ErrNotGzip         = &CloseError{CloseUnsupportedData, "binary message is not gzip"}
	ErrInflatedTooBig  = &CloseError{CloseTooBig, "inflated message too big"}
	// permessage-deflate (RFC 7692).
	ErrCompressedFragment = &CloseError{CloseProtocolError, "RSV1 on a continuation or control frame"}
	ErrBadDeflate         = &CloseError{CloseInvalidPayload, "invalid compressed data"}
	ErrDeflateTooBig      = &CloseError{CloseTooBig, "inflated message too big"}
)

// ErrInflateRatio is the failure of a compressed message that inflates past
// the bound its Handler sets (InflateLimiter): codec enforces the bound
// while inflating, the session decides it (its -inflate-ratio).
var ErrInflateRatio = &CloseError{CloseTooBig, "compressed message inflates past the allowed ratio"}

// validCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 section 7.4). 1004-1006 and 1015 are reserved, 0-999 and
// 1016-2999 are not assigned and must not be sent.
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// ParseClose validates a received close payload and returns its code
// (CloseNoStatus for an empty payload).
func ParseClose(p []byte) (code uint16, reason []byte, err *CloseError) {
	switch {
	case len(p) == 0:
		return CloseNoStatus, nil, nil
	case len(p) == 1:
		return 0, nil, ErrBadClosePayload
	}
	code = binary.BigEndian.Uint16(p)
	if !validCloseCode(code) {
		return 0, nil, ErrBadCloseCode
	}
	reason = p[2:]
	if !utf8.Valid(reason) {
		return 0, nil, ErrInvalidUTF8
	}
	return code, reason, nil
}
