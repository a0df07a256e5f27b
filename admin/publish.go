package admin

import (
	"net/http"
	"unicode/utf8"

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
	// Delivered is how many connections on this box the text was queued for.
	Delivered int `json:"delivered"`
	// Cluster, only with -nats-url: "sent" (handed to NATS for the other
	// boxes), "local" (the key is connected here, nothing else to do) or
	// "not_sent" (NATS unreachable, too slow or the message over its
	// max_payload; counted in wsd_cluster_dropped_total).
	Cluster string `json:"cluster,omitempty"`
	// Seq, Epoch and TS are the stamp a room publish got on this box (chat
	// protocol v1: its place in the room's order); absent for a key or
	// every room ("*").
	Seq   uint64 `json:"seq,omitempty"`
	Epoch string `json:"epoch,omitempty"`
	TS    int64  `json:"ts,omitempty"`
	// History, only with a history store (-history-dir,
	// -history-jetstream), is what it did with a room publish: "stored"
	// (Seq, Epoch and TS are the store's), "local" (the store failed it:
	// delivered on this box alone under a box-local epoch), "pending"
	// (not answered within -history-publish-timeout; it may still be
	// stored, and no stamp is given).
	History string `json:"history,omitempty"`
}

// Cluster outcomes of a publish.
const (
	ClusterSent    = "sent"
	ClusterLocal   = "local"
	ClusterNotSent = "not_sent"
)

// clusterField is PublishResponse.Cluster for each outcome: empty without
// a bridge, so a single box answers as it always did.
var clusterField = [...]string{
	session.ClusterNone:   "",
	session.ClusterLocal:  ClusterLocal,
	session.ClusterSent:   ClusterSent,
	session.ClusterFailed: ClusterNotSent,
}

func (p *publisher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !authorized(w, r, p.token) {
		return
	}
	var req PublishRequest
	max := int64(p.hub.Config().MaxMessage) + 4096 // room for JSON escaping and fields
	if !decodeBody(w, r, max, &req) {
		return
	}
	switch {
	case req.Text == "":
		writeError(w, http.StatusBadRequest, "text is required")
		return
	case !utf8.ValidString(req.Text):
		writeError(w, http.StatusBadRequest, "text is not valid UTF-8")
		return
	case len(req.Text) > p.hub.Config().MaxMessage:
		writeError(w, http.StatusRequestEntityTooLarge, "text longer than -max-message")
		return
	case req.Room != "" && req.Room != AllRooms && !session.ValidRoom(req.Room):
		writeError(w, http.StatusBadRequest, "bad room name")
		return
	}
	text := []byte(req.Text)
	var d session.Delivery
	switch {
	case req.Key != "":
		d = p.hub.SendTo(req.Key, text)
	case req.Room == AllRooms:
		d = p.hub.PublishAll(text)
	default:
		d = p.hub.Publish(req.Room, text)
	}
	writeJSON(w, http.StatusOK, PublishResponse{Delivered: d.Local, Cluster: clusterField[d.Cluster], Seq: d.Seq, Epoch: d.Epoch, TS: d.TS,
		History: d.History.String()})
}
