package chat

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

type events []string

func (e *events) emit(ev *PresenceEvent) {
	if ev.Lists {
		*e = append(*e, fmt.Sprintf("%s %d +%v -%v", ev.Room, ev.Count, ev.Joined, ev.Left))
	} else {
		*e = append(*e, fmt.Sprintf("%s %d", ev.Room, ev.Count))
	}
}

func (e *events) take() string { s := fmt.Sprint(*e); *e = nil; return s }

func newPresence(c *clock, grace time.Duration) *Presence {
	return NewPresence(PresenceConfig{Interval: time.Second, Grace: grace, ListMax: 3, Now: c.now})
}

func TestPresenceCoalesces(t *testing.T) {
	c := newClock()
	p := newPresence(c, -1)
	var ev events
	for i, k := range []string{"b", "a", "c"} {
		if n := p.Join("r", k); n != i+1 {
			t.Fatalf("count %d after %d joins", n, i+1)
		}
	}
	p.Join("r", "a") // already present: nothing
	p.Flush(ev.emit)
	if got := ev.take(); got != "[r 3 +[a b c] -[]]" {
		t.Fatalf("first flush: %s", got)
	}
	// Within the interval: changes wait.
	p.Leave("r", "a")
	c.add(500 * time.Millisecond)
	p.Flush(ev.emit)
	if got := ev.take(); got != "[]" {
		t.Fatalf("flush inside the interval emitted %s", got)
	}
	c.add(500 * time.Millisecond)
	p.Flush(ev.emit)
	if got := ev.take(); got != "[r 2 +[] -[a]]" {
		t.Fatalf("after the interval: %s", got)
	}
	// Nothing changed: nothing emitted.
	c.add(time.Second)
	p.Flush(ev.emit)
	if got := ev.take(); got != "[]" {
		t.Fatalf("idle flush: %s", got)
	}
	// Join and leave inside one interval cancel out.
	p.Join("r", "x")
	p.Leave("r", "x")
	p.Leave("r", "b")
	p.Join("r", "b")
	c.add(time.Second)
	p.Flush(ev.emit)
	if got := ev.take(); got != "[]" {
		t.Fatalf("net-zero changes emitted %s", got)
	}
}

func TestPresenceGrace(t *testing.T) {
	c := newClock()
	p := newPresence(c, 5*time.Second)
	var ev events
	p.Join("r", "a")
	p.Join("r", "b")
	p.Flush(ev.emit)
	ev.take()

	// Flap within the grace: nothing, and a is counted throughout.
	p.Leave("r", "a")
	if p.Count("r") != 2 {
		t.Fatal("a key in its grace is not counted")
	}
	c.add(4 * time.Second)
	p.Flush(ev.emit)
	p.Join("r", "a")
	c.add(5 * time.Second)
	p.Flush(ev.emit)
	if got := ev.take(); got != "[]" {
		t.Fatalf("flap within grace emitted %s", got)
	}

	// A real leave shows once the grace is over.
	p.Leave("r", "b")
	c.add(4999 * time.Millisecond)
	p.Flush(ev.emit)
	if got := ev.take(); got != "[]" {
		t.Fatalf("leave emitted before its grace: %s", got)
	}
	c.add(time.Millisecond)
	p.Flush(ev.emit)
	if got := ev.take(); got != "[r 1 +[] -[b]]" || p.Count("r") != 1 {
		t.Fatalf("after grace: %s", got)
	}

	// Leave, rejoin, leave again: the second leave's grace counts.
	p.Leave("r", "a")
	c.add(3 * time.Second)
	p.Join("r", "a")
	p.Leave("r", "a")
	c.add(3 * time.Second)
	p.Flush(ev.emit)
	if p.Count("r") != 1 || ev.take() != "[]" {
		t.Fatal("a stale grace deadline ended a newer leave")
	}
	c.add(2 * time.Second)
	p.Flush(ev.emit)
	if got := ev.take(); got != "[r 0 +[] -[a]]" || p.Count("r") != 0 {
		t.Fatalf("second leave: %s", got)
	}
}

// TestPresenceReplace: a second connection of a key replaces the first
// (4001). The session keeps the key's membership; even if it calls Leave
// for the old connection and Join for the new, nothing is emitted.
func TestPresenceReplace(t *testing.T) {
	for _, grace := range []time.Duration{-1, 5 * time.Second} {
		c := newClock()
		p := newPresence(c, grace)
		var ev events
		p.Join("r", "a")
		c.add(time.Second)
		p.Flush(ev.emit)
		ev.take()
		p.Leave("r", "a") // the replaced connection
		if n := p.Join("r", "a"); n != 1 {
			t.Fatalf("count %d after replace", n)
		}
		c.add(10 * time.Second)
		p.Flush(ev.emit)
		if got := ev.take(); got != "[]" {
			t.Fatalf("grace %v: replace emitted %s", grace, got)
		}
	}
}

