package chat

import (
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Entry is one retained message: its stamp's seq and ts and its encoded
// message envelope. Frame belongs to the store and is valid only during the
// call that hands it out; copy what must outlive it.
type Entry struct {
	Seq   uint64
	TS    int64
	Frame []byte

	r *Ring // for Encoded; nil from a Store without RingConfig.Encode
	s *slot
}

// Encoded returns the message's RingConfig.Encode of Frame, built on the
// first call for this message and kept with it until the message is
// dropped, so every reader asking for it shares one encoding. Unlike Frame
// the bytes are never written again: a caller may keep (queue) them past
// the call, read-only. Only a Reader's Replay may call it (the room's log
// is locked then); it returns nil if the ring has no Encode.
func (e Entry) Encoded() []byte {
	if e.r == nil || e.s == nil {
		return nil
	}
	return e.r.encoded(e.s, encEncode, e.r.cfg.Encode)
}

// Framed is Encoded for RingConfig.Frame: the message's envelope as the
// frame most readers send (the session's WebSocket text frame), built on
// the first asking and shared by every later reader, so a replay to N
// members copies each message once, not N times. nil if the ring has no
// Frame.
func (e Entry) Framed() []byte {
	if e.r == nil || e.s == nil {
		return nil
	}
	return e.r.encoded(e.s, encFrame, e.r.cfg.Frame)
}

// Info describes a room's log.
type Info struct {
	Room  string
	Seq   uint64 // the latest seq; 0 before the first message
	Epoch string
	First uint64 // the oldest retained seq; Seq+1 when nothing is retained
	Len   int    // retained messages
	Bytes int64  // bytes of their envelopes
}

// Sink receives each message a Store appends, while the room's log is
// still locked, so a room's messages reach it in seq order. frame is the
// encoded envelope, valid only during the call: Publish copies it into
// whatever it queues (the session builds its WebSocket frame from it) and
// must not block or call back into the store.
type Sink interface {
	Publish(room string, s Stamp, frame []byte)
}

// Reader is a joining member. Attach gets the room's position first, then
// Replay each message to catch up on, in seq order, all with the room's
// log locked, so no Append to the room is stamped until the last Replay
// has returned. Attach is where the member answers joined and is registered
// to receive live messages; it is called whether or not anything can be
// replayed. Neither may block or call back into the store.
type Reader interface {
	Attach(info Info)
	Replay(e Entry)
}

// The reasons Since cannot recover; each comes with Attach called and
// nothing replayed (a replay is exact or does not happen).
// ErrAhead means the client claims messages the room never had (a client
// bug or another box's count): wsd answers it like the others, joined with
// recovered:false and the room's real position.
var (
	ErrEpoch  = errors.New("chat: the room's history is of another epoch")
	ErrTooOld = errors.New("chat: the messages after since are no longer retained")
	ErrAhead  = errors.New("chat: since is ahead of the room")
)

// Store is a room's order and history: what a v1 server needs from it,
// so the in-memory Ring and a durable store are interchangeable.
type Store interface {
	// Append stamps m with its room's next seq, the epoch and the time,
	// keeps its envelope and hands it to sink (which may be nil) before
	// any later Append to the room is stamped. m.Stamp is ignored.
	Append(m Message, sink Sink) (Stamp, error)
	// Since attaches r, then replays to it the messages after seq of
	// epoch; when they are not all retained (or epoch is not the room's)
	// it replays nothing and returns ErrEpoch, ErrTooOld or ErrAhead. The
	// Info is what r.Attach got.
	Since(room string, seq uint64, epoch string, r Reader) (Info, error)
	// Last attaches r, then replays the room's last k retained messages.
	Last(room string, k int, r Reader) (Info, error)
	// Info describes a room that has a log.
	Info(room string) (Info, bool)
}

// Defaults of RingConfig.
const (
	DefaultMaxMessages = 100
	DefaultMaxAge      = 5 * time.Minute
	DefaultMaxBytes    = 256 << 10
	DefaultMetaTTL     = time.Hour
	// EpochLen is the length of an epoch the ring makes.
	EpochLen = 8
)

// RingConfig bounds a Ring. Zero fields take the defaults.
type RingConfig struct {
	MaxMessages int           // retained per room
	MaxAge      time.Duration // a message older than this is dropped
	MaxBytes    int           // envelope bytes retained per room
	// MaxTotalBytes, if set, bounds what the whole ring holds: an Append
	// that takes it over drops the oldest messages of its own room until it
	// is under again (or the room keeps none), so busy rooms pay for their
	// own growth and the total stays within one message of the bound.
	MaxTotalBytes int64
	// MetaTTL is how long a room with nothing retained keeps its seq and
	// epoch, so a client quiet for a while still learns it missed nothing.
	MetaTTL time.Duration
	// Charge, if set, is called with each change of the bytes the ring
	// holds (envelope buffers, slots and room headers), under a room's lock:
	// it must be quick and must not call back (an atomic add to a budget).
	Charge func(delta int64)
	// Encode, if set, is a second encoding of a message's envelope (the
	// session's gzip'd frame), appended to dst. Entry.Encoded builds it
	// for a retained message on a replay's first asking, under the room's
	// lock, at most once per message, and the ring keeps it with the
	// message: its bytes are charged (Ring.Bytes, Charge) and released
	// when the message is dropped. They are not Info.Bytes nor counted
	// against MaxBytes (what a room retains does not depend on who
	// replayed it); MaxTotalBytes sees them from the room's next Append.
	Encode func(dst, env []byte) []byte
	// Frame, if set, is a third, kept as Encode's is: Entry.Framed.
	Frame func(dst, env []byte) []byte
	// Now is the clock (time.Now if nil); NewEpoch makes epochs
	// (NewEpoch if nil). Tests inject both.
	Now      func() time.Time
	NewEpoch func() string
}

// Ring is the in-memory Store: per room, a ring of the last messages
// bounded by count, bytes and age. It is safe for concurrent use; each
// room has its own lock, taken by Append, Since, Last and Info.
type Ring struct {
	cfg   RingConfig
	mu    sync.RWMutex
	rooms map[string]*roomLog
	bytes atomic.Int64
}

type roomLog struct {
	mu      sync.Mutex
	name    string
	epoch   string
	top     uint64
	slots   []slot // circular; grows to MaxMessages
	head, n int
	bytes   int64 // len of the retained envelopes
	used    int64 // ms of the last Append, Since or Last
	dead    bool  // swept: look the room up again
	// A run seeded from a Log's Read (hot.go, View.Seed) may hold messages
	// the Log has not delivered to this box yet: those with seq in
	// (fed, seeded]. 0 when the run holds only delivered messages.
	seeded, fed uint64
}

type slot struct {
	seq   uint64
	ts    int64
	frame []byte // kept when evicted by count, for the next message in this slot
	// enc holds the message's Encode and Frame, each nil until
	// Entry.Encoded or Entry.Framed asks. Readers may hold them past the
	// lock, so they are never reused: dropped (and their charge refunded)
	// whenever the message is.
	enc [nEnc][]byte
}

// The kept encodings of a slot.
const (
	encEncode = iota // RingConfig.Encode
	encFrame         // RingConfig.Frame
	nEnc
)

var (
	slotSize    = int64(unsafe.Sizeof(slot{}))
	roomLogSize = int64(unsafe.Sizeof(roomLog{})) + 64 // + its map entry
)

// NewRing returns an empty ring.
func NewRing(cfg RingConfig) *Ring {
	if cfg.MaxMessages <= 0 {
		cfg.MaxMessages = DefaultMaxMessages
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.MetaTTL <= 0 {
		cfg.MetaTTL = DefaultMetaTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewEpoch == nil {
		cfg.NewEpoch = NewEpoch
	}
	return &Ring{cfg: cfg, rooms: make(map[string]*roomLog)}
}

const epochAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

// NewEpoch returns EpochLen random characters of [a-z2-7] from
// crypto/rand (32^8 ≈ 1.1e12 values), enough that a room's history lost
// and restarted is never mistaken for the old one.
func NewEpoch() string {
	var b [EpochLen]byte
	rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	for i := range b {
		b[i] = epochAlphabet[b[i]&31]
	}
	return string(b[:])
}

// Bytes is what the ring holds now, as charged.
func (r *Ring) Bytes() int64 { return r.bytes.Load() }

// Infos appends the Info of every room with a log to dst, in no order
// (for the admin API's room list).
func (r *Ring) Infos(dst []Info) []Info {
	r.mu.RLock()
	logs := make([]*roomLog, 0, len(r.rooms))
	for _, l := range r.rooms {
		logs = append(logs, l)
	}
	r.mu.RUnlock()
	now := r.cfg.Now().UnixMilli()
	for _, l := range logs {
		l.mu.Lock()
		if !l.dead {
			r.expire(l, now)
			dst = append(dst, l.info())
		}
		l.mu.Unlock()
	}
	return dst
}

// Rooms is the number of rooms with a log.
func (r *Ring) Rooms() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.rooms)
}

func (r *Ring) charge(d int64) {
	if d == 0 {
		return
	}
	r.bytes.Add(d)
	if r.cfg.Charge != nil {
		r.cfg.Charge(d)
	}
}

// lock returns room's log locked, creating it (with a new epoch) if create.
func (r *Ring) lock(room string, create bool) *roomLog { return r.lockAs(room, create, true) }

// lockAs is lock; a log it creates has a new epoch if withEpoch, else
// none: no position until something is put in it (Ring.Merging).
func (r *Ring) lockAs(room string, create, withEpoch bool) *roomLog {
	for {
		r.mu.RLock()
		l := r.rooms[room]
		r.mu.RUnlock()
		if l == nil {
			if !create {
				return nil
			}
			r.mu.Lock()
			if l = r.rooms[room]; l == nil {
				l = &roomLog{name: room}
				if withEpoch {
					l.epoch = r.cfg.NewEpoch()
				}
				r.rooms[room] = l
				r.charge(roomLogSize + int64(len(room)))
			}
			r.mu.Unlock()
		}
		l.mu.Lock()
		if !l.dead {
			return l
		}
		l.mu.Unlock()
	}
}

// expire drops messages older than MaxAge, and their buffers: a room that
// ages out is quiet, so it keeps nothing for a next message.
func (r *Ring) expire(l *roomLog, now int64) {
	limit := now - r.cfg.MaxAge.Milliseconds()
	for l.n > 0 && l.slots[l.head].ts <= limit {
		r.pop(l, true)
	}
}

func (r *Ring) pop(l *roomLog, release bool) {
	s := &l.slots[l.head]
	l.bytes -= int64(len(s.frame))
	for i := range s.enc {
		if s.enc[i] != nil {
			r.charge(-int64(cap(s.enc[i])))
			s.enc[i] = nil
		}
	}
	if release {
		r.charge(-int64(cap(s.frame)))
		s.frame = nil
	}
	l.head = (l.head + 1) % len(l.slots)
	l.n--
}

// Append implements Store. It does not allocate once the room's ring is
// full of envelopes at least as large as the next one.
func (r *Ring) Append(m Message, sink Sink) (Stamp, error) {
	l := r.lock(m.Room, true)
	defer l.mu.Unlock()
	now := r.cfg.Now().UnixMilli()
	l.used = now
	r.expire(l, now)
	l.top++
	m.Stamp = Stamp{Seq: l.top, Epoch: l.epoch, TS: now}
	r.keep(l, &m, sink)
	return m.Stamp, nil
}

// keep retains m, stamped already as the room's top, and hands it to
// sink; l is locked.
func (r *Ring) keep(l *roomLog, m *Message, sink Sink) {
	s := r.next(l)
	held := cap(s.frame)
	s.frame = AppendMessage(s.frame[:0], m)
	s.seq, s.ts = m.Seq, m.TS
	r.kept(l, s, held)
	if sink != nil {
		sink.Publish(m.Room, m.Stamp, s.frame)
	}
	r.trim(l)
}

// next returns the slot the room's next message goes in; l is locked.
func (r *Ring) next(l *roomLog) *slot {
	if l.n == len(l.slots) {
		if len(l.slots) < r.cfg.MaxMessages {
			r.grow(l)
		} else {
			r.pop(l, false) // its buffer takes the new message
		}
	}
	return &l.slots[(l.head+l.n)%len(l.slots)]
}

// kept counts s, filled as the room's newest message, whose frame
// buffer had held bytes of capacity before; l is locked.
func (r *Ring) kept(l *roomLog, s *slot, held int) {
	r.charge(int64(cap(s.frame) - held))
	l.n++
	l.bytes += int64(len(s.frame))
}

// trim drops the room's oldest messages while it or the ring holds more
// bytes than allowed; l is locked.
func (r *Ring) trim(l *roomLog) {
	for l.n > 0 && l.bytes > int64(r.cfg.MaxBytes) {
		r.pop(l, true)
	}
	for l.n > 0 && r.cfg.MaxTotalBytes > 0 && r.bytes.Load() > r.cfg.MaxTotalBytes {
		r.pop(l, true)
	}
}

func (r *Ring) grow(l *roomLog) {
	size := 2 * len(l.slots)
	if size < 8 {
		size = 8
	}
	if size > r.cfg.MaxMessages {
		size = r.cfg.MaxMessages
	}
	slots := make([]slot, size)
	for i := 0; i < l.n; i++ {
		slots[i] = l.slots[(l.head+i)%len(l.slots)]
	}
	r.charge(int64(size-len(l.slots)) * slotSize)
	l.slots, l.head = slots, 0
}

func (l *roomLog) info() Info {
	return Info{Room: l.name, Seq: l.top, Epoch: l.epoch, First: l.top - uint64(l.n) + 1, Len: l.n, Bytes: l.bytes}
}

func (r *Ring) replay(l *roomLog, rd Reader, from int) {
	for i := from; i < l.n; i++ {
		s := &l.slots[(l.head+i)%len(l.slots)]
		rd.Replay(Entry{Seq: s.seq, TS: s.ts, Frame: s.frame, r: r, s: s})
	}
}

// Since implements Store. A room without a log gets one (a new epoch, seq
// 0): the client learns the position it will count from.
func (r *Ring) Since(room string, seq uint64, epoch string, rd Reader) (Info, error) {
	l := r.lock(room, true)
	defer l.mu.Unlock()
	now := r.cfg.Now().UnixMilli()
	l.used = now
	r.expire(l, now)
	info := l.info()
	rd.Attach(info)
	if !Recoverable(info, seq, epoch) {
		switch {
		case epoch != l.epoch:
			return info, ErrEpoch
		case seq > l.top:
			return info, ErrAhead
		}
		return info, ErrTooOld
	}
	r.replay(l, rd, int(seq+1-info.First))
	return info, nil
}

// Last implements Store; k below 0 counts as 0.
func (r *Ring) Last(room string, k int, rd Reader) (Info, error) {
	l := r.lock(room, true)
	defer l.mu.Unlock()
	now := r.cfg.Now().UnixMilli()
	l.used = now
	r.expire(l, now)
	info := l.info()
	rd.Attach(info)
	r.replay(l, rd, l.n-max(0, min(k, l.n)))
	return info, nil
}

// encoded is Entry.Encoded and Entry.Framed: s's kept encoding i, built
// by encode; s's room is locked. Building under the lock is bounded: one
// encode per retained message for the message's whole life, whatever the
// number of replays, and an Append to the room waits for the replay anyway
// (the replay and the append may not interleave).
func (r *Ring) encoded(s *slot, i int, encode func(dst, env []byte) []byte) []byte {
	if encode == nil {
		return nil
	}
	if s.enc[i] == nil {
		s.enc[i] = encode(nil, s.frame)
		r.charge(int64(cap(s.enc[i])))
	}
	return s.enc[i]
}

// Info implements Store.
func (r *Ring) Info(room string) (Info, bool) {
	l := r.lock(room, false)
	if l == nil {
		return Info{}, false
	}
	defer l.mu.Unlock()
	r.expire(l, r.cfg.Now().UnixMilli())
	return l.info(), true
}

// Sweep drops aged messages in every room and forgets the rooms that have
// retained nothing and been unused for MetaTTL (their next message starts
// a new epoch), except those inUse reports (a room with live members keeps
// its epoch, so they never see it change under them); inUse may be nil.
// Run it periodically; it locks each room in turn and calls inUse with
// that room locked.
func (r *Ring) Sweep(inUse func(room string) bool) {
	now := r.cfg.Now().UnixMilli()
	idle := func(l *roomLog) bool {
		return l.n == 0 && now-l.used >= r.cfg.MetaTTL.Milliseconds() && (inUse == nil || !inUse(l.name))
	}
	// Expire room by room without the map lock, so Appends to other rooms
	// go on; only forgetting a room takes it (and rechecks).
	r.mu.RLock()
	logs := make([]*roomLog, 0, len(r.rooms))
	for _, l := range r.rooms {
		logs = append(logs, l)
	}
	r.mu.RUnlock()
	var forget []*roomLog
	for _, l := range logs {
		l.mu.Lock()
		r.expire(l, now)
		if !l.dead && idle(l) {
			forget = append(forget, l)
		}
		l.mu.Unlock()
	}
	for _, l := range forget {
		r.mu.Lock()
		l.mu.Lock()
		if !l.dead && idle(l) {
			l.dead = true
			delete(r.rooms, l.name)
			r.charge(-l.held())
		}
		l.mu.Unlock()
		r.mu.Unlock()
	}
}

// Recoverable reports whether a Since(since, epoch) given info replays
// (true) or refuses: the test Since applies, for an Attach that must
// write its joined frame before the replay.
func Recoverable(info Info, since uint64, epoch string) bool {
	return epoch == info.Epoch && since <= info.Seq && since+1 >= info.First
}

// held is what l charges to the ring: its header, name, slots and every
// buffer they keep. l's lock is held.
func (l *roomLog) held() int64 {
	n := roomLogSize + int64(len(l.name)) + int64(len(l.slots))*slotSize
	for i := range l.slots {
		n += int64(cap(l.slots[i].frame))
		for _, e := range l.slots[i].enc {
			n += int64(cap(e))
		}
	}
	return n
}
