package chat

// The Ring as a hot copy of a Log (durable.go): messages stamped elsewhere
// are put in it under their stamp, a box falling back to its own order
// appends under an epoch of its own, and a join that must combine what the
// Ring holds with what it read from the Log does so with the room locked.

// restart drops what l retains and makes it continue from top in epoch;
// l is locked.
func (r *Ring) restart(l *roomLog, epoch string, top uint64) {
	for l.n > 0 {
		r.pop(l, true)
	}
	l.epoch, l.top = epoch, top
	l.seeded, l.fed = 0, 0
}

// Put keeps m under the stamp it already has (a Log's) and hands it to
// sink, as Append does with the stamp it gives. A message that does not
// follow the room's top (another epoch, or a seq past top+1) restarts the
// room's retained run from it, so what the ring holds of a room is always
// one contiguous run of one epoch. A seq at or below the top of the same
// epoch was put already (a Log delivering again after a reconnect): it is
// neither kept nor published, and Put reports false.
func (r *Ring) Put(m *Message, sink Sink) bool {
	l := r.lock(m.Room, true)
	defer l.mu.Unlock()
	now := r.cfg.Now().UnixMilli()
	l.used = now
	r.expire(l, now)
	switch {
	case m.Epoch != l.epoch || m.Seq > l.top+1:
		r.restart(l, m.Epoch, m.Seq-1)
	case m.Seq <= l.top && m.Seq > l.fed && m.Seq <= l.seeded:
		// Seeded from a Read (View.Seed) before the Log delivered it
		// here: kept already, and now it goes out live.
		r.publishKept(l, m, sink)
		if l.fed = m.Seq; l.fed == l.seeded {
			l.seeded, l.fed = 0, 0
		}
		return true
	case m.Seq <= l.top:
		return false
	}
	// Past the seeded run: the Log delivers in order, so it delivered
	// every seeded message before this one.
	l.seeded, l.fed = 0, 0
	l.top = m.Seq
	r.keep(l, m, sink)
	return true
}

// publishKept hands sink m, which l holds already (or held: a seeded
// message the limits dropped before the Log delivered it); l is locked.
func (r *Ring) publishKept(l *roomLog, m *Message, sink Sink) {
	if sink == nil {
		return
	}
	if first := l.top - uint64(l.n) + 1; l.n > 0 && m.Seq >= first {
		s := &l.slots[(l.head+int(m.Seq-first))%len(l.slots)]
		sink.Publish(m.Room, m.Stamp, s.frame)
		return
	}
	sink.Publish(m.Room, m.Stamp, AppendMessage(nil, m))
}

// AppendIn is Append in epoch: if the room's run is of another epoch it
// restarts at seq 0 of epoch first (a box ordering a room alone while its
// Log is unavailable, under an epoch no client can mistake for the Log's).
func (r *Ring) AppendIn(epoch string, m Message, sink Sink) Stamp {
	l := r.lock(m.Room, true)
	defer l.mu.Unlock()
	now := r.cfg.Now().UnixMilli()
	l.used = now
	r.expire(l, now)
	if l.epoch != epoch {
		r.restart(l, epoch, 0)
	}
	l.top++
	m.Stamp = Stamp{Seq: l.top, Epoch: l.epoch, TS: now}
	r.keep(l, &m, sink)
	return m.Stamp
}

// View is a room's log as Locked shows it, valid only during fn.
type View struct {
	r *Ring
	l *roomLog
}

// Locked calls fn with room's log locked, so that what the caller decides
// from the View (and the Reader it attaches and replays to) is ordered
// against every Append and Put to the room, as Since's is. A room without
// a log gets none: the View says so. fn must not call back into the ring.
func (r *Ring) Locked(room string, fn func(v View)) {
	l := r.lock(room, false)
	if l == nil {
		fn(View{r: r})
		return
	}
	defer l.mu.Unlock()
	now := r.cfg.Now().UnixMilli()
	l.used = now
	r.expire(l, now)
	fn(View{r: r, l: l})
}

// Merging is Locked for a join that read the Log: a room without a log
// gets one for the call (no position: Info reports false), so what fn
// attaches is ordered against every Put, the one creating the room too,
// and fn may Seed it. If fn seeds nothing the room has no log again.
func (r *Ring) Merging(room string, fn func(v View)) {
	l := r.lockAs(room, true, false)
	now := r.cfg.Now().UnixMilli()
	l.used = now
	r.expire(l, now)
	fn(View{r: r, l: l})
	if l.epoch != "" {
		l.mu.Unlock()
		return
	}
	// Nothing seeded. Marked dead before the map lock is taken (the
	// lock order is the map's, then a room's): a Put meanwhile looks
	// the room up again and makes its own.
	l.dead = true
	held := l.held()
	l.mu.Unlock()
	r.mu.Lock()
	if r.rooms[room] == l {
		delete(r.rooms, room)
		r.charge(-held)
	}
	r.mu.Unlock()
}

