package chat

import "errors"

// Log is a room order and history kept outside the process: durable across
// restarts and, with several boxes, one order per room for all of them
// (package history keeps it in NATS JetStream).
//
// With a Log a box does not stamp a room's messages itself. It submits
// them, and every box (the submitting one too) delivers each message when
// the Log hands it back through its Deliverer, in the order and with the
// stamp the Log gave it. Each box's Ring is then its hot copy of the
// rooms, filled from what the Log delivers, so joins and reconnects are
// served from memory; the Log is read only for what the Ring does not hold
// (a box that just started, a reconnect older than the Ring).
//
// Data flows one way: Submit goes out, Deliver comes back. Nothing the
// caller holds is locked while the Log calls back.
type Log interface {
	// Start begins delivering every ordered message to d, from the
	// position the Log is at now: messages ordered before Start are
	// Read, not delivered. It is called once, before Submit.
	Start(d Deliverer) error

	// Submit asks the Log to order and keep m (m.Stamp is ignored; m's
	// slices are copied before Submit returns). It does not block on the
	// network. done is called exactly once, on a goroutine of the Log,
	// never the caller's:
	//   - with the stamp the Log gave m, which every box's Deliverer gets
	//     with m (in no particular order relative to done);
	//   - with dup true when m.From already stored a message with m.ID
	//     within the Log's dedup window: st is the original's, and
	//     nothing is delivered again;
	//   - with err when m could not be ordered or stored (ErrUnavailable,
	//     a timeout, the Log's limits): then m is delivered nowhere
	//     through the Log, and the caller decides what to do with it.
	Submit(m *Message, done func(st Stamp, dup bool, err error))

	// Read calls fn, in seq order, for room's retained messages with seq
	// greater than after, at most max of them (the last max when more are
	// retained; max <= 0: none, only the position), and returns the
	// room's position as the Log has it. fn's message and its slices are
	// valid only during the call. Read may block on the network; the
	// caller holds no lock while it runs.
	Read(room string, after uint64, max int, fn func(m *Message)) (Info, error)

	// Close stops delivery and releases what the Log holds (an embedded
	// server's files stay on disk). Submits after Close fail with
	// ErrUnavailable.
	Close() error
}

// Deliverer receives what a Log has ordered.
type Deliverer interface {
	// Deliver gets each message the Log has ordered, from every box, in
	// each room's seq order, from one goroutine of the Log. m and its
	// slices are valid only during the call. It must not block for long:
	// every room's delivery waits for it.
	Deliver(m *Message)
	// Reset says the Log's delivery to this box skipped messages it could
	// not hand over (a consumer restarted after an outage, a message it
	// refused as malformed): whatever the box holds of room ("" for every
	// room) may have a hole, so the box drops its hot copy and rereads it
	// when it is next needed.
	Reset(room string)
}

// ErrUnavailable is a Log's answer while it cannot order messages (its
// store is unreachable or closed). wsd then keeps the room going on the
// box alone, under a new epoch, so no client mistakes the box's own order
// for the Log's.
var ErrUnavailable = errors.New("chat: the history log is unavailable")
