package chat

// MaxRoomLen is the longest room name.
const MaxRoomLen = 64

// MaxIDLen is the longest client message id a command may carry.
const MaxIDLen = 64

// ValidRoom reports whether name is an acceptable room name: 1 to
// MaxRoomLen bytes of A-Z a-z 0-9 _ - . and :. It is the rule
// codec.ValidRoom applies to the handshake's room parameter (a test keeps
// the two equal), repeated here so package chat needs nothing of codec; a
// room a v1 command names and a room a handshake names are the same set.
func ValidRoom[T string | []byte](name T) bool {
	if len(name) == 0 || len(name) > MaxRoomLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '-', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}
