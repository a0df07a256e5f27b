package session

import "github.com/wsd-chat/wsd/codec"

// Disconnect closes the connection holding key with code and reason, after
// the broadcasts already accepted for it: a backend that publishes "you
// are logged out" and then disconnects gets them in that order. A zero
// code is closeDisconnected (4002), an empty reason "disconnected by the
// server"; the caller keeps code within 4000-4999 and reason within 123
// bytes of UTF-8. It reports whether key was connected.
func (h *Hub) Disconnect(key string, code uint16, reason string) bool {
	c := h.table.lookup(key)
	if c == nil {
		return false
	}
	err := errDisconnected
	if code != 0 || reason != "" {
		err = &codec.CloseError{Code: code, Reason: reason}
		if code == 0 {
			err.Code = errDisconnected.Code
		}
		if reason == "" {
			err.Reason = errDisconnected.Reason
		}
	}
	h.log.Info("disconnecting", "key", key, "code", err.Code)
	h.closeAfterFanout(c, err)
	return true
}
