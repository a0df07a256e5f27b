package session

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// checkKeyTable fails t unless kt holds exactly model's connections, each
// found by its key, at a load between the grow and shrink bounds.
func checkKeyTable(t testing.TB, kt *keyTable, model map[string]*Conn) {
	t.Helper()
	if kt.len() != len(model) {
		t.Fatalf("len %d, want %d", kt.len(), len(model))
	}
	for k, c := range model {
		if got := kt.get(k); got != c {
			t.Fatalf("get(%q) = %p, want %p", k, got, c)
		}
	}
	seen := 0
	for c := range kt.all() {
		if model[c.key] != c {
			t.Fatalf("all yielded %q (%p), not the model's %p", c.key, c, model[c.key])
		}
		seen++
	}
	if seen != len(model) {
		t.Fatalf("all yielded %d connections, want %d", seen, len(model))
	}
	if n, slots := kt.n, len(kt.slots); slots != 0 && (n*4 > slots*3 || slots > keyTableMin && n*8 < slots) {
		t.Fatalf("%d entries in %d slots: outside the load bounds", n, slots)
	}
}

func TestKeyTableBasics(t *testing.T) {
	var kt keyTable
	if kt.get("a") != nil || kt.remove(&Conn{key: "a"}) || kt.len() != 0 || kt.slots != nil {
		t.Fatal("an empty table is not empty, or allocated")
	}
	for range kt.all() {
		t.Fatal("an empty table yielded a connection")
	}
	a1, a2, b := &Conn{key: "a"}, &Conn{key: "a"}, &Conn{key: "b"}
	if kt.put(a1) != nil || kt.put(b) != nil {
		t.Fatal("a put into an empty key displaced a connection")
	}
	if old := kt.put(a2); old != a1 {
		t.Fatalf("replacing put displaced %p, want the first connection %p", old, a1)
	}
	if old := kt.put(a2); old != a2 {
		t.Fatalf("putting the holder again displaced %p, want itself", old)
	}
	if kt.remove(a1) {
		t.Fatal("a replaced connection removed its successor")
	}
	checkKeyTable(t, &kt, map[string]*Conn{"a": a2, "b": b})
	if !kt.remove(a2) || kt.remove(a2) {
		t.Fatal("removing the holder did not report it once")
	}
	if kt.get("") != nil {
		t.Fatal("the empty key was found")
	}
	checkKeyTable(t, &kt, map[string]*Conn{"b": b})
}

// TestKeyTableModel drives the table and a map with the same random
// operations, growing to a size and draining back, for sizes that cross
// several grows and shrinks; a drained table is back to its fewest slots.
func TestKeyTableModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{1, 5, 6, 7, 13, 100, 777, 5000} {
		var kt keyTable
		model := make(map[string]*Conn)
		keys := make([]string, size*2) // half of them absent at any time, on average
		for i := range keys {
			keys[i] = fmt.Sprintf("key-%d-%d", size, i)
		}
		op := func(grow bool) {
			k := keys[rng.IntN(len(keys))]
			switch r := rng.IntN(10); {
			case r < 4 && (grow || len(model) > size):
				c := &Conn{key: k}
				if old := kt.put(c); old != model[k] {
					t.Fatalf("put(%q) displaced %p, want %p", k, old, model[k])
				}
				model[k] = c
			case r < 8:
				c := model[k]
				if c == nil || r < 5 {
					c = &Conn{key: k} // not the holder: nothing is removed
				}
				want := model[k] == c
				if got := kt.remove(c); got != want {
					t.Fatalf("remove(%q) = %v, want %v", k, got, want)
				}
				if want {
					delete(model, k)
				}
			default:
				if got := kt.get(k); got != model[k] {
					t.Fatalf("get(%q) = %p, want %p", k, got, model[k])
				}
			}
		}
		for len(model) < size {
			op(true)
		}
		checkKeyTable(t, &kt, model)
		for range size * 4 {
			op(len(model) < size)
		}
		checkKeyTable(t, &kt, model)
		for k, c := range model {
			if !kt.remove(c) {
				t.Fatalf("remove(%q) of its holder failed", k)
			}
			delete(model, k)
			if len(model)%64 == 0 {
				checkKeyTable(t, &kt, model)
			}
		}
		checkKeyTable(t, &kt, model)
		if len(kt.slots) != keyTableMin {
			t.Fatalf("size %d: a drained table kept %d slots, want %d", size, len(kt.slots), keyTableMin)
		}
	}
}

