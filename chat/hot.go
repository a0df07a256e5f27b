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
	case m.Seq <= l.top:
		return false
	}
	l.top = m.Seq
	r.keep(l, m, sink)
	return true
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

// Info describes the room's log; false if it has none.
func (v View) Info() (Info, bool) {
	if v.l == nil {
		return Info{}, false
	}
	return v.l.info(), true
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
