// Package memlog is a chat.Log kept in memory, for tests: one Store,
// shared by several Hubs (each through its own Box), gives them one order
// per room, as package history does with JetStream, with hooks that make
// Submit fail or slow, hold a box's delivery back, Reset a box, hold
// Reads (a slow or unreachable store, for the callers' timeouts), and a
// dedup window (the same From and ID within it is a duplicate with the
// original's stamp).
package memlog

import (
	"errors"
	"sync"
	"time"

	"github.com/wsd-chat/wsd/chat"
)

// Defaults of Config.
const (
	DefaultMaxMessages = 1000
	DefaultWindow      = 2 * time.Minute // JetStream's default Duplicates window
)

// Config bounds a Store; zero fields take the defaults.
type Config struct {
	MaxMessages int           // retained per room
	Window      time.Duration // dedup window
	Now         func() time.Time
	Epoch       string // the store's epoch; "" makes one
}

// Store is the shared order: every room's messages, in one epoch.
type Store struct {
	cfg   Config
	mu    sync.Mutex
	epoch string
	rooms map[string]*room
	dedup map[string]dedupEntry
	boxes []*Box
	fail  func(m *chat.Message) error
	delay time.Duration

	// HoldReads: Reads wait on rcond (under rmu) while readsHeld.
	rmu          sync.Mutex
	rcond        *sync.Cond
	readsHeld    bool
	readsWaiting int
	reads        int
	readErr      error

	submits, dups, failed int
}

type room struct {
	seq  uint64
	msgs []chat.Message // oldest first, copies
}

type dedupEntry struct {
	st chat.Stamp
	at time.Time
}

// New returns an empty store.
func New(cfg Config) *Store {
	if cfg.MaxMessages <= 0 {
		cfg.MaxMessages = DefaultMaxMessages
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Epoch == "" {
		cfg.Epoch = chat.NewEpoch()
	}
	s := &Store{cfg: cfg, epoch: cfg.Epoch, rooms: make(map[string]*room), dedup: make(map[string]dedupEntry)}
	s.rcond = sync.NewCond(&s.rmu)
	return s
}

// HoldReads makes every Read wait (on) after it has taken its copy of
// the room, until HoldReads(false): a store that answers late, with what
// it held when asked (messages ordered meanwhile are past its answer).
func (s *Store) HoldReads(on bool) {
	s.rmu.Lock()
	s.readsHeld = on
	s.rcond.Broadcast()
	s.rmu.Unlock()
}

// SetReadError makes every Read fail with err (nil: none fail), as a
// store that is away does.
func (s *Store) SetReadError(err error) {
	s.rmu.Lock()
	s.readErr = err
	s.rmu.Unlock()
}

// Reads returns how many Reads were asked for, and how many wait on
// HoldReads now.
func (s *Store) Reads() (asked, waiting int) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.reads, s.readsWaiting
}

// Epoch is the store's epoch.
func (s *Store) Epoch() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// SetFail makes every Submit ask f first; a non-nil error fails it (nil f:
// none fail).
func (s *Store) SetFail(f func(m *chat.Message) error) {
	s.mu.Lock()
	s.fail = f
	s.mu.Unlock()
}

// SetDelay makes every Submit wait d before it is ordered.
func (s *Store) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// Reset tells every box's Deliverer (after what it was delivered so far)
// that its copy of room ("" every room) may have a hole.
func (s *Store) Reset(room string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.boxes {
		b.enqueue(item{reset: true, room: room})
	}
}

// Counts returns how many Submits were ordered, answered as duplicates and
// failed.
func (s *Store) Counts() (submits, dups, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.submits, s.dups, s.failed
}

// Messages returns a copy of room's retained messages.
func (s *Store) Messages(room string) []chat.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[room]; r != nil {
		return append([]chat.Message(nil), r.msgs...)
	}
	return nil
}

// order stamps and keeps m (a copy) and queues it for every box.
func (s *Store) order(m *chat.Message) (chat.Stamp, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		if err := s.fail(m); err != nil {
			s.failed++
			return chat.Stamp{}, false, err
		}
	}
	now := s.cfg.Now()
	var key string
	if len(m.ID) > 0 {
		key = m.From + "\x00" + string(m.ID)
		if e, ok := s.dedup[key]; ok && now.Sub(e.at) < s.cfg.Window {
			s.dups++
			return e.st, true, nil
		}
	}
	r := s.rooms[m.Room]
	if r == nil {
		r = &room{}
		s.rooms[m.Room] = r
	}
	r.seq++
	m.Stamp = chat.Stamp{Seq: r.seq, Epoch: s.epoch, TS: now.UnixMilli()}
	r.msgs = append(r.msgs, *m)
	if len(r.msgs) > s.cfg.MaxMessages {
		r.msgs = append(r.msgs[:0:0], r.msgs[len(r.msgs)-s.cfg.MaxMessages:]...)
	}
	if key != "" {
		s.dedup[key] = dedupEntry{st: m.Stamp, at: now}
	}
	s.submits++
	for _, b := range s.boxes {
		b.enqueue(item{m: *m})
	}
	return m.Stamp, false, nil
}

// Box is one Hub's handle on the store: a chat.Log.
type Box struct {
	s      *Store
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []item // deliveries and resets, in the store's order
	subs   []submit
	d      chat.Deliverer
	held   bool
	closed bool
	wg     sync.WaitGroup
}