// FuzzKeyTable runs the input as operations on the table and a map: each
// pair of bytes is an operation and a key out of a few (so keys collide
// and runs form in a small table).
func FuzzKeyTable(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 3, 1, 2, 3, 1, 0, 2})
	f.Add([]byte{0, 0, 0, 8, 0, 16, 0, 24, 0, 32, 0, 40, 0, 48, 4, 0, 5, 8, 1, 16, 2, 24})
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		var kt keyTable
		model := make(map[string]*Conn)
		for i := 0; i+1 < len(ops); i += 2 {
			k := keys[int(ops[i+1])%len(keys)]
			switch ops[i] % 4 {
			case 0:
				c := &Conn{key: k}
				if old := kt.put(c); old != model[k] {
					t.Fatalf("put(%q) displaced %p, want %p", k, old, model[k])
				}
				model[k] = c
			case 1, 2:
				c := model[k]
				if c == nil || ops[i]%4 == 2 {
					c = &Conn{key: k}
				}
				want := model[k] == c
				if got := kt.remove(c); got != want {
					t.Fatalf("remove(%q) = %v, want %v", k, got, want)
				}
				if want {
					delete(model, k)
				}
			case 3:
				if got := kt.get(k); got != model[k] {
					t.Fatalf("get(%q) = %p, want %p", k, got, model[k])
				}
			}
		}
		checkKeyTable(t, &kt, model)
	})
}

// TestKeyTableBytes measures what the table costs a connection at 20,000
// connections over the default shards (a map[string]*Conn cost ~44 B).
func TestKeyTableBytes(t *testing.T) {
	h := &Hub{}
	tb := newTable(h, DefaultShards)
	const conns = 20000
	cs := make([]*Conn, conns)
	for i := range cs {
		cs[i] = &Conn{hub: h, member: -1, key: fmt.Sprintf("k%d", i)}
	}
	// As in TestSubscriptionBytes: read after two collections, the
	// heap's growth as a signed number.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, c := range cs {
		tb.shardOf(c.key).byKey.put(c)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / conns
	t.Logf("%.1f bytes per connection in the key tables (%d connections, %d shards)", per, conns, DefaultShards)
	if per > 16 {
		t.Fatalf("%.1f bytes per connection in the key tables, want at most 16", per)
	}
	runtime.KeepAlive(cs)
	runtime.KeepAlive(tb)
}

func BenchmarkKeyTable(b *testing.B) {
	const size = 312 // a shard's share of 20,000 connections
	var kt keyTable
	cs := make([]*Conn, size)
	for i := range cs {
		cs[i] = &Conn{key: fmt.Sprintf("user-%d", i)}
		kt.put(cs[i])
	}
	misses := make([]string, size)
	for i := range misses {
		misses[i] = fmt.Sprintf("absent-%d", i)
	}
	b.Run("get-hit", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if kt.get(cs[i%size].key) == nil {
				b.Fatal("miss")
			}
		}
	})
	b.Run("get-miss", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if kt.get(misses[i%size]) != nil {
				b.Fatal("hit")
			}
		}
	})
	b.Run("put+remove", func(b *testing.B) {
		b.ReportAllocs()
		extra := &Conn{key: "extra"}
		for b.Loop() {
			kt.put(extra)
			kt.remove(extra)
		}
	})
}
