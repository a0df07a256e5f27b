package codec

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Close status codes wsd sends (RFC 6455 section 7.4.1, plus wsd's 4001).
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
	// CloseReplaced is sent to a connection displaced by a newer one with the
	// same specialKey.
	CloseReplaced uint16 = 4001
)

// CloseError is a protocol failure: the connection must be closed with Code.
type CloseError struct {
	Code   uint16
	Reason string
}

func (e *CloseError) Error() string { return fmt.Sprintf("websocket close %d: %s", e.Code, e.Reason) }

// The protocol failures Stream reports. They are shared values so the read
// path never allocates an error.
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
	ErrSlowConsumer    = &CloseError{ClosePolicyViolation, "slow consumer"}
	ErrRateLimited     = &CloseError{ClosePolicyViolation, "message rate limit"}
	ErrIdle            = &CloseError{CloseGoingAway, "idle timeout"}
	ErrShutdown        = &CloseError{CloseGoingAway, "server shutting down"}
	ErrReplaced        = &CloseError{CloseReplaced, "replaced"}
	ErrInternal        = &CloseError{CloseInternalError, "internal error"}
	// permessage-deflate (RFC 7692).
	ErrCompressedFragment = &CloseError{CloseProtocolError, "RSV1 on a continuation or control frame"}
	ErrBadDeflate         = &CloseError{CloseInvalidPayload, "invalid compressed data"}
	ErrDeflateTooBig      = &CloseError{CloseTooBig, "inflated message too big"}
)

// Closes for the memory budgets: the server, not the peer's protocol, is
// the reason, so a client may retry (1013) unless it was the abuser.
var (
	ErrInflateRatio    = &CloseError{CloseTooBig, "compressed message inflates past the allowed ratio"}
	ErrInboundBudget   = &CloseError{CloseTryAgainLater, "server busy: inbound memory budget spent"}
	ErrMessageTimeout  = &CloseError{ClosePolicyViolation, "message took too long to arrive"}
	ErrOutboundBudget  = &CloseError{ClosePolicyViolation, "slow consumer: outbound memory budget spent"}
	ErrByteRateLimited = &CloseError{ClosePolicyViolation, "byte rate limit"}
)

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
