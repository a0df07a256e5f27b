package session

import (
	"fmt"
	"testing"
	"unsafe"
)

func testTable(shards int) (*Hub, *table) {
	h := &Hub{}
	h.table = newTable(h, shards)
	return h, h.table
}

func conn(h *Hub, key, room string) *Conn { return &Conn{hub: h, key: key, room: room, member: -1} }

func TestTableReplaceAndRemove(t *testing.T) {
	h, tb := testTable(4)
	a1 := conn(h, "alice", "")
	if old := tb.insert(a1); old != nil {
		t.Fatal("first insert displaced someone")
	}
	a2 := conn(h, "alice", "")
	if old := tb.insert(a2); old != a1 {
		t.Fatalf("second insert displaced %v, want the first", old)
	}
	if a1.inTable || !a2.inTable || tb.lookup("alice") != a2 {
		t.Fatal("replacement left the table inconsistent")
	}
	if n := tb.roomCounts()[""]; n != 1 {
		t.Fatalf("global room has %d members after a replacement, want 1", n)
	}
	tb.remove(a1) // the displaced one leaving must not remove the new one
	if tb.lookup("alice") != a2 {
		t.Fatal("removing the displaced connection removed its replacement")
	}
	tb.remove(a2)
	if tb.lookup("alice") != nil || len(tb.roomCounts()) != 0 {
		t.Fatal("table not empty after removing everyone")
	}
}

func TestTableRooms(t *testing.T) {
	h, tb := testTable(8)
	var conns []*Conn
	for i := 0; i < 100; i++ {
		c := conn(h, fmt.Sprintf("k%d", i), fmt.Sprintf("room%d", i%3))
		conns = append(conns, c)
		tb.insert(c)
	}
	counts := tb.roomCounts()
	if counts["room0"] != 34 || counts["room1"] != 33 || counts["room2"] != 33 {
		t.Fatalf("room counts %v", counts)
	}
	// Remove every other member; the swap-remove must keep indexes right.
	for i := 0; i < 100; i += 2 {
		tb.remove(conns[i])
	}
	total := 0
	for _, s := range tb.shards {
		for name, r := range s.rooms {
			for i, c := range r.members {
				if int(c.member) != i || c.room != name {
					t.Fatalf("member %s at %d thinks it is at %d in %q", c.key, i, c.member, c.room)
				}
			}
			total += len(r.members)
		}
	}
	if total != 50 {
		t.Fatalf("%d members left, want 50", total)
	}
	h.Rooms() // sorted snapshot must not panic
}

// A connection's room name is the room's own string when the room has
// members in its shard: a room's members hold its name once per shard.
func TestRoomNameShared(t *testing.T) {
	tb := newTable(&Hub{}, 4)
	s := tb.shardOf("k")
	s.rooms["lobby"] = &room{name: "lobby"}
	got := tb.roomName("k", []byte("lobby"))
	if got != "lobby" || unsafe.StringData(got) != unsafe.StringData(s.rooms["lobby"].name) {
		t.Fatalf("room name %q is a copy of the room's", got)
	}
	if got := tb.roomName("k", []byte("other")); got != "other" {
		t.Fatalf("room name %q, want other", got)
	}
	if got := tb.roomName("k", nil); got != "" {
		t.Fatalf("no room gave %q", got)
	}
}
