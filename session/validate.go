package session

import "github.com/wsd-chat/wsd/codec"

// ValidRoom reports whether name is a room a connection could join, so that
// callers outside the handshake (the admin publish API) accept exactly the
// rooms the table can hold without knowing the wire rules behind them.
func ValidRoom(name string) bool { return codec.ValidRoom([]byte(name)) }
