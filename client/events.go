package client

// Event is what the client delivers on Events: a *Message, *Joined,
// *Left, *Presence, *StateChange, *Direct or *Warning.
type Event interface{ event() }

// Message is a chat message of a joined room, delivered once, in seq
// order, with no gap inside one epoch: the client drops duplicates and
// resyncs the room on a gap before delivering anything past it.
type Message struct {
	Room  string
	Seq   uint64
	Epoch string
	TS    int64 // server time, Unix milliseconds
	From  string
	ID    string // the sender's command id; "" when it gave none
	Text  string
}

// Joined reports a room's position: after Join, after every reconnect
// and after a resync. Recovered true: the Missed messages after the
// client's last one follow as Messages, then live ones. Recovered false
// after a reconnect or resync: the client's copy of the room may have a
// hole (another epoch, history no longer held, another box): reload it.
type Joined struct {
	Room      string
	Seq       uint64 // the room's latest seq
	Epoch     string
	Recovered bool
	Missed    uint64 // messages that follow as the replay, when Recovered
	Count     int    // members
	// Rejoin: the client joined again by itself (reconnect or gap), not
	// in answer to Join.
	Rejoin bool
}

// Left: the client is no longer in Room (after Leave).
type Left struct{ Room string }

// Presence is a room's coalesced membership change; Joined and Left are
// nil when the server sent the count only (a large room).
type Presence struct {
	Room   string
	Count  int
	Joined []string
	Left   []string
}

// State is where the client's connection stands.
type State int

const (
	Connecting   State = iota // dialing, or waiting for the back-off
	Connected                 // upgraded and the first room joined
	Disconnected              // the connection ended; a reconnect follows
	Closed                    // for good: Close, 4001, or a permanent refusal
)

var stateNames = [...]string{"connecting", "connected", "disconnected", "closed"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state?"
}

// StateChange reports a new State. Err says why a connection ended or a
// dial failed (a *CloseError, *HandshakeError, *ProtocolError, a network
// error); URL is the server of the (last) attempt.
type StateChange struct {
	State State
	Err   error
	URL   string
}

// Direct is a message to this key alone (a backend's POST /publish with
// "key"): it belongs to no room, so it has no seq and is not recovered.
// TS is the server's time in milliseconds and From the sender ("" for the
// admin API); a server before the direct envelope sent the bare text, which
// arrives here with TS 0.
type Direct struct {
	TS   int64
	From string
	Text string
}

// Warning is something wrong that the client handled without dropping
// the connection: a *SequenceError (a message dropped as a duplicate),
// or a *ServerError answering a join the client made by itself.
type Warning struct {
	Room string
	Err  error
}

func (*Message) event()     {}
func (*Joined) event()      {}
func (*Left) event()        {}
func (*Presence) event()    {}
func (*StateChange) event() {}
func (*Direct) event()      {}
func (*Warning) event()     {}

// Ack is the server's answer to a send: where the message stands in the
// room. Duplicate: the send repeated an id the server had already
// accepted (a retry after a reconnect); these are the original values and
// the message was not broadcast again.
type Ack struct {
	ID        string
	Room      string
	Seq       uint64
	Epoch     string
	TS        int64
	Duplicate bool
}

// Members is the answer to Members: Count keys, at most the server's list
// limit listed (Truncated when Count is larger).
type Members struct {
	Room      string
	Count     int
	Members   []string
	Truncated bool
}

// Stats are counters over the client's life.
type Stats struct {
	Connects      uint64 // connections that were upgraded
	Delivered     uint64 // Messages put on Events
	Duplicates    uint64 // messages dropped: seq at or below the last
	Gaps          uint64 // seq jumps seen while connected (each resynced)
	Unrecovered   uint64 // rejoins answered recovered:false
	Resent        uint64 // sends written again after a reconnect
	Overflows     uint64 // connections dropped because Events was full
	StatesDropped uint64 // StateChanges not queued (Events full)
}
