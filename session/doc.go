// Package session is wsd's connection layer: per-connection protocol state,
// the sharded session table, and delivery.
//
// Data flows one way. The reactor (package poller) tells a Conn its socket
// is ready; the Conn reads, feeds package codec, and hands each complete
// text message to the Hub; the Hub makes it a message (message.go: an
// encoded broadcast whose frame variants are built lazily, each once) and
// queues it on every shard of the table (table.go) that has members in the
// target room; a shard's fan-out task (fanout.go) writes the same bytes to
// each member, coalescing every frame queued since its last run into one
// writev per member (write.go, the per-connection write queue).
//
// Writes never block. What a socket does not take stays in that Conn's
// bounded queue, flushed on EPOLLOUT; a peer whose queue passes MaxQueue is
// a slow consumer and is closed with 1008, so a stalled reader never delays
// anyone else (the frames its socket holds count as queued, write.go).
// What a sender costs is its deliveries (limits.go), and a shard's fan-out
// yields its worker after a quantum and holds the senders that fill its
// backlog (fanout.go), so one flooded room cannot starve the others.
//
// Only a Conn's own OnReady (run by the reactor, never concurrently with
// itself) reads its socket, changes its lifecycle state or closes its fd.
// Other goroutines ask for a close through requestClose, which queues the
// close frame under the write lock and wakes OnReady. So an fd is never
// closed under a concurrent write, and a recycled fd number is never read
// by a stale Conn.
//
// Lock order: a chat.Ring room's lock, then the chat.Presence lock, then
// shard.mu, then Conn.wmu; nothing is locked while taking a Ring room's
// lock, and only those before it while taking the others (v1.go: a room
// message is queued on the outboxes with its room's log locked, so every
// shard sees a room's messages in seq order). Methods whose names end in Locked need Conn.wmu held; no
// other method may be called with it held unless its comment says so.
//
// Memory is the connection count's price, so what a connection holds is
// decided, not grown into: sizeof_test.go pins every per-connection
// struct; what only some connections use (TLS, a per-address limit, a
// sender's rate state, a command in progress) hangs off a pointer made on
// first use; the table keeps connections by key in one pointer a slot
// (keytable.go); and presence counts a member through its entry here (the
// table is chat.Presence's Roster), not by an entry of its own.
//
// Files by job: config.go (Config and every default), close.go (every
// close and refusal wsd decides, one table), deliver.go (the one delivery
// path), handshake.go, conn.go, write.go, fanout.go, table.go, keytable.go, sweep.go,
// budget.go, drain.go (lame-duck and Shutdown), bridge.go (the cluster's
// hooks), log.go (a room order kept outside the process, Config.Log) and
// logread.go (its cold joins, read off the reactor's workers), v1.go (chat
// protocol v1: rooms as subscriptions, commands, envelope variants,
// presence frames).
//
// The tests here cover the parts with no sockets (the table, budgets, rate
// limits, the close table). The behaviour suite, real clients against a
// running Hub over TCP and TLS, lives in package server's tests
// (server/*_test.go: protocol, limits, slow consumers, stalls, idle,
// shutdown, deflate, hostile peers, churn, soak); the cluster's in
// cluster/, and the built binary's in cmd/wsd.
package session