// Info describes the room's log; false if it has none.
func (v View) Info() (Info, bool) {
	if v.l == nil || v.l.epoch == "" {
		return Info{}, false
	}
	return v.l.info(), true
}

// Seeded is the top of what the room holds from a Read (Seed) that the
// Log has not delivered here yet, 0 if nothing: a member replaying from
// the room must skip those seqs when they are delivered live.
func (v View) Seeded() uint64 {
	if v.l == nil {
		return 0
	}
	return v.l.seeded
}

// Seed keeps es, what a Read of the Log returned of the room (contiguous
// seqs of epoch, the last one top, the room's position in the Log), as
// if the Log had delivered them, so the next join is served from memory:
// a room with no log starts from them, and a run of epoch that es reach
// or overlap is extended with them, at either end. Anything else (a
// run of another epoch, es behind the run with a hole between, es not
// contiguous or not ending at top) is left as it is. Each entry's Frame
// is copied. The room's limits apply as to any message, and each kept
// message is charged. It returns how many of es the room holds now.
//
// A seeded message the Log delivers later (its delivery lags its Read)
// is published by Put and not kept again (Seeded).
func (v View) Seed(epoch string, top uint64, es []Entry) int {
	r, l := v.r, v.l
	if l == nil || len(es) == 0 || epoch == "" || es[len(es)-1].Seq != top {
		return 0
	}
	first := es[0].Seq
	for i := range es {
		if es[i].Seq != first+uint64(i) {
			return 0
		}
	}
	// fed: what the Log has delivered of the run (everything but the
	// seeded part). A room with no log has had nothing delivered since it
	// lost its copy, and the Log delivers each message once: any seq of
	// es it delivers later was not delivered before.
	var fed, seeded uint64
	switch ringFirst := l.top - uint64(l.n) + 1; {
	case l.epoch == "":
		fed, seeded = 0, top
		r.restart(l, epoch, first-1)
		r.seedAll(l, es, nil)
	case l.epoch != epoch || top+1 < ringFirst || (first >= ringFirst && top <= l.top):
		return 0
	default:
		fed, seeded = l.top, top
		if l.seeded != 0 {
			fed, seeded = l.fed, max(l.seeded, top)
		}
		if first >= ringFirst {
			r.seedAll(l, es, nil) // past the run's top
			break
		}
		// es start before the run: the run is rebuilt from es, then
		// what the run holds past them.
		var past []Entry
		for i := range l.n {
			s := &l.slots[(l.head+i)%len(l.slots)]
			if s.seq > top {
				past = append(past, Entry{Seq: s.seq, TS: s.ts, Frame: append([]byte(nil), s.frame...)})
			}
		}
		r.restart(l, epoch, first-1)
		r.seedAll(l, es, past)
	}
	if seeded > fed {
		l.seeded, l.fed = seeded, fed
	}
	r.expire(l, r.cfg.Now().UnixMilli())
	kept := 0
	if l.n > 0 {
		for _, e := range es {
			if e.Seq >= l.top-uint64(l.n)+1 {
				kept++
			}
		}
	}
	return kept
}

// seedAll keeps es and then more past the room's top, in order; l is
// locked.
func (r *Ring) seedAll(l *roomLog, es, more []Entry) {
	for _, list := range [2][]Entry{es, more} {
		for _, e := range list {
			if e.Seq != l.top+1 {
				continue
			}
			s := r.next(l)
			held := cap(s.frame)
			s.frame = append(s.frame[:0], e.Frame...)
			s.seq, s.ts = e.Seq, e.TS
			l.top = e.Seq
			r.kept(l, s, held)
			r.trim(l)
		}
	}
}

// Replay replays to rd the retained messages with seq greater than after,
// in seq order, and returns how many.
func (v View) Replay(rd Reader, after uint64) int {
	l := v.l
	if l == nil || l.n == 0 {
		return 0
	}
	first := l.top - uint64(l.n) + 1
	from := 0
	if after >= first {
		from = int(after - first + 1)
	}
	if from >= l.n {
		return 0
	}
	v.r.replay(l, rd, from)
	return l.n - from
}

// Drop forgets room's log ("" is every room), retained messages, seq and
// epoch: a Log said the box's copy may have a hole (Deliverer.Reset). The
// next Put starts the room again from the message it puts.
func (r *Ring) Drop(room string) {
	r.mu.Lock()
	var logs []*roomLog
	if room == "" {
		for _, l := range r.rooms {
			logs = append(logs, l)
		}
	} else if l := r.rooms[room]; l != nil {
		logs = append(logs, l)
	}
	for _, l := range logs {
		l.mu.Lock()
		l.dead = true
		delete(r.rooms, l.name)
		r.charge(-l.held())
		l.mu.Unlock()
	}
	r.mu.Unlock()
}
