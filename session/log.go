package session

import (
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/wsd-chat/wsd/chat"
)

// A room order kept outside the process (Config.Log, chat.Log). With a
// Log, a room message that starts on this box (a seed client's text, a v1
// send, the admin API) is submitted to the Log instead of stamped by the
// Ring, and the Hub delivers room messages only as the Log hands them
// back (logDeliverer.Deliver): built once, put in the Ring under the Log's
// stamp (chat.Ring.Put) and fanned out as the Ring's own Appends are. So
// every box delivers each room in the Log's order, and the Ring is the
// box's hot copy of it.
//
// Joins are served from the Ring when it covers what they ask; otherwise
// the Log is read with no lock held, and what it returned is merged under
// the room's lock with what the Log delivered meanwhile (joinLogged), so
// the seam between the replay and the live messages has no gap and no
// duplicate. The Log's delivery may lag its Read: a message the join
// replayed from the Read and that is fanned out afterwards is skipped for
// that sub (lagFilter).
//
// When the Log fails a Submit (chat.ErrUnavailable, a timeout), the box
// keeps the room going alone: the message is delivered here under an
// epoch of the box's own (chat.Ring.AppendIn), so a client that counted in
// the Log's epoch learns, when it rejoins, that it cannot recover
// (recovered:false), never a silent hole; the room returns to the Log's
// epoch with the next message the Log delivers for it.
//
// With a Bridge too, room messages travel only through the Log: the Hub
// does not forward them, and drops the ones the bus brings. Direct
// messages and key claims keep the bus. A message to every room
// (PublishAll) still crosses the bus, and each box submits it to each room
// it has members in, under one client id derived from the text
// (allRoomsID), so the Log's dedup keeps one copy per room however many
// boxes share the room; the same text to every room twice within the
// dedup window is one message.

// Defaults of the Log side.
const (
	// DefaultLogPublishTimeout bounds how long Publish waits for the Log
	// to order an admin message.
	DefaultLogPublishTimeout = 2 * time.Second
	// DefaultLogReads is how many Reads of the Log for cold joins run at
	// once: each holds a goroutine, and a store slower than the joins
	// arrive queues them rather than piling Reads on it.
	DefaultLogReads = 4
	// DefaultLogReadQueue is how many cold joins wait for a reader; past
	// it a join is answered from the Ring alone (Stats.LogReadsShed).
	DefaultLogReadQueue = 1024
	// DefaultLogReadTimeout bounds a cold join's wait (queued and read):
	// past it the join is answered from the Ring alone. Above
	// history.DefaultReadTimeout (5 s) plus a wait in the queue, so a
	// store that answers at all answers the join.
	DefaultLogReadTimeout = 8 * time.Second
	// logJoinRetries bounds the Reads of one join when the Ring's run
	// starts after what the Read returned (a Reset between the two).
	logJoinRetries = 3
	// submitCost is what a Submit waiting for the Log holds beyond its
	// text and id (the message, the callback, the Log's own entry), as
	// charged to the outbound budget.
	submitCost = 512
)

// HistoryOutcome is what the Log did with a room message that started
// here.
type HistoryOutcome uint8

const (
	// HistoryNone: no Log; the Ring stamped it.
	HistoryNone HistoryOutcome = iota
	// HistoryStored: the Log ordered and kept it.
	HistoryStored
	// HistoryDuplicate: the Log had it already (same sender and id).
	HistoryDuplicate
	// HistoryLocal: the Log failed it; delivered on this box alone under
	// a box-local epoch.
	HistoryLocal
	// HistoryPending: submitted, not yet answered (Publish's wait timed
	// out; it may still be ordered).
	HistoryPending
)

var historyOutcomeNames = [...]string{"", "stored", "duplicate", "local", "pending"}

func (o HistoryOutcome) String() string {
	if int(o) < len(historyOutcomeNames) {
		return historyOutcomeNames[o]
	}
	return "unknown"
}

// logState is the Hub's side of its Log.
type logState struct {
	log      chat.Log
	startErr error
	mu       sync.Mutex
	local    map[string]string // room → its box-local epoch while the Log fails it
	nlocal   int               // len(local), read under mu
	reads    chan *coldJoin    // cold joins waiting for a reader (logread.go)
}

