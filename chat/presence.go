package chat

import (
	"slices"
	"sync"
	"time"
)

// Defaults of PresenceConfig.
const (
	DefaultPresenceInterval = time.Second
	DefaultPresenceGrace    = 5 * time.Second
	DefaultPresenceListMax  = 100
)

// PresenceConfig tunes a Presence.
type PresenceConfig struct {
	// Interval is the least time between two presence events of a room.
	Interval time.Duration
	// Grace is how long a key that left stays counted; rejoining within
	// it emits nothing. A negative Grace means none (0 takes the default).
	Grace time.Duration
	// ListMax: a room with more members than this gets counts only, and
	// a members answer lists at most this many keys.
	ListMax int
	Now     func() time.Time
	// Roster, if set, holds members the Presence counts without an entry
	// of its own (Arrive, Depart): wsd's seed connections, whose rooms
	// its session table knows already.
	Roster Roster
	// Share keeps the change set of this box's own keys for other boxes
	// (LocalChanges, presence_remote.go): wsd sets it with -nats-url.
	Share bool
}

// A Roster is a member set kept elsewhere that a Presence counts and
// lists as its own: the keys told by Arrive are counted through it from
// then on, and cost the Presence nothing until they Depart. Its methods
// are called with the Presence locked.
type Roster interface {
	// RosterCount is how many keys the roster has in room.
	RosterCount(room string) int
	// AppendRoster appends up to max of room's keys to dst.
	AppendRoster(dst []string, room string, max int) []string
	// InRoster reports whether key is in room's roster.
	InRoster(room, key string) bool
}

// noRoster is the Roster of a Presence that counts every key itself.
type noRoster struct{}

func (noRoster) RosterCount(string) int                              { return 0 }
func (noRoster) AppendRoster(dst []string, _ string, _ int) []string { return dst }
func (noRoster) InRoster(string, string) bool                        { return false }

// PresenceEvent is one coalesced presence change of a room: its count
// and, when Lists, the keys that joined and left since the room's last
// event (sorted). Its slices belong to the Presence and are valid only
// during the emit call that hands it out.
type PresenceEvent struct {
	Room   string
	Count  int
	Lists  bool
	Joined []string
	Left   []string
}

// Presence is the member set of every room, keyed by connection key (in
// wsd one key is one connection: a second one replaces the first), with
// O(1) counts, and the coalescer that turns joins and leaves into at most
// one PresenceEvent per room per Interval. It is safe for concurrent use.
//
// Memory: a room costs its member map (keys told by Join, and keys in
// their grace) and the keys changed since its last event, at most ListMax
// of each kind (past that an event carries the count only, so the keys
// are not kept); a key the Roster counts (Arrive, Enter) costs nothing
// while present: in wsd every connection's rooms are counted that way.
// Each Leave holds one pending entry for the grace, so a flapping key
// costs (its join/leave rate × Grace) entries, bounded by the session's
// command rate limit.
//
// A replace (close 4001) must not look like a leave and a join: the
// session does not call Leave for the rooms the replacing connection also
// holds, and even when it does, a Join of the same key within the grace
// cancels the Leave, so nothing is emitted.
type Presence struct {
	mu      sync.Mutex
	cfg     PresenceConfig
	rooms   map[string]*presenceRoom
	dirty   []*presenceRoom // rooms with changes not yet emitted
	ldirty  []*presenceRoom // rooms with local changes not yet shared (Share)
	leaving []pendingLeave  // in deadline order: Grace is one for all
	joined  []string        // scratch for events
	left    []string
}

type presenceRoom struct {
	name    string
	members map[string]int64 // key → the deadline of its pending leave, 0 when present; not the roster's
	// The keys that joined and left since the last event, nil when none;
	// dropped (overflow) once either passes ListMax, as the event will
	// carry the count only.
	joined   map[string]struct{}
	left     map[string]struct{}
	overflow bool
	isDirty  bool
	lastEmit int64 // ms; 0 never
	count    int   // the count last emitted

	remote *remoteRoom // other boxes' members, nil when none (presence_remote.go)
	local  *localSet   // this box's changes not yet shared, nil when none or not Share
	lseq   uint64      // the seq of this box's last shared change of the room; 0: none since it was empty
	lCount bool        // that change carried a count only
}

type pendingLeave struct {
	room     *presenceRoom
	key      string
	deadline int64
}

// NewPresence returns an empty Presence.
func NewPresence(cfg PresenceConfig) *Presence {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultPresenceInterval
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultPresenceGrace
	}
	if cfg.ListMax <= 0 {
		cfg.ListMax = DefaultPresenceListMax
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Roster == nil {
		cfg.Roster = noRoster{}
	}
	return &Presence{cfg: cfg, rooms: make(map[string]*presenceRoom)}
}

