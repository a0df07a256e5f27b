package admin

import (
	"encoding/json"
	"net/http"

	"github.com/wsd-chat/wsd/session"
)

// The chat rooms' order and history on this box (chat protocol v1,
// docs/protocol-v1.md): GET /rooms, GET /rooms/{room} and
// GET /rooms/{room}/history. They name member keys and show messages, so
// they need the admin token like POST /publish. The global room is
// "/rooms/" + "" — not addressable by path: it is listed by GET /rooms
// with room "".

// RoomDetail answers GET /rooms/{room}.
type RoomDetail struct {
	session.RoomState
	Members   []string `json:"members"`
	Truncated bool     `json:"truncated"`
}

// RoomHistory answers GET /rooms/{room}/history.
type RoomHistory struct {
	session.RoomState
	Messages []json.RawMessage `json:"messages"` // the message envelopes, oldest first
}

type rooms struct {
	hub   *session.Hub
	token func() string
}

func (rs *rooms) list(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r, rs.token) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"rooms": rs.hub.RoomStates()})
}

// roomOf authorizes r and returns the room its path names, or answers
// the refusal itself and reports false.
func (rs *rooms) roomOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !authorized(w, r, rs.token) {
		return "", false
	}
	name := r.PathValue("room")
	if !session.ValidRoom(name) {
		writeError(w, http.StatusBadRequest, "bad room name")
		return "", false
	}
	return name, true
}

func (rs *rooms) room(w http.ResponseWriter, r *http.Request) {
	name, ok := rs.roomOf(w, r)
	if !ok {
		return
	}
	st, members, ok := rs.hub.RoomState(name)
	if !ok {
		writeError(w, http.StatusNotFound, "no such room on this box")
		return
	}
	writeJSON(w, http.StatusOK, RoomDetail{RoomState: st, Members: members, Truncated: len(members) < st.Members})
}

func (rs *rooms) history(w http.ResponseWriter, r *http.Request) {
	name, ok := rs.roomOf(w, r)
	if !ok {
		return
	}
	st, envs, ok := rs.hub.RoomHistory(name)
	if !ok {
		writeError(w, http.StatusNotFound, "no history for this room on this box")
		return
	}
	msgs := make([]json.RawMessage, len(envs))
	for i, e := range envs {
		msgs[i] = e
	}
	writeJSON(w, http.StatusOK, RoomHistory{RoomState: st, Messages: msgs})
}