// lagFilter is a sub's guard against the Log's delivery lagging behind
// its Read: a live message of epoch with seq <= seq was replayed already.
type lagFilter struct {
	epoch string
	seq   uint64
}

func (f *lagFilter) skip(m *message) bool {
	return f != nil && m.seq <= f.seq && m.epoch == f.epoch
}

// logDeliverer is the Hub as its Log's chat.Deliverer.
type logDeliverer struct{ h *Hub }

// startLog starts the Log's delivery to h.
func (h *Hub) startLog() {
	if h.cfg.Log == nil {
		return
	}
	h.lg.log = h.cfg.Log
	h.lg.startErr = h.lg.log.Start(logDeliverer{h})
	h.startLogReaders() // logread.go
}

// LogError is the error the Log's Start returned, nil without a Log.
func (h *Hub) LogError() error { return h.lg.startErr }

// Deliver implements chat.Deliverer: m is a room message the Log ordered
// (from any box). It is built once, put in the Ring under the Log's
// stamp, and fanned out (message.Publish) with the room's log locked.
func (d logDeliverer) Deliver(cm *chat.Message) {
	h := d.h
	h.inflight.Add(1)
	defer h.inflight.Add(-1)
	if h.draining.Load() {
		return
	}
	h.stats.LogDelivered.Add(1)
	h.leaveLocalEpoch(cm.Room)
	m := h.newMessage(cm.Text)
	if h.cfg.OnFanout != nil {
		m.at = time.Now()
	}
	if !h.ring.Put(cm, m) {
		h.stats.LogStale.Add(1)
	}
	m.doneBuilding()
}

// Reset implements chat.Deliverer: the Ring's copy of room ("" every
// room) is dropped and read from the Log when next needed.
func (d logDeliverer) Reset(room string) {
	d.h.stats.LogResets.Add(1)
	d.h.ring.Drop(room)
}

// leaveLocalEpoch ends room's box-local epoch, if it has one: the Log
// delivers it again.
func (h *Hub) leaveLocalEpoch(room string) {
	h.lg.mu.Lock()
	if h.lg.nlocal > 0 {
		if _, ok := h.lg.local[room]; ok {
			delete(h.lg.local, room)
			h.lg.nlocal--
		}
	}
	h.lg.mu.Unlock()
}

// localEpoch returns room's box-local epoch, starting one (counted) if the
// room has none.
func (h *Hub) localEpoch(room string) string {
	h.lg.mu.Lock()
	defer h.lg.mu.Unlock()
	if e, ok := h.lg.local[room]; ok {
		return e
	}
	if h.lg.local == nil {
		h.lg.local = make(map[string]string)
	}
	e := chat.NewEpoch()
	h.lg.local[room] = e
	h.lg.nlocal++
	h.stats.LogLocalEpochs.Add(1)
	return e
}

// inLocalEpoch reports whether epoch is room's box-local one.
func (h *Hub) inLocalEpoch(room, epoch string) bool {
	h.lg.mu.Lock()
	defer h.lg.mu.Unlock()
	return h.lg.nlocal > 0 && h.lg.local[room] == epoch
}

// submit hands a room message that started here to the Log. then, if not
// nil, runs on the Log's goroutine once it is ordered (or answered as a
// duplicate), or, if the Log failed it, once it was delivered here under
// the room's box-local epoch (st zero if the Hub is draining).
func (h *Hub) submit(room string, text []byte, key string, id []byte, then func(st chat.Stamp, o HistoryOutcome)) {
	// The Log copies m before Submit returns; the fallback needs the text
	// and id later.
	text, id = append([]byte(nil), text...), append([]byte(nil), id...)
	if len(id) == 0 {
		id = nil
	}
	// What waits for the Log is charged to the outbound budget, so a
	// slow Log pauses senders as full queues do, rather than growing.
	cost := submitCost + int64(2*len(text)+2*len(id)+len(room)+len(key))
	h.out.add(cost)
	h.lg.log.Submit(&chat.Message{Room: room, From: key, ID: id, Text: text}, func(st chat.Stamp, dup bool, err error) {
		defer h.out.add(-cost)
		o := HistoryStored
		switch {
		case err != nil:
			h.stats.LogWritesFailed.Add(1)
			st, o = h.deliverLocal(room, text, key, id), HistoryLocal
		case dup:
			h.stats.LogDuplicates.Add(1)
			o = HistoryDuplicate
		}
		if then != nil {
			then(st, o)
		}
	})
}

