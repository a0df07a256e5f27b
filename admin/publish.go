package admin

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/session"
)

// publisher serves POST /publish: {"room": "...", "key": "...", "text": "..."}.
// With key set the text goes to that one connection (room is ignored);
// otherwise to room: "" or absent is the global room (every client that
// connected without room=, which is every seed client), "*" is every
// connection in every room.
type publisher struct {
	hub   *session.Hub
	token func() string
}

// AllRooms as PublishRequest.Room reaches every connection in every room.
const AllRooms = "*"

// PublishRequest is the body of POST /publish.
type PublishRequest struct {
	Room string `json:"room,omitempty"`
	Key  string `json:"key,omitempty"`
	Text string `json:"text"`
}

// PublishResponse answers POST /publish.
type PublishResponse struct {
	Delivered int `json:"delivered"`
}

func (p *publisher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if t := p.token(); t != "" && !bearerMatches(r.Header.Get("Authorization"), t) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wsd"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
		return
	}
	max := int64(p.hub.Config().MaxMessage) + 4096 // room for JSON escaping and fields
	r.Body = http.MaxBytesReader(w, r.Body, max)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	var req PublishRequest
	if err := dec.Decode(&req); err != nil {
		status := http.StatusBadRequest
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			status = http.StatusRequestEntityTooLarge
		}
		writeJSON(w, status, map[string]string{"error": "bad request body: " + err.Error()})
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request body: trailing data"})
		return
	}
	switch {
	case req.Text == "":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "text is required"})
		return
	case !utf8.ValidString(req.Text):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "text is not valid UTF-8"})
		return
	case len(req.Text) > p.hub.Config().MaxMessage:
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "text longer than -max-message"})
		return
	case req.Room != "" && req.Room != AllRooms && !session.ValidRoom(req.Room):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad room name"})
		return
	}
	var n int
	if req.Key != "" {
		if p.hub.Send(req.Key, []byte(req.Text)) {
			n = 1
		}
	} else if req.Room == AllRooms {
		n = p.hub.Publish("", []byte(req.Text))
		for _, r := range p.hub.Rooms() {
			if r.Room != "" {
				n += p.hub.Publish(r.Room, []byte(req.Text))
			}
		}
	} else {
		n = p.hub.Publish(req.Room, []byte(req.Text))
	}
	writeJSON(w, http.StatusOK, PublishResponse{Delivered: n})
}

// bearerMatches compares in constant time so the token cannot be guessed
// byte by byte from response times.
func bearerMatches(header, token string) bool {
	got := codec.BearerToken([]byte(header))
	return got != nil && subtle.ConstantTimeCompare(got, []byte(token)) == 1
}
