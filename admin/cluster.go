package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsd-chat/wsd/cluster"
)

// clusterCollector exports a cluster.Bridge's counters as wsd_cluster_*.
type clusterCollector struct{ b *cluster.Bridge }

// cdesc describes the metric wsd_cluster_NAME.
func cdesc(name, help string, labels ...string) *prometheus.Desc {
	return desc("cluster_"+name, help, labels...)
}

var (
	descCConnected    = cdesc("connected", "1 while connected to a NATS server.")
	descCReconnects   = cdesc("reconnects_total", "NATS connections re-established after a loss.")
	descCDisconnects  = cdesc("disconnects_total", "NATS connections lost.")
	descCPublished    = cdesc("published_total", "Messages the NATS server confirmed receiving (broadcasts, direct messages, key claims); those lost on the way count as dropped, reason disconnected.")
	descCPublishedB   = cdesc("published_bytes_total", "Bytes of those messages.")
	descCReceived     = cdesc("received_total", "Messages received from NATS, before checks.")
	descCReceivedB    = cdesc("received_bytes_total", "Bytes of messages received from NATS.")
	descCDropped      = cdesc("dropped_total", "Messages that did not cross, by reason (outbound: disconnected, queue_full, too_large, publish_error; inbound: malformed, version, invalid, too_large, own, draining, unsigned, bad_mac; slow_consumer).", "reason")
	descCRemote       = cdesc("remote_deliveries_total", "Broadcasts and direct messages from other boxes delivered on this box.")
	descCRemoteRcpt   = cdesc("remote_recipients_total", "Connections those remote deliveries were queued for.")
	descCSubs         = cdesc("subscriptions", "NATS subscriptions of this box, by kind (room, presence, key, all: the all and boxes subjects).", "kind")
	descCClaimsSent   = cdesc("claims_sent_total", "Key claims, holds and announces published.")
	descCClaimsRecv   = cdesc("claims_received_total", "Key claims, holds and announces received.")
	descCRemoteKicks  = cdesc("remote_kicks_total", "Connections closed 4001 for a later connection with the same key on another box.")
	descCSlowConsumer = cdesc("slow_consumer_episodes_total", "Episodes of the NATS client dropping messages because this box did not keep up.")
	descCQueue        = cdesc("queue_depth", "Publishes waiting for the bridge goroutine.")
	descCPresBoxes    = cdesc("presence_remote_boxes", "Other boxes with members in the rooms this box has members in (presence across boxes).")
	descCPresSent     = cdesc("presence_sent_total", "Presence changes of this box's rooms published, one per changed room per presence interval.")
	descCPresRecv     = cdesc("presence_received_total", "Presence messages received: changes, asks, leases and goodbyes of other boxes.")
	descCPresDropped  = cdesc("presence_dropped_total", "Of those, refused (malformed, invalid, unsigned or forged; also counted in dropped_total by reason).")
	descCLeases       = cdesc("presence_leases_expired_total", "Boxes whose members were dropped because their lease ran out (crashed or cut off).")
)

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCConnected, descCReconnects, descCDisconnects, descCPublished,
		descCPublishedB, descCReceived, descCReceivedB, descCDropped, descCRemote, descCRemoteRcpt, descCSubs,
		descCClaimsSent, descCClaimsRecv, descCRemoteKicks, descCSlowConsumer, descCQueue,
		descCPresBoxes, descCPresSent, descCPresRecv, descCPresDropped, descCLeases} {
		ch <- d
	}
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.Stats()
	gauge, counter := metricSink(ch).gauge, metricSink(ch).counter
	connected := int64(0)
	if s.Connected.Load() {
		connected = 1
	}
	gauge(descCConnected, connected)
	counter(descCReconnects, s.Reconnects.Load())
	counter(descCDisconnects, s.Disconnects.Load())
	counter(descCPublished, s.Published.Load())
	counter(descCPublishedB, s.PublishedBytes.Load())
	counter(descCReceived, s.Received.Load())
	counter(descCReceivedB, s.ReceivedBytes.Load())
	for i, reason := range cluster.DropReasons {
		counter(descCDropped, s.Dropped(i), reason)
	}
	counter(descCRemote, s.RemoteDeliveries.Load())
	counter(descCRemoteRcpt, s.RemoteRecipients.Load())
	rooms, keys, pres := s.RoomSubscriptions.Load(), s.KeySubscriptions.Load(), s.PresenceSubscriptions.Load()
	gauge(descCSubs, rooms, "room")
	gauge(descCSubs, pres, "presence")
	gauge(descCSubs, keys, "key")
	gauge(descCSubs, s.Subscriptions.Load()-rooms-keys-pres, "all")
	counter(descCClaimsSent, s.ClaimsSent.Load())
	counter(descCClaimsRecv, s.ClaimsReceived.Load())
	counter(descCRemoteKicks, s.RemoteKicks.Load())
	counter(descCSlowConsumer, s.SlowConsumer.Load())
	gauge(descCQueue, s.QueueDepth.Load())
	gauge(descCPresBoxes, s.PresenceBoxes.Load())
	counter(descCPresSent, s.PresenceSent.Load())
	counter(descCPresRecv, s.PresenceReceived.Load())
	counter(descCPresDropped, s.PresenceDropped.Load())
	counter(descCLeases, s.LeasesExpired.Load())
}

// ClusterSnapshot is the "cluster" part of GET /stats.
type ClusterSnapshot struct {
	BoxID         string `json:"box_id"`
	Prefix        string `json:"subject_prefix"`
	NATS          string `json:"nats"`             // connected, reconnecting, connecting, closed
	Server        string `json:"server,omitempty"` // without credentials
	Subscriptions int64  `json:"subscriptions"`
	Published     uint64 `json:"published"`
	Received      uint64 `json:"received"`
	Dropped       uint64 `json:"dropped"`
}

func clusterSnapshot(b *cluster.Bridge) *ClusterSnapshot {
	if b == nil {
		return nil
	}
	s := b.Stats()
	return &ClusterSnapshot{
		BoxID:         b.BoxID(),
		Prefix:        b.Prefix(),
		NATS:          b.State(),
		Server:        b.Server(),
		Subscriptions: s.Subscriptions.Load(),
		Published:     s.Published.Load(),
		Received:      s.Received.Load(),
		Dropped:       s.DroppedTotal(),
	}
}
