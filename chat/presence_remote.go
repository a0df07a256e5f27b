package chat

import "slices"

// Presence across boxes. With several boxes (wsd -nats-url) a room's
// members are the union of every box's: this box's own (Join, Arrive and
// the roster) and what the other boxes said they have (Remote*). The
// cluster bridge carries both ways: it takes this box's changes with
// LocalChanges and publishes them, and it applies what other boxes
// publish with RemoteSet, RemoteChange and RemoteDrop*. Remote changes
// go through the same coalescer as local ones, so a room's v1 members get
// at most one presence event per Interval whichever box a change came
// from, and a key that moves between boxes (on two of them for a moment)
// is counted once and emits nothing.
//
// Bounds: a box's keys in a room are kept up to ListMax; a box with more
// is kept as a count (its keys then may be counted twice during a move:
// such a room gets counts only anyway). The bridge only applies state of
// rooms this box has members in, so remote state is bounded by this box's
// rooms times the boxes.

// remoteRoom is what other boxes have said of one room.
type remoteRoom struct {
	boxes  map[string]*remoteBox
	keys   map[string]int // key → how many boxes list it
	counts int            // the counts of the boxes kept as counts only
	only   int            // keys in keys that are not local; valid unless stale
	stale  bool
}

// remoteBox is one box's members of a room: its keys, or (keys nil) a
// count only.
type remoteBox struct {
	keys  map[string]struct{}
	count int
}

// remoteStale notes that key may have become local or stopped being:
// if another box has it, the count of keys only other boxes have is
// recomputed when next needed.
func (r *presenceRoom) remoteStale(key string) {
	if r.remote != nil && r.remote.keys[key] > 0 {
		r.remote.stale = true
	}
}

func (p *Presence) remoteHas(r *presenceRoom, key string) bool {
	return r.remote != nil && r.remote.keys[key] > 0
}

// remoteCount is how many members of r only other boxes have. Recomputed
// after a change (at most ListMax keys per box, checked against the local
// set): a key on two boxes is counted once.
func (p *Presence) remoteCount(r *presenceRoom) int {
	rr := r.remote
	if rr == nil {
		return 0
	}
	if rr.stale {
		n := 0
		for k := range rr.keys {
			if !p.isLocal(r, k) {
				n++
			}
		}
		rr.only, rr.stale = n, false
	}
	return rr.only + rr.counts
}

// appendRemote appends up to max keys of r that only other boxes have.
func (p *Presence) appendRemote(dst []string, r *presenceRoom, max int) []string {
	for k := range r.remote.keys {
		if max <= 0 {
			break
		}
		if !p.isLocal(r, k) {
			dst = append(dst, k)
			max--
		}
	}
	return dst
}

// remoteBoxOf returns box's entry in r, made (listing keys) if none.
func (p *Presence) remoteBoxOf(r *presenceRoom, box string) *remoteBox {
	if r.remote == nil {
		r.remote = &remoteRoom{boxes: make(map[string]*remoteBox), keys: make(map[string]int)}
	}
	b := r.remote.boxes[box]
	if b == nil {
		b = &remoteBox{keys: make(map[string]struct{})}
		r.remote.boxes[box] = b
	}
	return b
}

func (p *Presence) addRemoteKey(r *presenceRoom, b *remoteBox, key string) {
	if _, ok := b.keys[key]; ok {
		return
	}
	b.keys[key] = struct{}{}
	rr := r.remote
	rr.stale = true
	rr.keys[key]++
	if rr.keys[key] == 1 && !p.isLocal(r, key) {
		p.unionJoined(r, key)
	}
}

func (p *Presence) delRemoteKey(r *presenceRoom, b *remoteBox, key string) {
	if _, ok := b.keys[key]; !ok {
		return
	}
	delete(b.keys, key)
	rr := r.remote
	rr.stale = true
	if rr.keys[key]--; rr.keys[key] <= 0 {
		delete(rr.keys, key)
		if !p.isLocal(r, key) {
			p.unionLeft(r, key)
		}
	}
}

// countOnly keeps box b of r as a count from now on.
func (p *Presence) countOnly(r *presenceRoom, b *remoteBox, count int) {
	for k := range b.keys {
		p.delRemoteKey(r, b, k)
	}
	if b.keys == nil {
		r.remote.counts -= b.count
	}
	b.keys, b.count = nil, count
	r.remote.counts += count
	p.markDirty(r)
}

