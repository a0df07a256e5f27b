package client

import (
	"errors"
	"fmt"

	"github.com/wsd-chat/wsd/chat"
)

// Code is the number of a server's error frame (docs/protocol.md,
// "Parsing rules and error codes"). It is chat.Code, so client and server
// share one table of codes and names.
type Code = chat.Code

// The protocol's error codes, as the server sends them.
const (
	CodeMalformed    = chat.CodeMalformed
	CodeUnknownType  = chat.CodeUnknownType
	CodeMissingField = chat.CodeMissingField
	CodeBadField     = chat.CodeBadField
	CodeBadRoom      = chat.CodeBadRoom
	CodeTooLong      = chat.CodeTooLong
	CodeForbidden    = chat.CodeForbidden
	CodeTooManyRooms = chat.CodeTooManyRooms
	CodeNotMember    = chat.CodeNotMember
	CodeRateLimited  = chat.CodeRateLimited
	CodeUnavailable  = chat.CodeUnavailable
)

// ServerError is the server's refusal of a command: an error frame's code
// and reason, and the id of the command it answers. The connection stays
// open. errors.Is(err, &ServerError{Code: CodeNotMember}) matches any
// refusal with that code.
type ServerError struct {
	Code   Code
	Reason string
	ID     string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("wsd refused the command: %d %s: %s", uint16(e.Code), e.Code, e.Reason)
}

// Is matches a *ServerError of the same code.
func (e *ServerError) Is(target error) bool {
	t, ok := target.(*ServerError)
	return ok && t.Code == e.Code
}

// ProtocolError is a server frame the client cannot accept: not JSON, a
// wrong type, a missing field, a joined that contradicts what was asked,
// a frame over Options.MaxFrame. The client drops the connection and
// reconnects (the frame is never acted upon); the error reaches the app in
// the StateChange that reports the drop.
type ProtocolError struct {
	Reason string
	// Frame is the start of the offending frame (at most 200 bytes).
	Frame []byte
}

func (e *ProtocolError) Error() string {
	if len(e.Frame) == 0 {
		return "wsd protocol violation: " + e.Reason
	}
	return fmt.Sprintf("wsd protocol violation: %s: %q", e.Reason, e.Frame)
}

func protoErr(p []byte, format string, args ...any) *ProtocolError {
	if len(p) > 200 {
		p = p[:200]
	}
	return &ProtocolError{Reason: fmt.Sprintf(format, args...), Frame: append([]byte(nil), p...)}
}

// SequenceError is a message whose seq is at or below the last one the
// client delivered for the room (a duplicate, or seq going backwards). The
// message is dropped, never delivered twice; the connection stays. It
// reaches the app as a Warning.
type SequenceError struct {
	Room  string
	Epoch string
	Seq   uint64 // the message's
	Last  uint64 // the last delivered
}

func (e *SequenceError) Error() string {
	return fmt.Sprintf("room %q: message seq %d at or below the last delivered %d (dropped)", e.Room, e.Seq, e.Last)
}

// CloseError is the close frame that ended a connection: its code and
// reason (docs/protocol.md, "Close codes").
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("wsd closed the connection: %d %s", e.Code, e.Reason)
}

// Is makes errors.Is(err, ErrReplaced) true for a close with 4001.
func (e *CloseError) Is(target error) bool { return target == ErrReplaced && e.Code == CloseReplaced }

// HandshakeError is a refusal before the upgrade: the HTTP status and the
// one-line reason wsd gives in the body (docs/protocol.md, "Refusals").
type HandshakeError struct {
	Status int
	Reason string
	Err    error // what the WebSocket library said
}

func (e *HandshakeError) Error() string {
	if e.Status == 0 {
		return "wsd handshake: " + e.Err.Error()
	}
	return fmt.Sprintf("wsd refused the handshake: %d %s", e.Status, e.Reason)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// permanent reports whether a refusal will not change by retrying: the
// request itself is wrong (bad key, token, room, path). 429 and 503 (and
// a network error, Status 0) are worth retrying.
func (e *HandshakeError) permanent() bool {
	switch e.Status {
	case 0, 429, 500, 502, 503, 504:
		return false
	}
	return true
}

// CloseReplaced is the close code of a connection replaced by a newer one
// with the same key. The client never reconnects after it.
const CloseReplaced = 4001

var (
	// ErrReplaced: another connection with the same key took over (close
	// 4001). The client is closed for good.
	ErrReplaced = errors.New("replaced by a newer connection with the same key (4001)")
	// ErrClosed: the client was closed (Close, or a permanent failure).
	ErrClosed = errors.New("client closed")
	// ErrTooManyPending: Options.MaxPending commands already wait for an
	// answer.
	ErrTooManyPending = errors.New("too many commands waiting for an answer")
	// ErrNotJoined: Send or Members for a room the client has not joined.
	ErrNotJoined = errors.New("room not joined")
	// errSlowApp ends a connection whose app did not drain Events.
	errSlowApp = errors.New("event queue full: the app is not reading Events; reconnecting to resume from the last delivered seq")
)
