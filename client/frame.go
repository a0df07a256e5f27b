package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"unicode/utf8"

	"github.com/wsd-chat/wsd/chat"
)

// Frame is one server frame of chat protocol v1 after DecodeFrame: the
// union of every envelope's fields; a field the frame's type does not carry
// is its zero value.
type Frame struct {
	Type      string
	Room      string
	Seq       uint64
	Epoch     string
	TS        int64
	From      string
	ID        string
	Text      string
	Recovered bool
	Count     int
	Members   []string
	Truncated bool
	Joined    []string
	Left      []string
	Code      Code
	Reason    string
	Duplicate bool
}

// Frame types the client knows. A frame of another type decodes (later
// versions may add types) and is ignored.
const (
	TypeMessage  = "message"
	TypeAck      = "ack"
	TypeJoined   = "joined"
	TypeLeft     = "left"
	TypeMembers  = "members"
	TypePresence = "presence"
	TypeError    = "error"
	TypeDirect   = "direct"
)

// maxEpochLen and maxIDLen are the protocol's bounds (chat's).
const (
	maxEpochLen = chat.MaxEpochLen
	maxIDLen    = chat.MaxIDLen
)

// field bits, for the presence checks.
const (
	fType = 1 << iota
	fRoom
	fSeq
	fEpoch
	fTS
	fFrom
	fID
	fText
	fRecovered
	fCount
	fMembers
	fTruncated
	fJoined
	fLeft
	fCode
	fReason
	fDuplicate
)

// required are the fields each known type must carry (docs/protocol.md,
// "Envelopes").
var required = map[string]int{
	TypeMessage:  fRoom | fSeq | fEpoch | fTS | fFrom | fText,
	TypeAck:      fID | fRoom | fSeq | fEpoch | fTS,
	TypeJoined:   fRoom | fSeq | fEpoch | fRecovered | fCount,
	TypeLeft:     fRoom,
	TypeMembers:  fRoom | fCount | fMembers,
	TypePresence: fRoom | fCount,
	TypeError:    fCode | fReason,
	TypeDirect:   fTS | fFrom | fText,
}

// DecodeFrame decodes one server frame's JSON text strictly: exactly one
// JSON object in valid UTF-8, no key twice, no null for a known field,
// every known field of the right JSON type and in range (seq a
// non-negative integer, a room name by the handshake's rule, an epoch of
// 1–32 bytes), and every field the type needs present. Unknown keys are
// ignored, as the protocol asks. Any violation is a *ProtocolError; it
// never panics, whatever p holds (FuzzDecodeFrame).
func DecodeFrame(p []byte) (Frame, error) {
	var f Frame
	if !utf8.Valid(p) {
		return f, protoErr(p, "frame is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return f, protoErr(p, "frame is not a JSON object")
	}
	seen := 0
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return f, protoErr(p, "bad JSON: %v", err)
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return f, protoErr(p, "bad JSON value for %q: %v", key, err)
		}
		bit, dst := f.field(key)
		if bit == 0 {
			continue // a field of a later version
		}
		if seen&bit != 0 {
			return f, protoErr(p, "key %q twice", key)
		}
		seen |= bit
		if string(raw) == "null" {
			return f, protoErr(p, "%q is null", key)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return f, protoErr(p, "%q: %v", key, err)
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return f, protoErr(p, "bad JSON: unterminated object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return f, protoErr(p, "data after the object")
	}
	if seen&fType == 0 || f.Type == "" {
		return f, protoErr(p, "frame has no type")
	}
	need, known := required[f.Type]
	if !known {
		return f, nil
	}
	if missing := need &^ seen; missing != 0 {
		return f, protoErr(p, "%s frame lacks %s", f.Type, fieldName(missing))
	}
	switch {
	case seen&fRoom != 0 && f.Room != "" && !chat.ValidRoom(f.Room):
		return f, protoErr(p, "bad room name")
	case seen&fEpoch != 0 && f.Epoch == "" && !(f.Type == "joined" && f.Seq == 0):
		// A room a history store has never had a message in has no epoch
		// yet: its first message starts one (protocol.md).
		return f, protoErr(p, "epoch of 0 bytes")
	case seen&fEpoch != 0 && len(f.Epoch) > maxEpochLen:
		return f, protoErr(p, "epoch of %d bytes", len(f.Epoch))
	case seen&fID != 0 && (f.ID == "" || len(f.ID) > maxIDLen):
		return f, protoErr(p, "id of %d bytes", len(f.ID))
	case seen&fCount != 0 && f.Count < 0:
		return f, protoErr(p, "negative count")
	case (f.Type == TypeMessage || f.Type == TypeAck) && f.Seq == 0:
		return f, protoErr(p, "%s with seq 0", f.Type)
	case f.Type == TypeMembers && len(f.Members) > f.Count:
		return f, protoErr(p, "members lists %d keys, count %d", len(f.Members), f.Count)
	}
	return f, nil
}

// field maps a key to its bit and where its value goes; 0 for a key the
// client does not know.
func (f *Frame) field(key string) (int, any) {
	switch key {
	case "type":
		return fType, &f.Type
	case "room":
		return fRoom, &f.Room
	case "seq":
		return fSeq, &f.Seq
	case "epoch":
		return fEpoch, &f.Epoch
	case "ts":
		return fTS, &f.TS
	case "from":
		return fFrom, &f.From
	case "id":
		return fID, &f.ID
	case "text":
		return fText, &f.Text
	case "recovered":
		return fRecovered, &f.Recovered
	case "count":
		return fCount, &f.Count
	case "members":
		return fMembers, &f.Members
	case "truncated":
		return fTruncated, &f.Truncated
	case "joined":
		return fJoined, &f.Joined
	case "left":
		return fLeft, &f.Left
	case "code":
		return fCode, &f.Code
	case "reason":
		return fReason, &f.Reason
	case "duplicate":
		return fDuplicate, &f.Duplicate
	}
	return 0, nil
}

var fieldNames = []string{"type", "room", "seq", "epoch", "ts", "from", "id", "text", "recovered",
	"count", "members", "truncated", "joined", "left", "code", "reason", "duplicate"}

// fieldName names the lowest field bit set in bits.
func fieldName(bits int) string {
	for i, n := range fieldNames {
		if bits&(1<<i) != 0 {
			return `"` + n + `"`
		}
	}
	return "a field"
}