type item struct {
	m     chat.Message
	reset bool
	room  string
}

type submit struct {
	m    chat.Message
	done func(chat.Stamp, bool, error)
}

// Box returns a new handle on s for one Hub.
func (s *Store) Box() *Box {
	b := &Box{s: s}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *Box) enqueue(it item) {
	b.mu.Lock()
	if !b.closed {
		b.queue = append(b.queue, it)
		b.cond.Broadcast()
	}
	b.mu.Unlock()
}

// Hold stops (true) or resumes (false) deliveries to this box: what is
// ordered meanwhile waits, in order (a box whose delivery lags).
func (b *Box) Hold(on bool) {
	b.mu.Lock()
	b.held = on
	b.cond.Broadcast()
	b.mu.Unlock()
}

// Start implements chat.Log.
func (b *Box) Start(d chat.Deliverer) error {
	b.mu.Lock()
	if b.d != nil || b.closed {
		b.mu.Unlock()
		return errors.New("memlog: started twice or closed")
	}
	b.d = d
	b.mu.Unlock()
	b.s.mu.Lock()
	b.s.boxes = append(b.s.boxes, b)
	b.s.mu.Unlock()
	b.wg.Add(2)
	go b.deliverLoop()
	go b.submitLoop()
	return nil
}

func (b *Box) deliverLoop() {
	defer b.wg.Done()
	b.mu.Lock()
	for {
		for !b.closed && (b.held || len(b.queue) == 0) {
			b.cond.Wait()
		}
		if b.closed {
			b.mu.Unlock()
			return
		}
		it := b.queue[0]
		b.queue[0] = item{}
		b.queue = b.queue[1:]
		b.mu.Unlock()
		if it.reset {
			b.d.Reset(it.room)
		} else {
			b.d.Deliver(&it.m)
		}
		b.mu.Lock()
	}
}

// submitLoop orders this box's Submits one at a time, in their order (as
// one connection's publishes are), and runs each done.
func (b *Box) submitLoop() {
	defer b.wg.Done()
	b.mu.Lock()
	for {
		for !b.closed && len(b.subs) == 0 {
			b.cond.Wait()
		}
		if b.closed {
			subs := b.subs
			b.subs = nil
			b.mu.Unlock()
			for _, s := range subs {
				s.done(chat.Stamp{}, false, chat.ErrUnavailable)
			}
			return
		}
		sb := b.subs[0]
		b.subs[0] = submit{}
		b.subs = b.subs[1:]
		b.mu.Unlock()
		b.s.mu.Lock()
		delay := b.s.delay
		b.s.mu.Unlock()
		if delay > 0 {
			time.Sleep(delay)
		}
		st, dup, err := b.s.order(&sb.m)
		sb.done(st, dup, err)
		b.mu.Lock()
	}
}

// Submit implements chat.Log.
func (b *Box) Submit(m *chat.Message, done func(st chat.Stamp, dup bool, err error)) {
	cp := chat.Message{Room: m.Room, From: m.From, ID: append([]byte(nil), m.ID...), Text: append([]byte(nil), m.Text...)}
	if len(cp.ID) == 0 {
		cp.ID = nil
	}
	b.mu.Lock()
	if b.closed || b.d == nil {
		b.mu.Unlock()
		go done(chat.Stamp{}, false, chat.ErrUnavailable)
		return
	}
	b.subs = append(b.subs, submit{m: cp, done: done})
	b.cond.Broadcast()
	b.mu.Unlock()
}

// Read implements chat.Log.
func (b *Box) Read(name string, after uint64, max int, fn func(m *chat.Message)) (chat.Info, error) {
	s := b.s
	s.mu.Lock()
	info := chat.Info{Room: name, Epoch: s.epoch, First: 1}
	var msgs []chat.Message
	if r := s.rooms[name]; r != nil {
		info.Seq, info.Len = r.seq, len(r.msgs)
		info.First = r.seq - uint64(len(r.msgs)) + 1
		for _, m := range r.msgs {
			info.Bytes += int64(len(m.Text))
			if m.Seq > after {
				msgs = append(msgs, m)
			}
		}
	}
	s.mu.Unlock()
	s.rmu.Lock()
	s.reads++
	if err := s.readErr; err != nil {
		s.rmu.Unlock()
		return chat.Info{Room: name}, err
	}
	if s.readsHeld {
		s.readsWaiting++
		for s.readsHeld {
			s.rcond.Wait()
		}
		s.readsWaiting--
	}
	s.rmu.Unlock()
	if max <= 0 {
		return info, nil
	}
	if len(msgs) > max {
		msgs = msgs[len(msgs)-max:]
	}
	for i := range msgs {
		fn(&msgs[i])
	}
	return info, nil
}

// Close implements chat.Log: deliveries stop, Submits not yet ordered fail.
func (b *Box) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.cond.Broadcast()
	started := b.d != nil
	b.mu.Unlock()
	b.s.mu.Lock()
	for i, x := range b.s.boxes {
		if x == b {
			b.s.boxes = append(b.s.boxes[:i], b.s.boxes[i+1:]...)
			break
		}
	}
	b.s.mu.Unlock()
	if started {
		b.wg.Wait()
	}
	return nil
}

var _ chat.Log = (*Box)(nil)
