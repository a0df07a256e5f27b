package cluster

import (
	"fmt"
	"time"

	"github.com/wsd-chat/wsd/chat"
)

// The wire format, for the tests in cluster_test that put forged and
// malformed messages on the bus.
type Message = message

const (
	KindRoom  = kindRoom
	KindClaim = kindClaim
	KindHold  = kindHold
)

var KeyToken = keyToken

// SkewClock runs b's wall clock d ahead (a box whose clock is off), from
// before Start.
func SkewClock(b *Bridge, d time.Duration) {
	b.wall = func() uint64 { return wallClock() + uint64(d) }
}

const KindAll = kindAll

// Sign signs data for subject with key, as a box holding it does.
func Sign(key []byte, subject string, data []byte) []byte {
	k, err := newBusKeys([][]byte{key})
	if err != nil {
		panic(err)
	}
	return k.sign(subject, data)
}

// Presence (presence.go).
const (
	KindPresence    = kindPresence
	KindPresenceAsk = kindPresenceAsk
	KindLease       = kindLease
)

// PresenceText encodes a presence change as a box does.
func PresenceText(snapshot, lists bool, count int, joined, left []string) []byte {
	return appendPresence(nil, &chat.LocalChange{Snapshot: snapshot, Lists: lists, Count: count, Keys: joined, Left: left})
}

// Crash cuts b off NATS without a goodbye, as a killed process is: its
// leases stop.
func Crash(b *Bridge) { b.nc.Close() }

// ReadPresence decodes a presence message as a box does: "=[keys] n" for
// a whole set, "+[joined] -[left] n" for a change.
func ReadPresence(data []byte) string {
	var m message
	if err := decode(data, 1<<20, &m); err != nil || m.Kind != kindPresence {
		return "not presence"
	}
	var pm presenceMsg
	if err := parsePresence(m.Text, &pm); err != nil {
		return err.Error()
	}
	if pm.snapshot {
		return fmt.Sprintf("=%v %d", pm.joined, pm.count)
	}
	return fmt.Sprintf("+%v -%v %d", pm.joined, pm.left, pm.count)
}

// PresenceID is the name b goes by in presence messages.
func PresenceID(b *Bridge) string { return b.pres.id }
