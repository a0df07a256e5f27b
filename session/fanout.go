package session

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsd-chat/wsd/codec"
)

// Broadcast fan-out. A message is queued on each shard with members in its
// room; the shard's fan-out task, run on a worker, takes everything queued
// since its last run and writes it to every member with one write (or
// writev) per member. Shards run in parallel on the workers; within a shard
// messages keep their order, so every receiver sees one sender's messages in
// the order they were sent.

// outboxEntry is one thing waiting for a shard's fan-out: a broadcast, or
// a connection to close once every broadcast queued before has been handed
// to it (which keeps a peer's close reply behind the echo of the messages
// it sent before closing).
type outboxEntry struct {
	msg      *message
	room     string // msg's room here: one message may be queued for several
	close    *Conn
	closeErr *codec.CloseError
}

// Back-pressure by shard. The fan-out of a shard takes its backlog in turn
// with the other shards' (fanoutQuantum), so a flood into one room costs
// the others a quantum of latency, not the flood's; but what waits in the
// flooded shard — other rooms' broadcasts queued behind the flood, in
// order — waits for the backlog ahead of it. So the backlog is bounded: a
// client whose message finds a shard with more than maxBacklog entries
// waiting (queued or taken and not yet delivered) stops being read, its
// bytes left in the kernel (TCP back-pressure, as for the outbound
// budget), until the shard is down to half of it. Only the clients
// feeding a full shard wait; everyone else, in other shards, is read as
// before. What one client adds past the bound is what one read of its
// socket holds, so a client held lately reads in small pieces (readSize):
// a read of 16 KiB is 2,730 empty messages, and as many entries in each
// shard of its room.
const maxBacklog = 1024

// heldReadSize is the read of a client held within heldMemory, in bytes.
const (
	heldReadSize = 1 << 10
	heldMemory   = time.Second
)

// readSize is how much c's next read takes: less, for a while, once a
// shard's backlog held it.
func (c *Conn) readSize() int {
	if at := c.heldAt.Load(); at != 0 && time.Now().UnixNano()-at < int64(heldMemory) {
		return heldReadSize
	}
	return readBufSize
}

// maxSpareOutbox bounds the outbox kept for reuse after a run, in entries.
const maxSpareOutbox = 1024

// maxFanoutChunk bounds the entries delivered at once, and with them the
// fan-out's scratch space (a member's items for one room run). Past 64
// frames a member's writes take several writev calls anyway.
const maxFanoutChunk = 256

// fanout is one shard's fan-out: its outbox and the task that empties it.
type fanout struct {
	shard *shard

	mu        sync.Mutex
	outbox    []outboxEntry
	spare     []outboxEntry // the previous outbox, reused to avoid allocating
	scheduled bool          // a Run is submitted or running

	// Used only by the running task: the batch it took from the outbox
	// and how far it has delivered it, kept across a yield.
	taken []outboxEntry
	next  int

	backlog  atomic.Int64 // entries queued or taken, not yet delivered
	holding  []*Conn      // clients not read until the backlog drains; guarded by mu
	nHolding atomic.Int32 // len(holding), read without mu by release

	// Scratch space, used only by the running task.
	roomRun []*message
	grouped []bool
	items   []outItem
}

// add queues e and schedules the fan-out task if it is not already.
func (f *fanout) add(e outboxEntry) {
	if e.msg != nil {
		e.msg.retainBuilder()
	}
	// The caller charges the entry to the outbound budget: a backlog costs
	// its entries while it lasts (a large slice is not kept after its run;
	// what is kept is in WorstCase's fan-out term).
	f.backlog.Add(1)
	f.mu.Lock()
	f.outbox = append(f.outbox, e)
	run := !f.scheduled
	f.scheduled = true
	f.mu.Unlock()
	if run {
		f.shard.hub.reactor.Submit(f)
	}
}

// idle reports whether nothing waits for this fan-out.
func (f *fanout) idle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.scheduled && len(f.outbox) == 0
}

// fanoutQuantum bounds the frames one Run hands to members before it
// yields: past it, the task queues itself again behind every other ready
// task (the reactor's task queue is FIFO), so the workers take the shards'
// fan-outs in turn and one flooded room cannot hold a worker, or make the
// rooms of other shards wait, for longer than a quantum. 4,096 frames is a
// few dozen writev calls: small beside a tick of latency, large beside
// the cost of queueing the task again.
const fanoutQuantum = 4096

// Run is the fan-out task (poller.Task). It delivers what it took from
// the outbox, chunk by chunk, in order, and takes the next outbox once
// that is done, until the outbox is empty or it has done a quantum.
func (f *fanout) Run() {
	for work := 0; work < fanoutQuantum; {
		if f.next == len(f.taken) && !f.take() {
			return
		}
		chunk := f.taken[f.next:min(f.next+maxFanoutChunk, len(f.taken))]
		work += f.deliver(chunk) + len(chunk)
		if obs := f.shard.hub.cfg.OnFanout; obs != nil {
			observeFanout(obs, chunk)
		}
		for i, e := range chunk {
			if e.msg != nil {
				e.msg.doneBuilding()
			}
			chunk[i] = outboxEntry{}
		}
		f.shard.hub.out.add(-int64(len(chunk)) * outboxCost)
		if f.backlog.Add(-int64(len(chunk))) <= maxBacklog/2 {
			f.release()
		}
		f.next += len(chunk)
		if f.next == len(f.taken) {
			f.recycle()
		}
	}
	// The quantum is spent with work left (scheduled stays true, so add
	// does not submit the task twice).
	f.shard.hub.reactor.Submit(f)
}

