// Package history keeps rooms' order and history outside the process, in
// NATS JetStream: it is wsd's chat.Log (chat/durable.go).
//
// One stream (DefaultStream) holds every room, one subject per room,
// <prefix>.h.<chat.RoomToken(room)>. JetStream numbers a stream's messages,
// not a room's, so a room's own gap-free seq and its epoch travel in
// headers, and each publish states the stream seq of the room's previous
// message (Nats-Expected-Last-Subject-Sequence): two boxes writing one room
// cannot both take the same seq; the loser re-reads the room's last message
// and tries again, after a jittered back-off. A room with no stored message
// starts a new epoch at seq 1, so history that expired or was lost is a new
// epoch, never a silent restart of the seq. Each message also names the
// stream seq of its room's previous one (a prev pointer), so Read walks a
// room back with direct gets instead of scanning the stream.
//
// A send with a client id carries Nats-Msg-Id from its key and id:
// JetStream's duplicate window answers a retry, through any box, with the
// original's stream seq, whose stamp Submit returns with dup set.
//
// Every box delivers from one ordered consumer over the whole stream, so a
// room's messages reach every box in one order. Each is validated (version,
// headers, sizes, room token, seq following the room's last) before it is
// delivered; anything else on the subjects was not written by wsd and is
// dropped and counted (Stats), and a hole makes the Deliverer Reset the room.
//
// OpenEmbedded runs an in-process nats-server (no listener) on a store
// directory, locked against a second process, with explicit memory and disk
// caps: never the server's defaults of 75 % of RAM and of free disk. Open
// uses a NATS connection the caller has (wsd's -history-jetstream dials
// its own, apart from the cluster bridge's). Both create the stream or
// update it to cfg's limits, so the last box to open sets them for all:
// boxes should agree, and a lowered MaxMsgsPerRoom, MaxAge or MaxBytes
// drops what is over it at once (a room of 10 reopened with 5 keeps 5).
// Open fails within StartTimeout, wrapping ErrUnavailable and the cause
// (nats.ErrNoResponders when the server has no JetStream), never hangs.
//
// Stats is what wsd exports as wsd_history_store_* on /metrics and as
// the "history" state of /healthz and /readyz (cmd/wsd/history.go).
//
// What is on disk when Submit's done returns: the message is in the store's
// file (the kernel's page cache), acked by JetStream. With the default
// SyncInterval (nats-server's own, 2 minutes) it survives a crash of wsd
// (SIGKILL) but not a power loss within the interval; with SyncAlways every
// message is fsynced before its ack. One Submit at a time, to its Deliver,
// on this machine while the CI suite ran beside it: 102 µs default, 453 µs
// SyncAlways (go test -run x -bench BenchmarkSync -benchtime 2000x
// ./history), 4.4× the cost.
//
// Restart on a full store: with 1,000,000 messages of about 80 B in 1,000
// rooms (208 MB on disk), OpenEmbedded took 2.8 s (nats-server recovering
// its files), Start 10 ms and the first Read of a room's last 100 56 ms,
// means of 5 restarts on this machine (go test -run x -bench
// BenchmarkRestart -benchtime 5x ./history; the fill, done once, takes
// about a minute and its directory is removed). The session reads the Log
// for cold joins off its reactor's workers for that reason.
package history
