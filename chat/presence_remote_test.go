package chat

import (
	"fmt"
	"testing"
	"time"
)

func newShared(c *clock, grace time.Duration) *Presence {
	return NewPresence(PresenceConfig{Interval: time.Second, Grace: grace, ListMax: 3, Now: c.now, Share: true})
}

type changes []string

func (cs *changes) emit(lc *LocalChange) {
	switch {
	case !lc.Lists:
		*cs = append(*cs, fmt.Sprintf("%s #%d %d", lc.Room, lc.Seq, lc.Count))
	case lc.Snapshot:
		*cs = append(*cs, fmt.Sprintf("%s #%d %d =%v", lc.Room, lc.Seq, lc.Count, lc.Keys))
	default:
		*cs = append(*cs, fmt.Sprintf("%s #%d %d +%v -%v", lc.Room, lc.Seq, lc.Count, lc.Keys, lc.Left))
	}
}

func (cs *changes) take() string { s := fmt.Sprint(*cs); *cs = nil; return s }

// Members and counts are the union of this box's and the other boxes'; a
// key on two boxes (moving) counts once, and only changes of the union
// reach the room's events.
func TestPresenceRemoteUnion(t *testing.T) {
	c := newClock()
	p := newShared(c, -1)
	var ev events
	p.Join("r", "a")
	p.RemoteSet("r", "box2", []string{"b", "c"}, 2, true)
	if n := p.Count("r"); n != 3 {
		t.Fatalf("count %d, want 3", n)
	}
	if keys, n := p.Members("r", nil); fmt.Sprint(keys) != "[a b c]" || n != 3 {
		t.Fatalf("members %v %d", keys, n)
	}
	p.Flush(ev.emit)
	if got := ev.take(); got != "[r 3 +[a b c] -[]]" {
		t.Fatalf("first event %s", got)
	}
	// b moves here: on both boxes for a moment, then only here.
	if n := p.Join("r", "b"); n != 3 {
		t.Fatalf("count %d with b on two boxes, want 3", n)
	}
	p.RemoteChange("r", "box2", nil, []string{"b"}, 1, true)
	c.add(time.Second)
	p.Flush(ev.emit)
	if got := ev.take(); got != "[]" || p.Count("r") != 3 {
		t.Fatalf("a move emitted %s (count %d)", got, p.Count("r"))
	}
	// A key on two boxes leaves one of them: still there.
	p.RemoteChange("r", "box3", []string{"a"}, nil, 1, true)
	p.Leave("r", "a")
	c.add(time.Second)
	p.Flush(ev.emit)
	if got := ev.take(); got != "[]" || p.Count("r") != 3 {
		t.Fatalf("a key still on another box emitted %s (count %d)", got, p.Count("r"))
	}
	if p.RemoteBoxes() != 2 {
		t.Fatalf("%d remote boxes, want 2", p.RemoteBoxes())
	}
	// box2's lease ran out: c leaves; b is here, so it does not.
	if n := p.RemoteDropBox("box2"); n != 1 {
		t.Fatalf("box2 was in %d rooms", n)
	}
	c.add(time.Second)
	p.Flush(ev.emit)
	if got := ev.take(); got != "[r 2 +[] -[c]]" {
		t.Fatalf("after box2 went: %s", got)
	}
	// This box stops following the room: only its own members are left.
	p.RemoteDropRoom("r")
	c.add(time.Second)
	p.Flush(ev.emit)
	if got := ev.take(); got != "[r 1 +[] -[a]]" || p.RemoteBoxes() != 0 {
		t.Fatalf("after the room was dropped: %s", got)
	}
}

// A box with more than ListMax keys in a room is kept as a count; its
// count adds to the union's; it lists again after a whole set.
func TestPresenceRemoteCounts(t *testing.T) {
	c := newClock()
	p := newShared(c, -1)
	var ev events
	p.Join("r", "a")
	p.RemoteSet("r", "box2", []string{"w", "x", "y", "z"}, 4, true) // over ListMax 3
	if n := p.Count("r"); n != 5 {
		t.Fatalf("count %d, want 5", n)
	}
	// A list change for a box kept as a count: its count.
	p.RemoteChange("r", "box2", []string{"v"}, nil, 5, true)
	if n := p.Count("r"); n != 6 {
		t.Fatalf("count %d, want 6", n)
	}
	p.RemoteChange("r", "box2", nil, nil, 10, false)
	if n := p.Count("r"); n != 11 {
		t.Fatalf("count %d, want 11", n)
	}
	p.Flush(ev.emit)
	if got := ev.take(); got != "[r 11]" {
		t.Fatalf("event %s", got)
	}
	p.RemoteSet("r", "box2", []string{"x"}, 1, true)
	if keys, n := p.Members("r", nil); fmt.Sprint(keys) != "[a x]" || n != 2 {
		t.Fatalf("members %v %d", keys, n)
	}
	// A list change past ListMax keeps the box as a count.
	p.RemoteChange("r", "box2", []string{"m", "n", "o"}, nil, 4, true)
	if n := p.Count("r"); n != 5 {
		t.Fatalf("count %d, want 5", n)
	}
	// Empty: the box is forgotten.
	p.RemoteChange("r", "box2", nil, nil, 0, false)
	if p.RemoteBoxes() != 0 || p.Count("r") != 1 {
		t.Fatalf("an empty box kept: %d boxes, count %d", p.RemoteBoxes(), p.Count("r"))
	}
}

