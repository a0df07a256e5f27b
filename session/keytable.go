package session

import (
	"hash/maphash"
	"iter"
	"math/bits"
)

// keyTable is a shard's connections by specialKey, guarded by shard.mu.
// It exists for the memory per connection: a map[string]*Conn holds each
// key's string header beside the pointer (24 B a slot, ~44 B an entry at
// its load), while here a slot is one pointer and the key is read through
// the Conn (c.key, fixed at upgrade), so at a load of 3/8 to 3/4 an entry
// costs ~11–21 B (TestKeyTableBytes). Open addressing with linear probing; a removal shifts the run after
// it back (no tombstones), and the slots halve when the load falls under
// 1/8, so a drained server gives its memory back. The zero value is an
// empty table that allocates nothing until its first put.
//
// Keys come from clients, so the hash is maphash with a seed of the
// table's own: which keys collide cannot be known from outside.
//
// The slots are one short of a power of two: an array of pointers over
// 512 B carries an 8 B header in Go's heap, and 2^k slots plus it would
// take the next size class up (4096 B of slots cost 4864).
type keyTable struct {
	slots []*Conn // nil, or 2^k-1 long; nil slots are empty
	n     int
	seed  maphash.Seed
}

const keyTableMin = 7 // the fewest slots once allocated

// home returns key's first slot: its hash scaled to the slots.
func (t *keyTable) home(key string) int {
	hi, _ := bits.Mul64(maphash.String(t.seed, key), uint64(len(t.slots)))
	return int(hi)
}

// next returns the slot after i, wrapping around.
func (t *keyTable) next(i int) int {
	if i++; i == len(t.slots) {
		return 0
	}
	return i
}

// len returns the number of connections in the table.
func (t *keyTable) len() int { return t.n }

// get returns the connection holding key, or nil.
func (t *keyTable) get(key string) *Conn {
	if t.n == 0 {
		return nil
	}
	for i := t.home(key); ; i = t.next(i) {
		c := t.slots[i]
		if c == nil || c.key == key {
			return c
		}
	}
}

// put makes c the holder of c.key and returns the connection it
// displaced, if any (c itself if it held the key already).
func (t *keyTable) put(c *Conn) (old *Conn) {
	if t.slots == nil {
		t.seed = maphash.MakeSeed()
		t.slots = make([]*Conn, keyTableMin)
	}
	i := t.home(c.key)
	for ; t.slots[i] != nil; i = t.next(i) {
		if old = t.slots[i]; old.key == c.key {
			t.slots[i] = c
			return old
		}
	}
	t.slots[i] = c
	t.n++
	if t.n*4 > len(t.slots)*3 {
		t.resize(len(t.slots)*2 + 1)
	}
	return nil
}

// remove takes c out of the table if it holds its key (not a connection
// that replaced it), and reports whether it did.
func (t *keyTable) remove(c *Conn) bool {
	if t.n == 0 {
		return false
	}
	i := t.home(c.key)
	for {
		o := t.slots[i]
		if o == nil {
			return false
		}
		if o.key == c.key {
			if o != c {
				return false
			}
			break
		}
		i = t.next(i)
	}
	// Backward shift: an entry further along the run moves into the hole
	// unless its home lies between the hole and it (then it would no
	// longer be found from there), and the hole moves on to it.
	for j := t.next(i); t.slots[j] != nil; j = t.next(j) {
		if d := t.slots[j]; t.dist(t.home(d.key), j) >= t.dist(i, j) {
			t.slots[i] = d
			i = j
		}
	}
	t.slots[i] = nil
	t.n--
	if t.n*8 < len(t.slots) && len(t.slots) > keyTableMin {
		t.resize(len(t.slots) / 2)
	}
	return true
}

// dist returns how many slots on from i j is, wrapping around.
func (t *keyTable) dist(i, j int) int {
	if d := j - i; d >= 0 {
		return d
	}
	return j - i + len(t.slots)
}

// resize moves the entries into n slots (2^k-1).
func (t *keyTable) resize(n int) {
	old := t.slots
	t.slots = make([]*Conn, n)
	for _, c := range old {
		if c == nil {
			continue
		}
		i := t.home(c.key)
		for t.slots[i] != nil {
			i = t.next(i)
		}
		t.slots[i] = c
	}
}

// all yields every connection in the table, in no particular order. The
// table must not change meanwhile (callers hold shard.mu, at least for
// reading).
func (t *keyTable) all() iter.Seq[*Conn] {
	return func(yield func(*Conn) bool) {
		for _, c := range t.slots {
			if c != nil && !yield(c) {
				return
			}
		}
	}
}
