// Package cluster is the bridge between one box's hub and NATS: it makes
// several wsd boxes behave as one chat server.
//
// A Bridge owns the box's one NATS connection. The hub tells it, through
// the session.Bridge hooks, when the box's first member of a room joins
// and its last one leaves, when a key is connected here and when it goes,
// and every broadcast that started on this box. The bridge turns that into
// subscriptions and publishes; what arrives from NATS it hands back to the
// hub (Hub.DeliverRemote, Hub.Kick), never re-publishing it.
//
// Subjects, with the default prefix "wsd":
//
//	wsd.room.<room token>   broadcasts to a room; a box subscribes while it
//	                        has members in the room (interest, not flooding)
//	wsd.key.<key hash>      direct messages and key claims; a box subscribes
//	                        while it holds a connection with that key
//	wsd.all                 POST /publish {"room":"*"}; every box subscribes
//	wsd.presence.<room token>
//	                        a box's member changes of the room and asks
//	                        for a box's whole set; a box subscribes while
//	                        it has members in the room (presence.go)
//	wsd.boxes               presence leases and goodbyes; every box
//	                        subscribes
//
// Room tokens: room names are 1-64 of A-Z a-z 0-9 _ - . : and "." splits
// NATS tokens, so "." becomes "~"; the global room "" is "=". Neither "~"
// nor "=" can occur in a room name, so the mapping is one to one. Keys are
// free text, so their token is the 16 hex digits of their 64-bit FNV-1a
// hash; the full key travels in the message and a box acts only on keys it
// holds, so two keys sharing a hash cost one extra message, nothing more.
//
// Everything the bridge does to NATS happens on one goroutine (but the
// ping that confirms a batch of publishes), fed by a
// queue the hooks append to: a hook never blocks on the network, so NATS
// being slow or gone never stalls a worker. While NATS is unreachable
// publishes are dropped and counted (the connection's reconnect buffer is
// off), and a publish counts as published only once the server has
// answered a ping sent after it on the same connection; what a breaking
// connection took with it is counted as dropped (loop.go: batch).
// Subscriptions are kept and re-sent by the client on reconnect, and
// claims for every held key are announced again once it is back.
//
// A room message carries its text and, for the envelopes of v1 members on
// the other boxes, its sender's key and the client id of its send (the
// origin extension of wire.go, in a section the release before it skips);
// seq, epoch and ts are stamped by each box's own Ring.
//
// Which of two connections with one key survives (see claim.go) is decided
// by stamps carried in claim messages on the key's subject: hybrid logical
// clocks, which wall time keeps near each other but does not order.
//
// With bus keys (Config.BusKeys, -nats-bus-key-file) every message carries
// an HMAC over its subject and bytes, and a box drops what does not verify
// (buskey.go); docs/cluster-security.md shows the NATS permissions that
// keep other NATS users off wsd's subjects.
//
// Files: config.go (Config and its defaults), conn.go (the NATS
// connection and its handlers), hooks.go (the session.Bridge hooks and the
// queue they feed), loop.go (the bridge goroutine: publishing and
// receiving), claim.go (key claims), buskey.go (MACs), wire.go (the message format),
// presence.go and presence_wire.go (presence across boxes: member changes,
// leases), subject.go, stats.go.
package cluster