// listing makes b, kept as a count, list keys again.
func (p *Presence) listing(r *presenceRoom, b *remoteBox) {
	if b.keys == nil {
		r.remote.counts -= b.count
		b.keys, b.count = make(map[string]struct{}), 0
		p.markDirty(r)
	}
}

// dropEmpty forgets box in r once it has no members there, and r's
// remote state once no box is left.
func (p *Presence) dropEmpty(r *presenceRoom, box string, b *remoteBox) {
	if (b.keys != nil && len(b.keys) > 0) || (b.keys == nil && b.count > 0) {
		return
	}
	p.dropBox(r, box, b)
}

func (p *Presence) dropBox(r *presenceRoom, box string, b *remoteBox) {
	for k := range b.keys {
		p.delRemoteKey(r, b, k)
	}
	if b.keys == nil {
		r.remote.counts -= b.count
	}
	delete(r.remote.boxes, box)
	if len(r.remote.boxes) == 0 {
		r.remote = nil
	}
	p.markDirty(r) // its count changed, or the room may go
}

// RemoteSet replaces what box has of room: keys when lists (at most
// ListMax: more are kept as a count), else count only. Keys that joined or
// left the union feed the room's next event.
func (p *Presence) RemoteSet(room, box string, keys []string, count int, lists bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.room(room)
	b := p.remoteBoxOf(r, box)
	if !lists || len(keys) > p.cfg.ListMax {
		p.countOnly(r, b, max(count, len(keys)))
		p.dropEmpty(r, box, b)
		return
	}
	p.listing(r, b)
	if len(b.keys) > 0 {
		in := make(map[string]struct{}, len(keys)) // a whole set is rare: once per box and room, or after a gap
		for _, k := range keys {
			in[k] = struct{}{}
		}
		for k := range b.keys {
			if _, ok := in[k]; !ok {
				p.delRemoteKey(r, b, k)
			}
		}
	}
	for _, k := range keys {
		p.addRemoteKey(r, b, k)
	}
	p.dropEmpty(r, box, b)
}

// RemoteChange applies a change box made to its members of room: the
// keys that joined and left (lists), or its new count. A box kept here as
// a count stays one, at the change's count: it lists again only with its
// whole set (RemoteSet), which a box sends after a count-only change.
func (p *Presence) RemoteChange(room, box string, joined, left []string, count int, lists bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.room(room)
	b := p.remoteBoxOf(r, box)
	if !lists || b.keys == nil {
		p.countOnly(r, b, count)
		p.dropEmpty(r, box, b)
		return
	}
	for _, k := range left {
		p.delRemoteKey(r, b, k)
	}
	for _, k := range joined {
		p.addRemoteKey(r, b, k)
	}
	if len(b.keys) > p.cfg.ListMax {
		p.countOnly(r, b, max(count, len(b.keys)))
	}
	p.dropEmpty(r, box, b)
}

// RemoteDropBox forgets every member box has (its lease ran out, or it
// said it is gone); those no other box has leave. It returns how many
// rooms box had members in.
func (p *Presence) RemoteDropBox(box string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.rooms {
		if r.remote == nil {
			continue
		}
		if b := r.remote.boxes[box]; b != nil {
			p.dropBox(r, box, b)
			n++
		}
	}
	return n
}

// RemoteDropRoom forgets what other boxes have of room: this box no
// longer follows it (no member here). Its members here, if any are left
// in their grace, see the count drop.
func (p *Presence) RemoteDropRoom(room string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rooms[room]
	if r == nil || r.remote == nil {
		return
	}
	for box, b := range r.remote.boxes {
		p.dropBox(r, box, b)
	}
}

// LocalCount is room's members on this box, those in their grace
// included: while it is not 0 the box still has a say in the room.
func (p *Presence) LocalCount(room string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.rooms[room]; r != nil {
		return p.localCount(r)
	}
	return p.cfg.Roster.RosterCount(room)
}

// RemoteBoxes reports how many other boxes have members in the rooms
// this box follows.
func (p *Presence) RemoteBoxes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := make(map[string]struct{})
	for _, r := range p.rooms {
		if r.remote != nil {
			for box := range r.remote.boxes {
				seen[box] = struct{}{}
			}
		}
	}
	return len(seen)
}

// This box's changes, for the others (Share).

// localSet is the change set of this box's own keys in a room since it
// was last shared: like the coalescer's, at most ListMax keys of each
// kind (past that, overflow: the next share is the whole set or a count).
type localSet struct {
	joined, left map[string]struct{}
	overflow     bool
	snapshot     bool // a box asked for the whole set
}

