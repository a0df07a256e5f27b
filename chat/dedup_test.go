package chat

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDedup(t *testing.T) {
	c := newClock()
	var charged atomic.Int64
	d := NewDedup(DedupConfig{Now: c.now, Charge: func(n int64) { charged.Add(n) }})
	ack := Ack{Room: "r", Stamp: Stamp{Seq: 7, Epoch: "e", TS: 1}}
	if _, ok := d.Check("k", []byte("c1")); ok {
		t.Fatal("hit on an empty table")
	}
	d.Put("k", []byte("c1"), ack)
	d.Put("k", []byte("c1"), Ack{Room: "r", Stamp: Stamp{Seq: 8}}) // the first ack stays
	for _, tc := range []struct {
		key, id string
		hit     bool
	}{
		{"k", "c1", true},
		{"k", "c2", false},
		{"other", "c1", false},
		{"k\x00", "c1", false}, // length-prefixed: no key/id boundary confusion
		{"", "\x00\x01kc1", false},
	} {
		got, ok := d.Check(tc.key, []byte(tc.id))
		if ok != tc.hit || (ok && got != ack) {
			t.Fatalf("Check(%q,%q) = %+v %v", tc.key, tc.id, got, ok)
		}
	}
	// Within the window, then not.
	c.add(2*time.Minute - time.Millisecond)
	if _, ok := d.Check("k", []byte("c1")); !ok {
		t.Fatal("forgotten inside the window")
	}
	c.add(time.Millisecond)
	if _, ok := d.Check("k", []byte("c1")); ok {
		t.Fatal("remembered past the window")
	}
	if d.Len() != 0 || charged.Load() != d.Bytes() {
		t.Fatalf("len %d, charged %d, bytes %d", d.Len(), charged.Load(), d.Bytes())
	}
}

func TestDedupWindowAtLeastTwoMinutes(t *testing.T) {
	c := newClock()
	d := NewDedup(DedupConfig{Window: time.Second, Now: c.now})
	d.Put("k", []byte("c"), Ack{})
	c.add(time.Minute)
	if _, ok := d.Check("k", []byte("c")); !ok {
		t.Fatal("a window under 2 minutes was honoured")
	}
}

// TestDedupFloodIsBounded: one key sending ever new ids fills the table to
// MaxEntries and then evicts the oldest first; memory stays flat.
func TestDedupFloodIsBounded(t *testing.T) {
	c := newClock()
	var charged atomic.Int64
	d := NewDedup(DedupConfig{MaxEntries: 1000, Now: c.now, Charge: func(n int64) { charged.Add(n) }})
	d.Put("victim", []byte("keep?"), Ack{})
	var atFull int64
	for i := 0; i < 50_000; i++ {
		d.Put("flooder", []byte(fmt.Sprintf("id-%08d", i)), Ack{})
		if i == 2000 {
			atFull = d.Bytes()
		}
	}
	if d.Len() != 1000 || d.Bytes() != atFull || charged.Load() != d.Bytes() {
		t.Fatalf("len %d, bytes %d (at full %d), charged %d", d.Len(), d.Bytes(), atFull, charged.Load())
	}
	if _, ok := d.Check("victim", []byte("keep?")); ok {
		t.Fatal("the oldest entry was not the one evicted")
	}
	if _, ok := d.Check("flooder", []byte("id-00049999")); !ok {
		t.Fatal("the newest entry is missing")
	}
	if _, ok := d.Check("flooder", []byte("id-00048999")); ok {
		t.Fatal("entry 1001 from the end survived")
	}
	if _, ok := d.Check("flooder", []byte("id-00049000")); !ok {
		t.Fatal("entry 1000 from the end is missing")
	}
}

func TestDedupLongKey(t *testing.T) {
	d := NewDedup(DedupConfig{})
	k := strings.Repeat("k", 1000) // past the stack buffer: still correct
	d.Put(k, []byte("c"), Ack{Room: "r"})
	if a, ok := d.Check(k, []byte("c")); !ok || a.Room != "r" {
		t.Fatal("long key lost")
	}
	if _, ok := d.Check(k[:999], []byte("kc")); ok {
		t.Fatal("long key confused")
	}
}

func BenchmarkDedup(b *testing.B) {
	d := NewDedup(DedupConfig{MaxEntries: 10_000})
	ids := make([][]byte, 20_000)
	for i := range ids {
		ids[i] = []byte(fmt.Sprintf("8f14e45f-%08d", i))
	}
	ack := Ack{Room: "lobby", Stamp: Stamp{Seq: 1, Epoch: "abcdefgh"}}
	b.Run("check-hit", func(b *testing.B) {
		d.Put("user-42", ids[0], ack)
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := d.Check("user-42", ids[0]); !ok {
				b.Fatal("miss")
			}
		}
	})
	b.Run("check-miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d.Check("user-42", ids[1])
		}
	})
	b.Run("put-evict", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			d.Put("user-42", ids[i%len(ids)], ack)
			i++
		}
	})
}