// TestPresenceJoinStorm: N joins into one room cost one event per
// interval, counts only above ListMax, and the work is linear in N.
func TestPresenceJoinStorm(t *testing.T) {
	c := newClock()
	p := newPresence(c, -1)
	emitted := 0
	var last PresenceEvent
	emit := func(e *PresenceEvent) { emitted++; last = *e }
	const n = 10_000
	for i := 0; i < n; i++ {
		p.Join("big", fmt.Sprint("k", i))
		if i%1000 == 0 {
			c.add(100 * time.Millisecond)
			p.Flush(emit)
		}
	}
	c.add(time.Second)
	p.Flush(emit)
	// 10 flushes within ~1 s apart at most once per second, plus the last.
	if emitted > 3 || last.Lists || last.Count != n || p.Count("big") != n {
		t.Fatalf("%d events, last %+v", emitted, last)
	}
	// Join+leave storm: everyone leaves; one count-only event.
	emitted = 0
	for i := 0; i < n; i++ {
		p.Leave("big", fmt.Sprint("k", i))
	}
	c.add(time.Second)
	p.Flush(emit)
	if emitted != 1 || last.Count != 0 || last.Lists {
		t.Fatalf("%d events, last %+v", emitted, last)
	}
	if len(p.rooms) != 0 {
		t.Fatal("an empty room was kept")
	}
}

// TestPresenceFlushTouchesOnlyChangedRooms: Flush walks the rooms with
// changes, not every room, so a quiet box with many rooms pays nothing.
func TestPresenceFlushTouchesOnlyChangedRooms(t *testing.T) {
	c := newClock()
	p := newPresence(c, -1)
	for i := 0; i < 10_000; i++ {
		p.Join(fmt.Sprint("room", i), "k")
	}
	p.Flush(func(*PresenceEvent) {})
	c.add(time.Second)
	p.Join("room7", "k2")
	if len(p.dirty) != 1 {
		t.Fatalf("%d rooms queued for one change", len(p.dirty))
	}
	var ev events
	p.Flush(ev.emit)
	if got := ev.take(); got != "[room7 2 +[k2] -[]]" || len(p.dirty) != 0 {
		t.Fatalf("%s, %d still queued", got, len(p.dirty))
	}
}

func TestPresenceMembers(t *testing.T) {
	c := newClock()
	p := newPresence(c, -1)
	if m, n := p.Members("none", nil); len(m) != 0 || n != 0 {
		t.Fatal("members of an unknown room")
	}
	p.Join("r", "b")
	p.Join("r", "a")
	if m, n := p.Members("r", nil); fmt.Sprint(m) != "[a b]" || n != 2 {
		t.Fatalf("members %v %d", m, n)
	}
	for _, k := range []string{"c", "d", "e"} {
		p.Join("r", k)
	}
	m, n := p.Members("r", []string{"keep"})
	if len(m) != 4 || m[0] != "keep" || n != 5 {
		t.Fatalf("truncated members %v %d", m, n)
	}
	out := AppendMembers(nil, nil, "r", n, m[1:])
	if want := `"truncated":true`; !strings.Contains(string(out), want) {
		t.Fatalf("%s lacks %s", out, want)
	}
}

// BenchmarkPresenceJoinLeave: keys joining and leaving one room, 1,024
// per simulated second, with Flush ticking and graces ending as they would.
func BenchmarkPresenceJoinLeave(b *testing.B) {
	c := newClock()
	p := NewPresence(PresenceConfig{Now: c.now})
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = fmt.Sprint("user-", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[i%len(keys)]
		p.Join("lobby", k)
		p.Leave("lobby", k)
		if i%256 == 0 {
			c.add(250 * time.Millisecond)
			p.Flush(func(*PresenceEvent) {})
		}
		i++
	}
}

// fakeRoster is a Roster of room → keys, as wsd's table of seed members.
type fakeRoster map[string][]string

func (f fakeRoster) RosterCount(room string) int { return len(f[room]) }
func (f fakeRoster) AppendRoster(dst []string, room string, max int) []string {
	return append(dst, f[room][:min(max, len(f[room]))]...)
}
func (f fakeRoster) InRoster(room, key string) bool {
	for _, k := range f[room] {
		if k == key {
			return true
		}
	}
	return false
}
func (f fakeRoster) drop(room, key string) {
	for i, k := range f[room] {
		if k == key {
			f[room] = append(f[room][:i], f[room][i+1:]...)
			return
		}
	}
}

// rosterPresence returns a Presence over a fake roster (1 s interval, 5 s
// grace, lists up to 3) and step: advance its clock by d, flush, and check
// the events of room r and its count.
func rosterPresence(t *testing.T) (*Presence, fakeRoster, func(d time.Duration, want string, count int)) {
	c := newClock()
	f := fakeRoster{}
	p := NewPresence(PresenceConfig{Interval: time.Second, Grace: 5 * time.Second, ListMax: 3, Now: c.now, Roster: f})
	var ev events
	return p, f, func(d time.Duration, want string, count int) {
		t.Helper()
		c.add(d)
		p.Flush(ev.emit)
		if got := ev.take(); got != want || p.Count("r") != count {
			t.Fatalf("got %s count %d, want %s count %d", got, p.Count("r"), want, count)
		}
	}
}

