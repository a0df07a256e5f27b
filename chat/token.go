package chat

import "strings"

// RoomToken maps a room name to a NATS subject token: "." (which splits
// NATS tokens) becomes "~" and the global room "" becomes "=". Neither
// "~" nor "=" can occur in a room name, so the mapping is one to one;
// TokenRoom inverts it. Package cluster (live broadcasts) and package
// history (the durable log) share it, so a room has one token everywhere.
func RoomToken(room string) string {
	if room == "" {
		return "="
	}
	if strings.IndexByte(room, '.') < 0 {
		return room
	}
	return strings.ReplaceAll(room, ".", "~")
}

// TokenRoom is RoomToken's inverse: the room whose token tok is, and
// false when tok is no room's token (it does not follow ValidRoom once
// mapped back, or is "=" spelled otherwise).
func TokenRoom(tok string) (string, bool) {
	if tok == "=" {
		return "", true
	}
	if strings.IndexByte(tok, '.') >= 0 {
		return "", false
	}
	room := tok
	if strings.IndexByte(tok, '~') >= 0 {
		room = strings.ReplaceAll(tok, "~", ".")
	}
	if !ValidRoom(room) {
		return "", false
	}
	return room, true
}

// ValidSubjectPrefix reports whether p can lead subjects: one or more tokens of
// printable ASCII without wildcards or spaces.
func ValidSubjectPrefix(p string) bool {
	if p == "" || len(p) > 128 {
		return false
	}
	for _, tok := range strings.Split(p, ".") {
		if tok == "" {
			return false
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				return false
			}
		}
	}
	return true
}
