/*
Package chat is the core of wsd's chat protocol v1: what a v1 client's
commands mean, the JSON envelopes the server answers with, and the per-room
state behind them (order and history, idempotent sends, presence). It knows
nothing of sockets, frames or the session table; package session feeds it
the text of v1 frames and fans its envelopes out. It uses only the standard
library.

The pieces, each usable alone:

  - ParseCommand reads one client frame into a Command (send, join, leave,
    members) or refuses it with an *Error whose Code the error frame carries.
  - AppendMessage, AppendAck, AppendJoined, AppendLeft, AppendMembers,
    AppendPresence and AppendError append server envelopes to a caller's
    buffer.
  - Ring is the in-memory Store: per room a gap-free seq, an epoch, and a
    bounded ring of the last messages' envelopes.
  - Dedup remembers the ack of each (key, client id) for the dedup window.
  - Presence keeps member sets with O(1) counts and coalesces their changes
    into at most one presence event per room per interval.

# Parsing commands

A v1 frame is one JSON object. ParseCommand is strict (see its doc: unknown
fields are the one leniency) and allocation-free: it unescapes strings in
place, so it rewrites the frame and the Command points into it.

	var cmd chat.Command
	if err := chat.ParseCommand(&cmd, payload, chat.Limits{MaxText: maxMessage}); err != nil {
		e := err.(*chat.Error)
		out = chat.AppendError(out[:0], cmd.ID, e.Code, e.Reason)
		// send out to the client; the connection stays open
	}

Codes 100-105 come from ParseCommand; 110-120 (CodeForbidden …
CodeUnavailable) are the server's to send when a well-formed command cannot
be done. Room names follow ValidRoom, the handshake's rule: session and chat
must check rooms with one of codec.ValidRoom or chat.ValidRoom, which a test
keeps equal.

# Envelopes

Every Append function writes straight into dst with no allocation beyond
growing it. Strings are escaped for JSON and for JavaScript (U+2028 and
U+2029), and invalid UTF-8 (a key from a query string) becomes U+FFFD, so
every envelope is valid JSON in valid UTF-8 whatever it carries.

	buf = chat.AppendAck(buf[:0], cmd.ID, &chat.Ack{Room: room, Stamp: st}, false)

# Order and history

A Store stamps each message of a room with the next seq (1, 2, …, never a
gap) of the room's epoch and the server time, and keeps its envelope so a
replay costs no encoding. The epoch is made (crypto/rand) when the room's
log starts; a Ring forgets a room only after it has retained nothing and been
unused for MetaTTL, so a new epoch means exactly "the history before this
is gone" and a client holding the old one is told recovered:false.

Order is the Store's job, not the caller's: Append hands the stamped
envelope to a Sink before it releases the room, so two concurrent sends to a
room reach the fan-out in seq order and every member sees one order.

	type fanout struct{ hub *Hub }
	func (f fanout) Publish(room string, s chat.Stamp, env []byte) {
		f.hub.broadcast(room, s.Seq, env) // copies env into one shared frame
	}
	st, err := store.Append(chat.Message{Room: room, From: key, ID: cmd.ID, Text: cmd.Text}, f)

The envelope passed to Publish belongs to the store (its buffer is reused
by a later message); Publish copies it, once per broadcast, into the frame
every member shares. Publish must not block or call back into the store.

# Joining while the room is live

A join with since must give exactly the messages after since, then live
ones, with no gap and no duplicate at the seam, even at full rate. Since
calls the Reader's Attach with the room's position and then Replay for each
retained message after since, all under the room's lock: no Append of the
room is stamped until the replay is done, so a member registered in Attach
receives every message stamped after the replay, and after it in its queue.
That closes the gap.

A fan-out that decides membership later than Publish (wsd queues a
broadcast on shard outboxes; a shard's task looks up members when it runs)
can still deliver to the new member a message stamped before Attach, which
the replay also had. So Attach gets Info.Seq, the last seq the replay
covers: the member skips every live message with seq at most that. That
closes the duplicate. Both halves together:

	type joiner struct{ c *Conn; cmd *chat.Command; room string }
	func (j joiner) Attach(i chat.Info) {
		ok := chat.Recoverable(i, j.cmd.Since, string(j.cmd.Epoch))
		j.c.queue(chat.AppendJoined(nil, &chat.Joined{ID: j.cmd.ID, Room: j.room,
			Seq: i.Seq, Epoch: i.Epoch, Recovered: ok, Count: presence.Count(j.room)}))
		j.c.skipUpTo[j.room] = i.Seq // live messages with seq <= i.Seq are not delivered to j.c
		hub.addMember(j.room, j.c)
	}
	func (j joiner) Replay(e chat.Entry) { j.c.queue(e.Frame) } // copies; in seq order
	info, err := store.Since(room, cmd.Since, string(cmd.Epoch), joiner{c, &cmd, room})

err is nil (recovered) or ErrEpoch / ErrTooOld / ErrAhead: then nothing is
replayed and joined must say recovered:false. Attach runs before the
replay, so it learns which from Recoverable, the very test Since applies.
The replayed frames are in the member's queue before any later message is
stamped, so the client reads joined, the missed messages in order, then
live. Last works the same way for history:K. A replay is never partial.

A Ring with RingConfig.Encode keeps a second encoding of each message (wsd:
its gzip'd frame) for readers that want it: Entry.Encoded builds it on the
first replay that asks and hands the same bytes to every later one, so N
gzip members recovering a message cost one gzip, not N. It is charged with
the message's bytes and dropped with it.

# Dedup

A send with an id is looked up before it is appended, and its ack stored
after:

	if a, ok := dedup.Check(key, cmd.ID); ok {
		out = chat.AppendAck(out[:0], cmd.ID, &a, true) // not broadcast again
	} else {
		st, _ := store.Append(msg, f)
		dedup.Put(key, cmd.ID, chat.Ack{Room: room, Stamp: st})
	}

Check-then-Put is atomic per key because wsd handles one key's commands one
at a time (a key is one connection). The table is bounded by MaxEntries,
evicts the oldest first, and reports its bytes (Charge) so the caller can
count them against a budget; a client flooding new ids only pushes the
oldest ids out sooner.

# Presence

Presence counts a key once per room. Leave does not end membership at once:
the key stays counted for the grace, and a Join within it cancels the
Leave, so a reconnect (or a 4001 replace, where the new connection takes
the key's rooms) emits nothing. Flush, run from a ticker several times per
interval, ends expired graces and emits for each changed room at most one
PresenceEvent per interval, with the joined and left lists only while they
and the room are at most ListMax (counts only above); the session encodes
it once with AppendPresence and broadcasts it to the room. A join storm of N
keys therefore costs O(N) map operations and one frame per member per
interval, never N frames to N members.

# Ownership and concurrency

Ring, Dedup and Presence are safe for concurrent use. Every callback
(Sink.Publish, Reader.Replay/Attach, the Charge hooks, Flush's emit) runs
with a lock of the callee held: it must be quick, must not block, and must
not call back into the same value. Byte slices handed to a callback are
valid only during the call, except Entry.Encoded's, which are never
written again. Command slices alias the parsed frame.

Lock order: a Ring room's lock, then whatever its Sink and Reader take
(the session's shard locks), never the reverse: the session must not call
the Ring while holding a lock Publish or Attach takes. Likewise the
Presence lock comes before what Flush's emit takes (and the snippet above
takes it inside Attach: Ring before Presence). Dedup calls only its Charge
hook.

Allocation profile on the per-message path: ParseCommand 0, AppendMessage
0, Ring.Append 0 once the room's ring is full (it reuses the evicted
envelope's buffer when it is large enough), Dedup.Check 0, Dedup.Put 1 (the
remembered key string).
*/
package chat