// deliverLocal delivers a room message the Log failed on this box alone,
// under the room's box-local epoch, and returns its stamp.
func (h *Hub) deliverLocal(room string, text []byte, key string, id []byte) chat.Stamp {
	h.inflight.Add(1)
	defer h.inflight.Add(-1)
	if h.draining.Load() {
		return chat.Stamp{}
	}
	m := h.newMessage(text)
	if h.cfg.OnFanout != nil {
		m.at = time.Now()
	}
	st := h.ring.AppendIn(h.localEpoch(room), chat.Message{Room: room, From: key, ID: id, Text: m.seed.body}, m)
	m.doneBuilding()
	return st
}

// deliverLogged is deliverFrom for a room or every room with a Log: the
// Delivery's Local is the members the message will reach here (counted
// now; the Log delivers it a moment later).
func (h *Hub) deliverLogged(t target, text []byte, from origin, key string, id []byte) Delivery {
	h.inflight.Add(1)
	defer h.inflight.Add(-1)
	var d Delivery
	if h.draining.Load() {
		if from == fromHere && h.cfg.Bridge != nil && t.kind == toAll {
			d.Cluster = ClusterFailed
		}
		return d
	}
	switch {
	case t.kind == toRoom && from == fromRemote:
		// The bus is not the room's path with a Log: whatever a box
		// without one sent is not in the room's order.
		h.stats.LogBusDropped.Add(1)
		return d
	case t.kind == toRoom:
		d.Local = h.table.roomCount(t.name)
		d.History = HistoryPending
		h.stats.Broadcasts.Add(1)
		h.submit(t.name, text, key, id, nil)
	case t.kind == toAll:
		for room, n := range h.table.roomCounts() {
			d.Local += n
			h.submit(room, text, "", allRoomsID(room, text), nil)
			if from == fromHere {
				h.stats.Broadcasts.Add(1)
			}
		}
		if from == fromHere {
			d.Cluster = ClusterNone
			if b := h.cfg.Bridge; b != nil {
				d.Cluster = ClusterFailed
				if b.ForwardAll(text) {
					d.Cluster = ClusterSent
				}
			}
		}
	}
	return d
}

// allRoomsID is the client id a message to every room is submitted to
// room with: the same on every box for the same room and text, so the
// Log keeps one copy per room (its dedup, by sender and id, spans rooms)
// whichever boxes submit it.
func allRoomsID(room string, text []byte) []byte {
	f := fnv.New64a()
	f.Write([]byte(room))
	f.Write([]byte{0})
	f.Write(text)
	return strconv.AppendUint([]byte("*"), f.Sum64(), 36)
}

// publishLogged is Publish with a Log: submitted, and answered with the
// Log's stamp once it is ordered, or after LogPublishTimeout with
// HistoryPending.
func (h *Hub) publishLogged(room string, text []byte) Delivery {
	type answer struct {
		st chat.Stamp
		o  HistoryOutcome
	}
	ch := make(chan answer, 1)
	if h.draining.Load() {
		return Delivery{}
	}
	d := Delivery{Local: h.table.roomCount(room), History: HistoryPending}
	h.stats.Broadcasts.Add(1)
	h.submit(room, text, "", nil, func(st chat.Stamp, o HistoryOutcome) { ch <- answer{st, o} })
	t := time.NewTimer(h.cfg.LogPublishTimeout)
	defer t.Stop()
	select {
	case a := <-ch:
		d.History, d.Seq, d.Epoch, d.TS = a.o, a.st.Seq, a.st.Epoch, a.st.TS
		if a.st.Seq == 0 {
			d.History = HistoryNone
		}
	case <-t.C:
	}
	return d
}