// LocalChanges: this box's own changes, coalesced, numbered, the whole
// set when asked or when a count-only share or an overflow came before;
// remote changes never show in them.
func TestPresenceLocalChanges(t *testing.T) {
	c := newClock()
	p := newShared(c, 5*time.Second)
	var cs changes
	p.Join("r", "a")
	p.Join("r", "b")
	p.RemoteSet("r", "box2", []string{"x"}, 1, true)
	p.LocalChanges(cs.emit)
	if got := cs.take(); got != "[r #1 2 +[a b] -[]]" {
		t.Fatalf("first share %s", got)
	}
	p.LocalChanges(cs.emit)
	if got := cs.take(); got != "[]" {
		t.Fatalf("nothing changed, shared %s", got)
	}
	// Within the grace a leave is not shared; after it, it is.
	p.Leave("r", "a")
	p.LocalChanges(cs.emit)
	if got := cs.take(); got != "[]" {
		t.Fatalf("a key in its grace was shared as gone: %s", got)
	}
	c.add(5 * time.Second)
	p.Flush(func(*PresenceEvent) {})
	p.LocalChanges(cs.emit)
	if got := cs.take(); got != "[r #2 1 +[] -[a]]" {
		t.Fatalf("after the grace %s", got)
	}
	// Join and leave before a share: nothing.
	p.Join("r", "q")
	p.Depart("r", "q") // not in the roster, counted by its own entry: a no-op
	if !p.ShareAgain("r") {
		t.Fatal("ShareAgain of a room with members here")
	}
	p.LocalChanges(cs.emit)
	if got := cs.take(); got != "[r #3 2 =[b q]]" {
		t.Fatalf("asked for the whole set: %s", got)
	}
	// Past ListMax: a count; back under it: the whole set.
	for _, k := range []string{"c", "d"} {
		p.Join("r", k)
	}
	p.LocalChanges(cs.emit)
	if got := cs.take(); got != "[r #4 4]" {
		t.Fatalf("past ListMax %s", got)
	}
	p.Join("s", "z")
	p.cfg.Grace = -1
	p.Leave("r", "d")
	p.LocalChanges(cs.emit)
	if got := cs.take(); got != "[s #1 1 +[z] -[] r #5 3 =[b c q]]" {
		t.Fatalf("back under ListMax %s", got)
	}
	// Empty, then again: numbered from 1.
	p.Leave("s", "z")
	p.LocalChanges(cs.emit)
	p.Join("s", "z")
	p.LocalChanges(cs.emit)
	if got := cs.take(); got != "[s #2 0 +[] -[z] s #1 1 +[z] -[]]" {
		t.Fatalf("emptied and joined again %s", got)
	}
	if p.ShareAgain("none") {
		t.Fatal("ShareAgain of a room without members here")
	}
}

// A box without Share keeps no change set, and a room whose members are
// all gone on every box is forgotten.
func TestPresenceRemoteForgetsRooms(t *testing.T) {
	c := newClock()
	p := newPresence(c, -1)
	p.Join("r", "a")
	p.RemoteSet("r", "box2", []string{"b"}, 1, true)
	p.Leave("r", "a")
	p.RemoteDropBox("box2")
	p.Flush(func(*PresenceEvent) {})
	if len(p.rooms) != 0 || len(p.ldirty) != 0 {
		t.Fatalf("%d rooms, %d change sets kept", len(p.rooms), len(p.ldirty))
	}
	p = newShared(c, -1)
	p.Join("r", "a")
	p.Leave("r", "a")
	p.Flush(func(*PresenceEvent) {})
	p.LocalChanges(func(*LocalChange) {})
	if len(p.rooms) != 0 {
		t.Fatalf("%d rooms kept after the share", len(p.rooms))
	}
}

// BenchmarkPresenceJoinLeaveShared is BenchmarkPresenceJoinLeave on a box
// of a cluster: its changes kept for the other boxes and shared every
// simulated second, and another box's 100 keys in the room.
func BenchmarkPresenceJoinLeaveShared(b *testing.B) {
	c := newClock()
	p := NewPresence(PresenceConfig{Now: c.now, Share: true})
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = fmt.Sprint("user-", i)
	}
	remote := make([]string, 100)
	for i := range remote {
		remote[i] = fmt.Sprint("remote-", i)
	}
	p.RemoteSet("lobby", "box2", remote, len(remote), true)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[i%len(keys)]
		p.Join("lobby", k)
		p.Leave("lobby", k)
		if i%256 == 0 {
			c.add(250 * time.Millisecond)
			p.Flush(func(*PresenceEvent) {})
			if i%1024 == 0 {
				p.LocalChanges(func(*LocalChange) {})
			}
		}
		i++
	}
}
