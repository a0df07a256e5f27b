package session

import (
	"sync"
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

// Run is the fan-out task (poller.Task).
func (f *fanout) Run() {
	for {
		f.mu.Lock()
		entries := f.outbox
		if len(entries) == 0 {
			f.scheduled = false
			f.mu.Unlock()
			return
		}
		f.outbox = f.spare[:0]
		f.spare = nil
		f.mu.Unlock()

		// In chunks, so the scratch space stays bounded however long the
		// backlog (and each chunk's messages are released as soon as it
		// is done).
		for start := 0; start < len(entries); start += maxFanoutChunk {
			chunk := entries[start:min(start+maxFanoutChunk, len(entries))]
			f.deliver(chunk)
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
		}
		if cap(entries) > maxSpareOutbox {
			entries = nil
		}
		f.mu.Lock()
		f.spare = entries[:0]
		f.mu.Unlock()
		f.shard.hub.resumeReaders()
	}
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
func (f *fanout) deliver(entries []outboxEntry) {
	start := 0
	for i, e := range entries {
		if e.close != nil {
			f.deliverRun(entries[start:i])
			e.close.requestClose(e.closeErr)
			start = i + 1
		}
	}
	f.deliverRun(entries[start:])
}

// deliverRun delivers a run of broadcasts, grouped by room.
func (f *fanout) deliverRun(run []outboxEntry) {
	if len(run) == 0 {
		return
	}
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
		f.deliverRoom(e.room, msgs)
		clear(msgs)
		f.roomRun = msgs[:0]
	}
}

// deliverRoom writes msgs to every member of the room in this shard.
func (f *fanout) deliverRoom(name string, msgs []*message) {
	s := f.shard
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.rooms[name]
	if r == nil {
		return
	}
	var frames, saved uint64
	for _, c := range r.members {
		items := f.items[:0]
		for _, m := range msgs {
			v := m.variantFor(c)
			b := m.frame(v)
			items = append(items, outItem{b: b, msg: m, v: uint8(v)})
			if v == varDeflate {
				saved += uint64(len(m.text) - len(b))
			}
		}
		if c.deliver(items) {
			frames += uint64(len(msgs))
		}
		clear(items)
		f.items = items[:0]
	}
	frames += f.deliverSubs(r, msgs) // v1.go
	s.hub.stats.FramesOut.Add(frames)
	if saved != 0 {
		s.hub.stats.DeflateBytesSaved.Add(saved)
	}
}