// send1Logged is send1's broadcast with a Log: the ack (or the duplicate
// ack) goes out when the Log answers, on its goroutine, and only if c
// still holds its key in the table then (ackLater).
func (c *Conn) send1Logged(room string, cmd *chat.Command) error {
	h := c.hub
	now := time.Now().UnixNano()
	if err := h.deliveryAllowed(c, now); err != nil {
		return err
	}
	if h.draining.Load() {
		c.sendError(cmd.ID, chat.CodeUnavailable, refusedReason(chat.CodeUnavailable))
		return nil
	}
	h.chargeDeliveries(c, now, h.table.roomCount(room))
	h.stats.Broadcasts.Add(1)
	id := append([]byte(nil), cmd.ID...)
	if cmd.ID == nil {
		id = nil
	}
	key := c.key
	h.submit(room, cmd.Text, key, id, func(st chat.Stamp, o HistoryOutcome) {
		if st.Seq == 0 {
			h.ackLater(c, chat.AppendError(nil, id, chat.CodeUnavailable, refusedReason(chat.CodeUnavailable)))
			return
		}
		a := chat.Ack{Room: room, Stamp: st}
		if id != nil {
			h.dedup.Put(key, id, a)
		}
		h.ackLater(c, chat.AppendAck(nil, id, &a, o == HistoryDuplicate))
	})
	return nil
}

