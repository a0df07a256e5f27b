package session

import "github.com/wsd-chat/wsd/codec"

// CloseDisconnected is the close code of a connection a backend logged out
// (Hub.Disconnect, the admin POST /disconnect).
const CloseDisconnected uint16 = 4002

// ErrDisconnected closes a connection on a backend's request.
var ErrDisconnected = &codec.CloseError{Code: CloseDisconnected, Reason: "disconnected by the server"}

// Disconnect closes the connection holding key with err (ErrDisconnected
// if nil), after the broadcasts already accepted for it: a backend that
// publishes "you are logged out" and then disconnects gets them in that
// order. It reports whether key was connected.
func (h *Hub) Disconnect(key string, err *codec.CloseError) bool {
	if err == nil {
		err = ErrDisconnected
	}
	c := h.table.lookup(key)
	if c == nil {
		return false
	}
	h.log.Info("disconnecting", "key", key, "code", err.Code)
	h.closeAfterFanout(c, err)
	return true
}
