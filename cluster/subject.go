package cluster

import (
	"strconv"
	"strings"

	"github.com/wsd-chat/wsd/chat"
)

// DefaultPrefix is the first token of every subject wsd uses.
const DefaultPrefix = "wsd"

// subjects builds the subjects under one prefix.
type subjects struct{ prefix string }

// keyToken maps a key to its subject token: the 16 hex digits of its
// 64-bit FNV-1a hash (keys are free text, subjects are not).
func keyToken(key string) string {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	var b [16]byte
	s := strconv.AppendUint(b[:0], h, 16)
	return strings.Repeat("0", 16-len(s)) + string(s)
}

func (s subjects) room(room string) string { return s.prefix + ".room." + chat.RoomToken(room) }
func (s subjects) key(key string) string   { return s.prefix + ".key." + keyToken(key) }
func (s subjects) all() string             { return s.prefix + ".all" }

// validPrefix reports whether p can lead subjects (chat.ValidSubjectPrefix).
func validPrefix(p string) bool { return chat.ValidSubjectPrefix(p) }