// ackLater queues env for c from a goroutine other than c's OnReady: only
// while c holds its key in the table (under the key's shard lock, as a
// direct message is), so a connection closed or replaced meanwhile is
// never written.
func (h *Hub) ackLater(c *Conn, env []byte) {
	s := h.table.shardOf(c.key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !c.inTable || s.byKey.get(c.key) != c {
		h.stats.LogAcksDropped.Add(1)
		return
	}
	c.send(c.envelopeFrame(env))
}

// readCopy is what a join read from the Log: the messages' envelopes,
// built once here (a cold join is rare; each costs its Read anyway).
type readCopy struct {
	ents  []chat.Entry
	bytes int64 // charged to the outbound budget until the join is done
}

func (rc *readCopy) add(m *chat.Message) {
	env := chat.AppendMessage(nil, m)
	rc.ents = append(rc.ents, chat.Entry{Seq: m.Seq, TS: m.TS, Frame: env})
	rc.bytes += int64(cap(env)) + 48
}

// joinLogged is runJoin's Ring step with a Log: v.join is answered from
// the Ring if it covers it; else a Read of the Log is queued (logread.go)
// and joinLogged reports true: the join is pending, answered once the
// Read is in (mergeRead) or has timed out.
func (c *Conn) joinLogged() (pending bool) {
	v, h := c.v1, c.hub
	j := &v.join
	hot := false
	h.ring.Locked(j.room, func(view chat.View) {
		info, ok := view.Info()
		if !ok {
			return
		}
		// A room the box orders alone (the Log failing) is answered by
		// the Ring: whatever the client counted in, it is not this epoch.
		if !h.inLocalEpoch(j.room, info.Epoch) {
			switch {
			case j.hasSince && j.epoch == info.Epoch && !chat.Recoverable(info, j.since, j.epoch):
				return // older than the Ring, or ahead of it (its delivery lags)
			case !j.hasSince && j.history > info.Len && info.First > 1:
				return // asks for more than the Ring holds, and the room had more
			}
		}
		hot = true
		h.stats.LogRingHits.Add(1)
		c.attachRing(view, info)
	})
	if hot {
		return false
	}
	if c.startCold(0, nil) {
		return true
	}
	h.stats.LogReadsShed.Add(1) // every reader busy and the queue full
	c.answerFromRing(false)
	return false
}

// attachRing attaches v.join to what the Ring holds of the room (view,
// info) and replays what it covers; the room is locked.
func (c *Conn) attachRing(view chat.View, info chat.Info) {
	j := &c.v1.join
	if s := view.Seeded(); s > 0 {
		// The room holds messages a Read put there that the Log has not
		// delivered here yet: replayed now, skipped when they come live.
		j.lag = &lagFilter{epoch: info.Epoch, seq: s}
	}
	c.reader().Attach(info)
	switch {
	case !j.attached:
	case j.recovered:
		view.Replay(c.reader(), j.since)
	case !j.hasSince:
		view.Replay(c.reader(), info.Seq-uint64(j.expect))
	}
}

// answerFromRing answers v.join from the Ring alone: the Log could not
// be read (an error, no answer within LogReadTimeout, too many joins
// waiting). A room the Ring holds is answered with its position and
// what it covers (recovered:false for a since it does not). One it holds
// nothing of has no position to give: after a Read error (the store is
// away) the Ring starts the room in an epoch of the box's, as when the
// store fails a write, so the box keeps admitting clients; when the store
// is only slow or busy, the join is refused with unavailable (the first
// join of a connection: 503) rather than answered with a position that
// is not the room's, and a retry may find the store.
func (c *Conn) answerFromRing(failed bool) {
	v, h := c.v1, c.hub
	j := &v.join
	known := false
	h.ring.Locked(j.room, func(view chat.View) {
		info, ok := view.Info()
		if !ok {
			return
		}
		known = true
		c.attachRing(view, info)
	})
	switch {
	case known:
	case failed && j.hasSince:
		h.ring.Since(j.room, j.since, j.epoch, c.reader()) // a room it has not: a new epoch
	case failed:
		h.ring.Last(j.room, j.history, c.reader())
	default:
		j.refused, j.storeSlow = chat.CodeUnavailable, true
	}
}

// mergeRead answers v.join with what the Log's Read returned (info, rc:
// the room's last HistorySize messages) and what the Ring holds of the
// room past it, with the room's log locked: the replay is the Read's
// messages (those after since, or the last history), then the Ring's past
// the Read's top, and the sub takes live messages from there. The Read's
// messages then seed the Ring (chat.View.Seed) when they are the room's
// latest, so the next join is served from memory. It reports false,
// having done nothing, if the Ring's run starts after the Read's top (a
// Reset between the two): the caller reads again.
func (c *Conn) mergeRead(info chat.Info, rc *readCopy) (done bool) {
	v, h := c.v1, c.hub
	j := &v.join
	h.ring.Merging(j.room, func(view chat.View) {
		rinfo, ok := view.Info()
		same := ok && rinfo.Epoch == info.Epoch
		ahead := same && rinfo.Seq > info.Seq
		if ahead && rinfo.First > info.Seq+1 {
			return
		}
		done = true
		read := rc.ents
		// Contiguous with the room's top: the Read returned its latest.
		latest := len(read) > 0 && read[len(read)-1].Seq == info.Seq
		if j.hasSince {
			i := 0
			for i < len(read) && read[i].Seq <= j.since {
				i++
			}
			read = read[i:]
		}
		top, ringN := info.Seq, 0
		if ahead {
			top, ringN = rinfo.Seq, int(rinfo.Seq-info.Seq)
		}
		// The position Attach sees: what the Read and the Ring hold
		// together, contiguous from the first read message.
		n := len(read) + ringN
		ai := chat.Info{Room: j.room, Seq: top, Epoch: info.Epoch, First: top - uint64(n) + 1, Len: n}
		if len(read) > 0 && !latest {
			ai.First, ai.Len = top+1, 0 // not contiguous with the top: nothing to recover
		}
		if j.hasSince && len(read) > 0 && read[0].Seq != j.since+1 {
			ai.First = top + 1 // the Read does not reach back to since
		}
		// Messages up to the Read's top may still be on their way to this
		// box (when the Ring is not past them), and those the Ring holds
		// from an earlier Read too: this sub has them from the replay.
		lag, lagged := uint64(0), !ahead
		if !ahead {
			lag = info.Seq
		}
		if s := view.Seeded(); same && s > lag {
			lag, lagged = s, true
		}
		if lagged {
			j.lag = &lagFilter{epoch: info.Epoch, seq: lag}
		}
		c.reader().Attach(ai)
		if j.attached && !(j.hasSince && !j.recovered) {
			skip := n - j.expect // Last: the oldest not asked for
			for i := range read {
				if i >= skip {
					c.reader().Replay(read[i])
				}
			}
			if ringN > 0 {
				view.Replay(c.reader(), info.Seq+uint64(max(0, skip-len(read))))
			}
		}
		if latest {
			h.seedLocked(view, info, rc)
		}
	})
	return done
}

// seedLocked puts what a Read returned of the room's latest messages in
// the Ring (view, the room locked). A run the box orders alone is of
// another epoch: Seed leaves it.
func (h *Hub) seedLocked(view chat.View, info chat.Info, rc *readCopy) {
	if k := view.Seed(info.Epoch, info.Seq, rc.ents); k > 0 {
		h.stats.LogSeeded.Add(uint64(k))
	}
}