// full reports whether the backlog is past maxBacklog.
func (f *fanout) full() bool { return f.backlog.Load() > maxBacklog }

// hold stops reading c until the backlog is down to half of maxBacklog.
// A client is held by one shard at a time: its next message, once
// released, finds any other full one.
func (f *fanout) hold(c *Conn) {
	if !c.flags.trySet(flagHeld) {
		return
	}
	c.heldAt.Store(time.Now().UnixNano())
	f.shard.hub.stats.FanoutHolds.Add(1)
	f.mu.Lock()
	f.holding = append(f.holding, c)
	f.nHolding.Store(int32(len(f.holding)))
	f.mu.Unlock()
	// The backlog may have drained between full and the append, with
	// nobody left to notice.
	if f.backlog.Load() <= maxBacklog/2 {
		f.release()
	}
}

// release resumes reading the clients the backlog held. It is called
// after every chunk once the backlog is low, so it costs an atomic load
// when nobody is held.
func (f *fanout) release() {
	if f.nHolding.Load() == 0 {
		return
	}
	f.mu.Lock()
	held := f.holding
	f.holding = nil
	f.nHolding.Store(0)
	f.mu.Unlock()
	for _, c := range held {
		c.flags.clear(flagHeld)
	}
	if len(held) > 0 {
		resume(held)
	}
}

// take makes the outbox the running task's work, or, if nothing is
// queued, ends the task and reports false.
func (f *fanout) take() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.outbox) == 0 {
		f.scheduled = false
		return false
	}
	f.taken, f.next = f.outbox, 0
	f.outbox, f.spare = f.spare[:0], nil
	return true
}

// recycle keeps the delivered batch's slice for reuse as an outbox (a
// large one is let go) and resumes paused readers: what was delivered may
// have brought the outbound budget back under.
func (f *fanout) recycle() {
	entries := f.taken
	f.taken, f.next = nil, 0
	if cap(entries) > maxSpareOutbox {
		entries = nil
	}
	f.mu.Lock()
	f.spare = entries[:0]
	f.mu.Unlock()
	f.shard.hub.resumeReaders()
}

// observeFanout reports the latency of the oldest broadcast in entries.
func observeFanout(obs func(time.Duration), entries []outboxEntry) {
	var oldest time.Time
	for _, e := range entries {
		if e.msg != nil && !e.msg.at.IsZero() && (oldest.IsZero() || e.msg.at.Before(oldest)) {
			oldest = e.msg.at
		}
	}
	if !oldest.IsZero() {
		obs(time.Since(oldest))
	}
}

// deliver hands entries over in order: broadcasts in runs, coalesced per
// member, and each close once everything before it has been handed over.
// It returns the frames handed over.
func (f *fanout) deliver(entries []outboxEntry) int {
	start, frames := 0, 0
	for i, e := range entries {
		if e.close != nil {
			frames += f.deliverRun(entries[start:i])
			e.close.requestClose(e.closeErr)
			start = i + 1
		}
	}
	return frames + f.deliverRun(entries[start:])
}

// deliverRun delivers a run of broadcasts, grouped by room, and returns
// the frames handed over.
func (f *fanout) deliverRun(run []outboxEntry) int {
	if len(run) == 0 {
		return 0
	}
	frames := 0
	if cap(f.grouped) < len(run) {
		f.grouped = make([]bool, len(run))
	}
	grouped := f.grouped[:len(run)]
	clear(grouped)
	for i, e := range run {
		if grouped[i] {
			continue
		}
		// This room's messages, in the order they were queued.
		msgs := append(f.roomRun[:0], e.msg)
		for j := i + 1; j < len(run); j++ {
			if !grouped[j] && run[j].room == e.room {
				msgs = append(msgs, run[j].msg)
				grouped[j] = true
			}
		}
		frames += f.deliverRoom(e.room, msgs)
		clear(msgs)
		f.roomRun = msgs[:0]
	}
	return frames
}

// deliverRoom writes msgs to every member of the room in this shard and
// returns the frames handed over.
func (f *fanout) deliverRoom(name string, msgs []*message) int {
	s := f.shard
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.rooms[name]
	if r == nil {
		return 0
	}
	var frames, saved uint64
	for _, c := range r.members {
		items := f.items[:0]
		for _, m := range msgs {
			v := m.variantFor(c)
			b := m.frame(v)
			items = append(items, outItem{b: b, msg: m, v: uint8(v)})
			if v == varDeflate {
				saved += uint64(len(m.seed.text) - len(b))
			}
		}
		if c.deliver(items) {
			frames += uint64(len(msgs))
		}
		clear(items)
		f.items = items[:0]
	}
	subFrames, subSaved := f.deliverSubs(r, msgs) // v1.go
	frames, saved = frames+subFrames, saved+subSaved
	s.hub.stats.FramesOut.Add(frames)
	if saved != 0 {
		s.hub.stats.DeflateBytesSaved.Add(saved)
	}
	return int(frames)
}
