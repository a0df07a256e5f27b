package cluster

import "sync/atomic"

// Drop reasons: why a message did not cross, in either direction.
const (
	DropDisconnected = iota // publish while NATS was unreachable
	DropQueueFull           // publish queue over its limit (NATS too slow)
	DropTooLarge            // over NATS max_payload (out) or -max-message (in)
	DropPublishError        // the client refused the publish
	DropMalformed           // undecodable bus message
	DropVersion             // unknown wire version
	DropInvalid             // decodable but wrong: bad room, bad UTF-8, stamp out of range
	DropOwn                 // our own box id came back
	DropSlowConsumer        // dropped by the NATS client: wsd's inbox was full
	DropDraining            // arrived while the box shuts down
	DropUnsigned            // no MAC, on a box with bus keys
	DropBadMAC              // a MAC valid under none of the box's bus keys
	numDrops
)

// DropReasons names the drop reasons, indexed as above.
var DropReasons = [numDrops]string{"disconnected", "queue_full", "too_large", "publish_error",
	"malformed", "version", "invalid", "own", "slow_consumer", "draining", "unsigned", "bad_mac"}

// Stats are the bridge's counters; all cumulative except the gauges.
type Stats struct {
	Connected         atomic.Bool   // gauge: connected to a NATS server now
	Reconnects        atomic.Uint64 // connections re-established after a loss
	Disconnects       atomic.Uint64 // connections lost
	Published         atomic.Uint64 // messages the NATS server confirmed receiving (loop.go: confirm)
	PublishedBytes    atomic.Uint64
	Received          atomic.Uint64 // messages taken from NATS (before checks)
	ReceivedBytes     atomic.Uint64
	RemoteDeliveries  atomic.Uint64 // broadcasts and direct messages from other boxes delivered here
	RemoteRecipients  atomic.Uint64 // connections those were queued for
	Subscriptions     atomic.Int64  // gauge: subjects subscribed
	RoomSubscriptions atomic.Int64  // gauge: of which rooms
	KeySubscriptions  atomic.Int64  // gauge: of which keys
	ClaimsSent        atomic.Uint64 // claims, holds and announces published
	ClaimsReceived    atomic.Uint64
	RemoteKicks       atomic.Uint64 // local connections closed 4001 for a later one on another box
	SlowConsumer      atomic.Uint64 // slow-consumer episodes on wsd's subscriptions
	QueueDepth        atomic.Int64  // gauge: publishes waiting for the bridge goroutine
	// Presence across boxes (presence.go).
	PresenceSubscriptions atomic.Int64  // gauge: of Subscriptions, rooms' presence subjects
	PresenceBoxes         atomic.Int64  // gauge: other boxes with members in the rooms followed here
	PresenceSent          atomic.Uint64 // room changes published
	PresenceReceived      atomic.Uint64 // presence messages received (changes, asks, leases, goodbyes)
	PresenceDropped       atomic.Uint64 // of those, refused: malformed, invalid, forged (also counted by reason)
	LeasesExpired         atomic.Uint64 // boxes whose members were dropped for want of a lease renewal
	dropped               [numDrops]atomic.Uint64
}

// Dropped returns how many messages were dropped for reason.
func (s *Stats) Dropped(reason int) uint64 { return s.dropped[reason].Load() }

// DroppedTotal sums every drop reason.
func (s *Stats) DroppedTotal() uint64 {
	var n uint64
	for i := range s.dropped {
		n += s.dropped[i].Load()
	}
	return n
}

func (s *Stats) drop(reason int) { s.dropped[reason].Add(1) }
