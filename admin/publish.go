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
}

// Cluster outcomes of a publish.
const (
	ClusterSent    = "sent"
	ClusterLocal   = "local"
	ClusterNotSent = "not_sent"
)

func clusterOutcome(sent bool) string {
	if sent {
		return ClusterSent
	}
	return ClusterNotSent
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
	if p.hub.Bridged() {
		writeJSON(w, http.StatusOK, p.publishCluster(&req))
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

// publishCluster is the publish of a box in a cluster: delivered here,
// and sent on to the other boxes.
func (p *publisher) publishCluster(req *PublishRequest) PublishResponse {
	text := []byte(req.Text)
	switch {
	case req.Key != "":
		local, sent := p.hub.SendAnywhere(req.Key, text)
		if local {
			return PublishResponse{Delivered: 1, Cluster: ClusterLocal}
		}
		return PublishResponse{Cluster: clusterOutcome(sent)}
	case req.Room == AllRooms:
		n, sent := p.hub.PublishAll(text)
		return PublishResponse{Delivered: n, Cluster: clusterOutcome(sent)}
	default:
		n, sent := p.hub.PublishCluster(req.Room, text)
		return PublishResponse{Delivered: n, Cluster: clusterOutcome(sent)}
	}
}
