// Package client is a Go client for wsd's chat protocol v1
// (docs/protocol.md, "Chat protocol v1"): one Client is one key's
// connection that outlives its sockets. It does the protocol's hard parts
// inside, with the same semantics as wsd's JavaScript client:
//
//   - Reconnect with full-jitter exponential back-off (Options.Backoff),
//     trying Dial's URL and Options.URLs in turn; never after close 4001
//     (replaced: another connection took the key), which ends the client
//     with ErrReplaced, nor after a refusal that retrying cannot change
//     (a *HandshakeError of 4xx other than 429).
//   - A position per room (last seq, epoch), sent after every reconnect:
//     the first room's in the handshake query (since, epoch), the others
//     as join commands. The server answers joined and replays what was
//     missed; Joined.Recovered says honestly whether the replay is
//     complete (false: another epoch, history gone, another box).
//   - Gap detection while connected: a seq jump or another epoch makes
//     the client rejoin the room with since, deliver nothing past the
//     hole until the answer, then the replay.
//   - Duplicates (seq at or below the last delivered) are dropped and
//     reported as a Warning carrying a *SequenceError: a Message is
//     delivered at most once, in seq order.
//   - Send gives every command an id and resends the ones not yet
//     answered after a reconnect, with the same id: the server's dedup
//     window answers the original ack with Duplicate true, so a retried
//     message is never broadcast twice.
//
// # Events and a slow app
//
// Messages, Joined, Left, Presence, StateChange, Direct and Warning
// arrive on one bounded channel, Events (Options.QueueSize). The client
// never waits for the app: its reader keeps reading acks and answers, so
// Send may be called from the goroutine that drains Events. When Events
// is full, the client drops the connection and reconnects with each room's
// position after the last message it queued; the server's history
// replays the rest (or answers recovered:false when it holds it no
// longer). Nothing is queued without bound: memory is QueueSize events
// and MaxPending commands.
//
// # Errors
//
// Every failure is a typed error for errors.As: *ServerError (an error
// frame: Code and Reason; the connection stays), *ProtocolError (a server
// frame that is not valid v1: bad JSON, a wrong type, a missing field, a
// frame over Options.MaxFrame, a gzip bomb; the client drops the
// connection and reconnects, and never panics on one: FuzzDecodeFrame),
// *CloseError (the close code that ended a connection), *HandshakeError
// (the status and wsd's reason for a refusal), *SequenceError, and
// ErrReplaced, ErrClosed, ErrNotJoined, ErrTooManyPending. DecodeFrame is
// the strict decoder of one server frame, usable on its own.
//
// # Framing
//
// Options.Gzip asks for support_gzip=1 (envelopes gzip'd in binary
// frames; commands go gzip'd too); Options.Deflate offers
// permessage-deflate with no context takeover; wss:// takes
// Options.TLSConfig.
//
// # The WebSocket library
//
// github.com/coder/websocket, already in wsd's go.mod: it is kept up
// (Coder maintains it since nhooyr.io/websocket), its Dial takes a
// context, its Conn is safe for concurrent writes (Send writes from the
// caller's goroutine while the client's reader reads), it negotiates
// permessage-deflate with no context takeover, and it enforces a read
// limit before buffering a frame. gorilla/websocket would need a write
// lock and its own deadline handling; gobwas/ws (what wsd's server uses
// for its zero-copy reactor) leaves the frame loop, fragments and
// inflation to the caller, which a client does not need to own.
package client
