package chat

import (
	"encoding/binary"
	"sync"
	"time"
	"unsafe"
)

// Defaults of DedupConfig.
const (
	// MinDedupWindow is the shortest window: a client retrying after a
	// reconnect must be able to count on at least this.
	MinDedupWindow     = 2 * time.Minute
	DefaultDedupWindow = MinDedupWindow
	DefaultDedupMax    = 100_000
)

// DedupConfig bounds a Dedup. Zero fields take the defaults.
type DedupConfig struct {
	// Window is how long a send's ack is remembered; below
	// MinDedupWindow it is raised to it.
	Window time.Duration
	// MaxEntries bounds the table; when full, the oldest entry is
	// evicted first (its id may then be broadcast again if retried).
	MaxEntries int
	// Charge, if set, gets each change of the bytes the table holds,
	// under its lock: quick, no call back.
	Charge func(delta int64)
	Now    func() time.Time
}

// Dedup remembers, per (key, client message id), the ack a send got, so a
// send repeated within the window is answered with the original ack and
// not broadcast again. It is safe for concurrent use. Check-then-Put is
// atomic only if the caller serializes a key's sends, as wsd does (a key
// is one connection, whose commands are handled one at a time).
//
// Entries live in insertion order in a ring, which is also their expiry
// order (one window for all), so expiry and eviction are O(1) from the
// front, and a lookup is one map access on a key built in a stack buffer.
type Dedup struct {
	mu      sync.Mutex
	cfg     DedupConfig
	index   map[string]int // entry key → slot in ring
	ring    []dedupEntry
	head, n int
	bytes   int64
}

type dedupEntry struct {
	k   string
	ack Ack
	at  int64 // ms
}

// dedupEntrySize is an entry's map cost beyond its ring slot (charged
// when the ring grows) and its key bytes.
const dedupEntrySize = 48

// NewDedup returns an empty table. Its ring grows by doubling up to
// MaxEntries slots, each charged.
func NewDedup(cfg DedupConfig) *Dedup {
	if cfg.Window < MinDedupWindow {
		cfg.Window = MinDedupWindow
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultDedupMax
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Dedup{cfg: cfg, index: make(map[string]int)}
}

func (d *Dedup) add(delta int64) {
	d.bytes += delta
	if d.cfg.Charge != nil {
		d.cfg.Charge(delta)
	}
}

// dedupKey writes the table key of (key, id) into buf: key's length as a
// uvarint, then key, then id, so no two pairs share a key whatever bytes
// they hold.
func dedupKey(buf []byte, key string, id []byte) []byte {
	buf = binary.AppendUvarint(buf[:0], uint64(len(key)))
	buf = append(buf, key...)
	return append(buf, id...)
}

// Check returns the ack remembered for (key, id), if any within the window.
func (d *Dedup) Check(key string, id []byte) (Ack, bool) {
	var buf [320]byte
	k := dedupKey(buf[:0], key, id)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire()
	i, ok := d.index[string(k)]
	if !ok {
		return Ack{}, false
	}
	return d.ring[i].ack, true
}

// Put remembers ack for (key, id); if (key, id) is already remembered the
// first ack stays. When the table is full the oldest entry is evicted.
func (d *Dedup) Put(key string, id []byte, ack Ack) {
	var buf [320]byte
	k := dedupKey(buf[:0], key, id)
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.expire()
	if _, ok := d.index[string(k)]; ok {
		return
	}
	if d.n == len(d.ring) {
		if len(d.ring) < d.cfg.MaxEntries {
			d.grow()
		} else {
			d.pop()
		}
	}
	i := (d.head + d.n) % len(d.ring)
	ks := string(k)
	d.ring[i] = dedupEntry{k: ks, ack: ack, at: now}
	d.index[ks] = i
	d.n++
	d.add(dedupEntrySize + int64(len(ks)))
}

// Len is the number of entries remembered.
func (d *Dedup) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// Bytes is what the table holds, as charged.
func (d *Dedup) Bytes() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bytes
}

func (d *Dedup) expire() int64 {
	now := d.cfg.Now().UnixMilli()
	limit := now - d.cfg.Window.Milliseconds()
	for d.n > 0 && d.ring[d.head].at <= limit {
		d.pop()
	}
	return now
}

func (d *Dedup) pop() {
	e := &d.ring[d.head]
	delete(d.index, e.k)
	d.add(-dedupEntrySize - int64(len(e.k)))
	*e = dedupEntry{}
	d.head = (d.head + 1) % len(d.ring)
	d.n--
}

func (d *Dedup) grow() {
	size := min(max(2*len(d.ring), 64), d.cfg.MaxEntries)
	ring := make([]dedupEntry, size)
	for i := 0; i < d.n; i++ {
		e := d.ring[(d.head+i)%len(d.ring)]
		ring[i] = e
		d.index[e.k] = i
	}
	d.add(int64(size-len(d.ring)) * int64(unsafe.Sizeof(dedupEntry{})))
	d.ring, d.head = ring, 0
}
