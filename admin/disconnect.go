package admin

import (
	"net/http"
	"unicode/utf8"

	"github.com/wsd-chat/wsd/session"
)

// DisconnectRequest is the body of POST /disconnect: close the connection
// holding Key, with Code (4000-4999, default 4002) and Reason (at most 123
// bytes of UTF-8, default "disconnected by the server").
type DisconnectRequest struct {
	Key    string `json:"key"`
	Code   uint16 `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// DisconnectResponse answers POST /disconnect: whether the key was connected.
type DisconnectResponse struct {
	Disconnected bool `json:"disconnected"`
}

// disconnecter serves POST /disconnect, what a backend calls to log a user out.
type disconnecter struct {
	hub   *session.Hub
	token func() string
}

func (d *disconnecter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r, d.token) {
		return
	}
	var req DisconnectRequest
	if !decodeBody(w, r, 4096, &req) {
		return
	}
	switch {
	case req.Key == "":
		writeError(w, http.StatusBadRequest, "key is required")
		return
	case req.Code != 0 && (req.Code < 4000 || req.Code > 4999):
		writeError(w, http.StatusBadRequest, "code must be 4000-4999")
		return
	case len(req.Reason) > 123 || !utf8.ValidString(req.Reason):
		writeError(w, http.StatusBadRequest, "reason must be at most 123 bytes of UTF-8")
		return
	}
	writeJSON(w, http.StatusOK, DisconnectResponse{Disconnected: d.hub.Disconnect(req.Key, req.Code, req.Reason)})
}
