package chat

import "strconv"

// Code is the number an error frame carries: what kind of refusal it is.
// Codes are part of the wire contract (docs/protocol.md, "Chat protocol
// v1"); a client branches on the code, never on the reason text.
type Code uint16

// Codes of refused commands. 100-109 are found by ParseCommand; the others
// are decided by the server owning the rooms (session), which sends them
// with AppendError.
const (
	CodeMalformed    Code = 100 // not one JSON object: syntax, invalid UTF-8, bad escape, duplicate key, nesting
	CodeUnknownType  Code = 101 // "type" is not send, join, leave or members
	CodeMissingField Code = 102 // a field the type needs is absent
	CodeBadField     Code = 103 // a field has the wrong JSON type or value, or does not belong to the type
	CodeBadRoom      Code = 104 // "room" is not a valid room name
	CodeTooLong      Code = 105 // "id" over MaxIDLen, "text" over the message limit, "epoch" over MaxEpochLen
	CodeForbidden    Code = 110 // the connection may not use this room (JWT rooms claim, policy)
	CodeTooManyRooms Code = 111 // joining would pass the per-connection room limit
	CodeNotMember    Code = 112 // send/leave/members for a room the connection has not joined
	CodeRateLimited  Code = 113 // too many commands; the command was dropped
	CodeUnavailable  Code = 120 // the server could not do it now (history store failure, draining)
)

var codeNames = map[Code]string{
	CodeMalformed:    "malformed",
	CodeUnknownType:  "unknown_type",
	CodeMissingField: "missing_field",
	CodeBadField:     "bad_field",
	CodeBadRoom:      "bad_room",
	CodeTooLong:      "too_long",
	CodeForbidden:    "forbidden",
	CodeTooManyRooms: "too_many_rooms",
	CodeNotMember:    "not_member",
	CodeRateLimited:  "rate_limited",
	CodeUnavailable:  "unavailable",
}

// String returns the code's documented name ("malformed", "bad_room", …).
func (c Code) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return "code " + strconv.Itoa(int(c))
}

// Error is a refused command: the code and the human-readable reason an
// error frame carries. ParseCommand returns *Error for every refusal.
type Error struct {
	Code   Code
	Reason string
}

func (e *Error) Error() string { return "chat: " + e.Code.String() + ": " + e.Reason }
