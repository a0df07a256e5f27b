package session

import "time"

// Broadcast fan-out. A message is queued on each shard with members in its
// room; the shard's fan-out task, run on a worker, takes everything queued
// since its last run and writes it to every member with one write (or
// writev) per member. Shards run in parallel on the workers; within a shard
// messages keep their order, so every receiver sees one sender's messages in
// the order they were sent.

// enqueue queues m for this shard's members and schedules the fan-out.
func (s *shard) enqueue(m *Message) {
	m.retain()
	s.obMu.Lock()
	s.outbox = append(s.outbox, m)
	run := !s.scheduled
	s.scheduled = true
	s.obMu.Unlock()
	if run {
		s.hub.reactor.Submit(s)
	}
}

// Run is the fan-out task (poller.Task).
func (s *shard) Run() {
	for {
		s.obMu.Lock()
		batch := s.outbox
		if len(batch) == 0 {
			s.scheduled = false
			s.obMu.Unlock()
			return
		}
		s.outbox = s.spare[:0]
		s.spare = nil
		s.obMu.Unlock()

		s.fanout(batch)
		if f := s.hub.cfg.OnFanout; f != nil {
			observeFanout(f, batch)
		}

		for i, m := range batch {
			m.release()
			batch[i] = nil
		}
		s.obMu.Lock()
		s.spare = batch[:0]
		s.obMu.Unlock()
	}
}

// observeFanout reports the latency of the oldest broadcast in batch.
func observeFanout(f func(time.Duration), batch []*Message) {
	var oldest time.Time
	for _, m := range batch {
		if !m.at.IsZero() && (oldest.IsZero() || m.at.Before(oldest)) {
			oldest = m.at
		}
	}
	if !oldest.IsZero() {
		f(time.Since(oldest))
	}
}

// fanout delivers a batch in order: runs of broadcasts room by room,
// coalescing per member, and close markers once everything before them
// has been handed over.
func (s *shard) fanout(batch []*Message) {
	start := 0
	for i, m := range batch {
		if m.closeConn != nil {
			s.fanoutRun(batch[start:i])
			m.closeConn.requestClose(m.closeErr)
			start = i + 1
		}
	}
	s.fanoutRun(batch[start:])
}

// fanoutRun delivers broadcasts, grouped by room.
func (s *shard) fanoutRun(run []*Message) {
	if len(run) == 0 {
		return
	}
	if cap(s.done) < len(run) {
		s.done = make([]bool, len(run))
	}
	done := s.done[:len(run)]
	clear(done)
	for i, m := range run {
		if done[i] {
			continue
		}
		// This room's messages, in the order they were queued.
		group := append(s.batch[:0], m)
		for j := i + 1; j < len(run); j++ {
			if !done[j] && run[j].room == m.room {
				group = append(group, run[j])
				done[j] = true
			}
		}
		s.deliverRoom(m.room, group)
		clear(group)
		s.batch = group[:0]
	}
}

// deliverRoom writes msgs to every member of the room in this shard.
func (s *shard) deliverRoom(name string, msgs []*Message) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.rooms[name]
	if r == nil {
		return
	}
	var frames uint64
	for _, c := range r.members {
		items := s.items[:0]
		for _, m := range msgs {
			items = append(items, outItem{b: m.frameFor(c.gzip), m: m})
		}
		if c.deliver(items) {
			frames += uint64(len(msgs))
		}
		clear(items)
		s.items = items[:0]
	}
	s.hub.stats.FramesOut.Add(frames)
}