// LocalChange is one room's change on this box since the last one
// shared, as LocalChanges hands it out; its slices are valid only during
// the call.
type LocalChange struct {
	Room string
	// Seq numbers the room's changes on this box, from 1 after the room
	// had no member here: a receiver that missed one asks for the whole
	// set, and seq 1 replaces whatever it had.
	Seq uint64
	// Snapshot: Keys is the box's whole set of the room, not what joined.
	Snapshot bool
	// Lists: Keys and Left are given; else the room has more than
	// ListMax keys here and Count is all there is.
	Lists bool
	Count int      // the room's members on this box
	Keys  []string // joined (or the whole set), sorted
	Left  []string // left, sorted
}

// localChanged records that key joined or left r on this box, for
// LocalChanges.
func (p *Presence) localChanged(r *presenceRoom, key string, joined bool) {
	if !p.cfg.Share {
		return
	}
	ls := p.localOf(r)
	if ls.overflow {
		return
	}
	in, out := &ls.joined, &ls.left
	if !joined {
		in, out = out, in
	}
	if _, ok := (*out)[key]; ok {
		delete(*out, key) // undone before it was shared
		return
	}
	if len(*in) >= p.cfg.ListMax {
		ls.overflow, ls.joined, ls.left = true, nil, nil
		return
	}
	if *in == nil {
		*in = make(map[string]struct{})
	}
	(*in)[key] = struct{}{}
}

func (p *Presence) localOf(r *presenceRoom) *localSet {
	if r.local == nil {
		r.local = &localSet{}
		p.ldirty = append(p.ldirty, r)
	}
	return r.local
}

// ShareAgain asks for room's whole set on this box at the next
// LocalChanges (another box missed a change, or is new); it reports
// false when the room has no member here.
func (p *Presence) ShareAgain(room string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rooms[room]
	if r == nil || p.localCount(r) == 0 {
		return false
	}
	p.localOf(r).snapshot = true
	return true
}

// ShareAllAgain is ShareAgain for every room with members here (after
// this box's changes may have been lost: a NATS reconnect).
func (p *Presence) ShareAllAgain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rooms {
		if p.localCount(r) > 0 {
			p.localOf(r).snapshot = true
		}
	}
}

// LocalChanges calls emit for every room changed on this box since the
// last call (Share only): the keys that joined and left, or the whole set
// (asked for, or after an overflow or a count-only share), or a count
// only past ListMax. Call it once per Interval: changes within one
// call's span go as one. emit runs with the Presence locked and must not
// call back into it.
func (p *Presence) LocalChanges(emit func(*LocalChange)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.ldirty {
		p.ldirty[i] = nil
		ls := r.local
		r.local = nil
		n := p.localCount(r)
		lc := LocalChange{Room: r.name, Count: n, Lists: n <= p.cfg.ListMax}
		switch {
		case !lc.Lists:
		case ls.snapshot || ls.overflow || r.lCount:
			lc.Snapshot = true
			p.joined = p.localKeys(p.joined[:0], r)
			lc.Keys = p.joined
		case len(ls.joined) == 0 && len(ls.left) == 0:
			p.dropIfDone(r)
			continue // undone before it was shared
		default:
			lc.Keys = sortedKeys(p.joined[:0], ls.joined)
			lc.Left = sortedKeys(p.left[:0], ls.left)
			p.joined, p.left = lc.Keys, lc.Left
		}
		r.lseq++
		lc.Seq = r.lseq
		r.lCount = !lc.Lists
		emit(&lc)
		if n == 0 {
			r.lseq, r.lCount = 0, false // the next change starts from empty
		}
		p.dropIfDone(r)
	}
	p.ldirty = p.ldirty[:0]
}

// dropIfDone forgets r once nothing is left of it: Flush's rule, for a
// room whose last change was shared after its last event.
func (p *Presence) dropIfDone(r *presenceRoom) {
	if !r.isDirty && r.local == nil && r.remote == nil && p.count(r) == 0 {
		delete(p.rooms, r.name)
	}
}

// localKeys appends r's members on this box (ListMax at most), sorted.
func (p *Presence) localKeys(dst []string, r *presenceRoom) []string {
	n := len(dst)
	for k := range r.members {
		dst = append(dst, k)
	}
	dst = p.cfg.Roster.AppendRoster(dst, r.name, p.cfg.ListMax-(len(dst)-n))
	slices.Sort(dst[n:])
	return dst
}