// TestPresenceRoster: keys the roster holds are counted, listed and
// announced like joined ones, cost no entry while present, are held for
// the grace once they depart, and a key moving between the roster and its
// own entry (a connection replacing one of the same key) is counted once
// and announced never.
func TestPresenceRoster(t *testing.T) {
	p, f, step := rosterPresence(t)
	f["r"] = []string{"s1", "s2"}
	p.Arrive("r", "s1")
	p.Arrive("r", "s2")
	if n := p.Join("r", "v"); n != 3 {
		t.Fatalf("join count %d", n)
	}
	step(time.Second, "[r 3 +[s1 s2 v] -[]]", 3)
	if len(p.rooms["r"].members) != 1 {
		t.Fatalf("roster keys have entries: %v", p.rooms["r"].members)
	}
	if m, n := p.Members("r", nil); fmt.Sprint(m) != "[s1 s2 v]" || n != 3 {
		t.Fatalf("members %v %d", m, n)
	}

	// s1 departs and comes back within the grace: counted throughout, nothing told.
	f.drop("r", "s1")
	p.Depart("r", "s1")
	step(time.Second, "[]", 3)
	f["r"] = append(f["r"], "s1")
	p.Arrive("r", "s1")
	step(10*time.Second, "[]", 3)

	// s2 departs for good: told once the grace is over.
	f.drop("r", "s2")
	p.Depart("r", "s2")
	step(4*time.Second, "[]", 3)
	step(time.Second, "[r 2 +[] -[s2]]", 2)

	// A v1 connection replaces the seed s1 (Join while s1 is in the
	// roster, which then drops it without a Depart), and a seed one
	// replaces the v1 v (Arrive while v has its entry): counted once each.
	if n := p.Join("r", "s1"); n != 2 {
		t.Fatalf("replacing join count %d", n)
	}
	f.drop("r", "s1")
	f["r"] = append(f["r"], "v")
	p.Arrive("r", "v")
	step(time.Second, "[]", 2)
	if m, n := p.Members("r", nil); fmt.Sprint(m) != "[s1 v]" || n != 2 {
		t.Fatalf("members %v %d", m, n)
	}
}

// TestPresenceEnter: a key Enter puts in the roster is counted from the
// insert on with the count insert was told, costs no entry, and is told
// once; an insert that fails leaves nothing; back within its grace or
// replacing itself it is counted once and nothing is told.
func TestPresenceEnter(t *testing.T) {
	p, f, step := rosterPresence(t)
	enter := func(key string, ok bool, wantCount int) {
		t.Helper()
		told := -1
		got := p.Enter("r", key, func(count int) bool {
			told = count
			if ok && !f.InRoster("r", key) {
				f["r"] = append(f["r"], key)
			}
			return ok
		})
		if got != ok || told != wantCount {
			t.Fatalf("Enter %s: %v with count %d, want %v with %d", key, got, told, ok, wantCount)
		}
	}
	enter("a", true, 1)
	enter("b", true, 2)
	step(time.Second, "[r 2 +[a b] -[]]", 2)
	if n := len(p.rooms["r"].members); n != 0 {
		t.Fatalf("%d entries for keys in the roster", n)
	}

	// A join refused in insert: not counted, and a room made for it goes.
	enter("x", false, 3)
	step(time.Second, "[]", 2)
	p.Enter("q", "z", func(int) bool { return false })
	if _, ok := p.rooms["q"]; ok {
		t.Fatal("a refused Enter left its room")
	}

	// b departs and comes back within the grace: counted throughout.
	f.drop("r", "b")
	p.Depart("r", "b")
	step(time.Second, "[]", 2)
	enter("b", true, 2)
	if n := len(p.rooms["r"].members); n != 0 {
		t.Fatalf("b's grace entry stayed: %d entries", n)
	}
	step(10*time.Second, "[]", 2)

	// a connection of a replaces the one in the roster (insert swaps
	// them), or a joins again: counted once, nothing told.
	enter("a", true, 2)
	step(time.Second, "[]", 2)
	if m, n := p.Members("r", nil); fmt.Sprint(m) != "[a b]" || n != 2 {
		t.Fatalf("members %v %d", m, n)
	}
}

// TestPresenceChangeSetsBounded: past ListMax changes an event carries the
// count only, so the room keeps at most ListMax keys of changes, and none
// once the event is out.
func TestPresenceChangeSetsBounded(t *testing.T) {
	c := newClock()
	p := newPresence(c, -1)
	for i := 0; i < 1000; i++ {
		p.Join("r", fmt.Sprint("k", i))
		if r := p.rooms["r"]; len(r.joined) > 3 {
			t.Fatalf("%d keys kept of the changes", len(r.joined))
		}
	}
	var ev events
	p.Flush(ev.emit)
	if got, r := ev.take(), p.rooms["r"]; got != "[r 1000]" || r.joined != nil || r.left != nil {
		t.Fatalf("%s, sets %v %v", got, r.joined, r.left)
	}
}