// room returns room's entry, made if there is none.
func (p *Presence) room(name string) *presenceRoom {
	r := p.rooms[name]
	if r == nil {
		r = &presenceRoom{name: name, members: make(map[string]int64)}
		p.rooms[name] = r
	}
	return r
}

// count is r's member count: its own entries, the roster's and the keys
// only other boxes have.
func (p *Presence) count(r *presenceRoom) int {
	return p.localCount(r) + p.remoteCount(r)
}

// localCount is r's members on this box.
func (p *Presence) localCount(r *presenceRoom) int {
	return len(r.members) + p.cfg.Roster.RosterCount(r.name)
}

// isLocal reports whether key is a member of r on this box.
func (p *Presence) isLocal(r *presenceRoom, key string) bool {
	_, ok := r.members[key]
	return ok || p.cfg.Roster.InRoster(r.name, key)
}

// joinedKey records that key joined r on this box: for the other boxes
// (Share), and for the room's next event unless another box has it
// already.
func (p *Presence) joinedKey(r *presenceRoom, key string) {
	p.localChanged(r, key, true)
	if p.remoteHas(r, key) {
		r.remote.stale = true // the union did not change; who holds it did
		return
	}
	p.unionJoined(r, key)
}

// leftKey is joinedKey for a key that left this box.
func (p *Presence) leftKey(r *presenceRoom, key string) {
	p.localChanged(r, key, false)
	if p.remoteHas(r, key) {
		r.remote.stale = true
		return
	}
	p.unionLeft(r, key)
}

// unionJoined records that key joined r (on any box) since its last
// event, or cancels its leave if it left meanwhile.
func (p *Presence) unionJoined(r *presenceRoom, key string) {
	p.markDirty(r)
	if r.overflow {
		return
	}
	if _, ok := r.left[key]; ok {
		delete(r.left, key) // left and came back before anyone was told
		return
	}
	r.joined = p.addKey(r, r.joined, key)
}

// unionLeft is unionJoined for a key that left.
func (p *Presence) unionLeft(r *presenceRoom, key string) {
	p.markDirty(r)
	if r.overflow {
		return
	}
	if _, ok := r.joined[key]; ok {
		delete(r.joined, key) // joined and left before anyone was told
		return
	}
	r.left = p.addKey(r, r.left, key)
}

// addKey adds key to set, one of r's change sets; past ListMax keys both
// sets go, and r's next event carries its count only.
func (p *Presence) addKey(r *presenceRoom, set map[string]struct{}, key string) map[string]struct{} {
	if len(set) >= p.cfg.ListMax {
		r.overflow, r.joined, r.left = true, nil, nil
		return nil
	}
	if set == nil {
		set = make(map[string]struct{})
	}
	set[key] = struct{}{}
	return set
}

func (p *Presence) markDirty(r *presenceRoom) {
	if !r.isDirty {
		r.isDirty = true
		p.dirty = append(p.dirty, r)
	}
}

// Join makes key a member of room and returns the room's count. A key
// already counted (present, or leaving within the grace, or in the
// roster) stays as it is: its pending leave is cancelled.
func (p *Presence) Join(room, key string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.room(room)
	r.remoteStale(key)
	_, had := r.members[key]
	r.members[key] = 0
	if had {
		return p.count(r)
	}
	if p.cfg.Roster.InRoster(room, key) {
		// Its roster entry is about to go (a connection replacing one of
		// the same key): counted once, and no join to tell.
		return p.count(r) - 1
	}
	p.joinedKey(r, key)
	return p.count(r)
}

// Arrive is Join for a key the roster counts from now on (it is in the
// roster already): it costs no entry of its own while present, and one
// it had (back within its grace, or replacing a connection of the same
// key) goes.
func (p *Presence) Arrive(room, key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.room(room)
	r.remoteStale(key)
	if _, ok := r.members[key]; ok {
		delete(r.members, key) // counted already: nothing to tell
		return
	}
	p.joinedKey(r, key)
}

// Enter is Arrive for a key that is not in the roster yet: insert puts it
// there and reports whether it did, and is called with the Presence
// locked (it may take the roster's locks, which come after the
// Presence's), with the count room has once key is in. Done in one
// critical section, no event or Members answer can see the key twice (its
// grace entry and the roster's) or not at all (neither yet); wsd's v1
// joins use it, so a v1 member costs presence nothing while present.
// Enter reports what insert did; a key counted already (in its grace, or
// the roster's through a connection insert replaces) emits nothing.
func (p *Presence) Enter(room, key string, insert func(count int) bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.room(room)
	_, own := r.members[key]
	counted := own || p.cfg.Roster.InRoster(room, key)
	count := p.count(r)
	if !counted {
		count++
	}
	if !insert(count) {
		p.dropIfDone(r) // made for nothing
		return false
	}
	r.remoteStale(key)
	switch {
	case own:
		delete(r.members, key) // counted by the roster now
	case !counted:
		p.joinedKey(r, key)
	}
	return true
}

// Leave ends key's membership of room after the grace (at once without
// one); until then key is still counted and listed.
func (p *Presence) Leave(room, key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rooms[room]
	if r == nil {
		return
	}
	if d, ok := r.members[key]; !ok || d != 0 {
		return
	}
	if p.cfg.Grace < 0 {
		p.remove(r, key)
		return
	}
	p.hold(r, key)
}

// Depart is Leave for a key told by Arrive, out of the roster now: it
// is counted for the grace by an entry of its own.
func (p *Presence) Depart(room, key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.room(room)
	r.remoteStale(key)
	if _, ok := r.members[key]; ok {
		return // counted by its own entry (Join) already
	}
	if p.cfg.Grace < 0 {
		p.leftKey(r, key)
		return
	}
	p.hold(r, key)
}

// hold keeps key counted in r until the grace is over.
func (p *Presence) hold(r *presenceRoom, key string) {
	d := p.cfg.Now().Add(p.cfg.Grace).UnixMilli()
	r.members[key] = d
	p.leaving = append(p.leaving, pendingLeave{room: r, key: key, deadline: d})
}

func (p *Presence) remove(r *presenceRoom, key string) {
	delete(r.members, key)
	p.leftKey(r, key)
}

// Count is room's member count (keys in their grace included).
func (p *Presence) Count(room string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.rooms[room]; r != nil {
		return p.count(r)
	}
	return p.cfg.Roster.RosterCount(room)
}

// Members appends up to ListMax of room's keys to dst, sorted, and
// returns it with the room's count; fewer keys than count means the list
// was truncated.
func (p *Presence) Members(room string, dst []string) ([]string, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, count := len(dst), 0
	r := p.rooms[room]
	if r != nil {
		for k := range r.members {
			if len(dst)-n == p.cfg.ListMax {
				break
			}
			dst = append(dst, k)
		}
		count = len(r.members)
	}
	dst = p.cfg.Roster.AppendRoster(dst, room, p.cfg.ListMax-(len(dst)-n))
	count += p.cfg.Roster.RosterCount(room)
	if r != nil && r.remote != nil {
		dst = p.appendRemote(dst, r, p.cfg.ListMax-(len(dst)-n))
		count += p.remoteCount(r)
	}
	slices.Sort(dst[n:])
	return dst, count
}

// Flush ends the leaves whose grace is over and calls emit for every room
// with changes whose last event is at least Interval old: at most one
// event per room per Interval, however many joins and leaves came in. Call
// it from a ticker several times per Interval (say every Interval/4): a
// room not due yet waits for a later Flush. emit runs with the Presence
// locked and must not call back into it; the session encodes the event
// once (AppendPresence) and broadcasts it to the room.
func (p *Presence) Flush(emit func(*PresenceEvent)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Now().UnixMilli()
	done := 0
	for _, l := range p.leaving {
		if l.deadline > now {
			break
		}
		done++
		if d, ok := l.room.members[l.key]; ok && d == l.deadline {
			p.remove(l.room, l.key)
		}
	}
	p.leaving = append(p.leaving[:0], p.leaving[done:]...)

	interval := p.cfg.Interval.Milliseconds()
	keep := p.dirty[:0]
	for _, r := range p.dirty {
		if r.lastEmit != 0 && now-r.lastEmit < interval {
			keep = append(keep, r)
			continue
		}
		r.isDirty = false
		count := p.count(r)
		// Lists only while they are short: a storm gets counts.
		lists := count <= p.cfg.ListMax && !r.overflow
		ev := PresenceEvent{Room: r.name, Count: count, Lists: lists}
		changed := len(r.joined) > 0 || len(r.left) > 0
		if ev.Lists && changed {
			ev.Joined = sortedKeys(p.joined[:0], r.joined)
			ev.Left = sortedKeys(p.left[:0], r.left)
			p.joined, p.left = ev.Joined, ev.Left
		}
		// The sets go with the event: a quiet room keeps no table.
		r.joined, r.left, r.overflow = nil, nil, false
		if (ev.Lists && changed) || count != r.count {
			r.count = count
			r.lastEmit = now
			emit(&ev)
		}
		if count == 0 && !r.isDirty && r.local == nil && r.remote == nil {
			delete(p.rooms, r.name)
		}
	}
	clear(p.dirty[len(keep):])
	p.dirty = keep
}

func sortedKeys(dst []string, set map[string]struct{}) []string {
	for k := range set {
		dst = append(dst, k)
	}
	slices.Sort(dst)
	return dst
}
