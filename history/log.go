package history

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsd-chat/wsd/chat"
)

// Error codes of JetStream's answers this package acts on.
const (
	codeWrongLastSeq      = jetstream.JSErrCodeStreamWrongLastSequence         // 10071: the room moved on
	codeWrongLastSeqR     = jetstream.JSErrCodeStreamWrongLastSequenceConstant // 10164: the same, on R>1
	codeDupInProcess      = 10158                                              // the same msg id is being stored now
	conflictBackoff       = 500 * time.Microsecond                             // the first retry's, doubling
	maxConflictBackoff    = 20 * time.Millisecond
	verifyTimeout         = time.Second // a delivery's look at its prev
	shutdownTimeout       = 5 * time.Second
	consumerRetry         = time.Second // between attempts to recreate the consumer
	maxHeaderOverheadSize = 1024        // NATS and wsd headers of one record, bound
)

var _ chat.Log = (*Log)(nil)

// Log is a chat.Log kept in a JetStream stream. Open or OpenEmbedded
// makes one; it is safe for concurrent use.
type Log struct {
	cfg     Config
	nc      *nats.Conn
	ownConn bool
	ns      *server.Server // the embedded server, nil with Open
	unlock  func()         // the store dir's lock, nil with Open
	js      jetstream.JetStream
	stream  jetstream.Stream
	all     string // <prefix>.h.>
	pre     string // <prefix>.h.
	ctx     context.Context
	cancel  context.CancelFunc
	sem     chan struct{} // publishes in flight

	mu      sync.Mutex
	rooms   map[string]*roomState
	pending int
	closed  bool
	wg      sync.WaitGroup // room drains and failing dones

	// Delivery: one ordered consumer, its handler serialized by dmu with
	// Start and Close.
	dmu          sync.Mutex
	d            chat.Deliverer
	it           jetstream.MessagesContext
	delivered    uint64 // stream seq of the last message handled
	dclosed      bool
	resetPending atomic.Bool

	st counters
}

// pos is a room's position: its last valid message's stream seq, room
// seq and epoch. ok false: unknown (to be read from the stream); ok with
// seq 0: the room has no valid last message, its next starts an epoch
// (stream is then the subject's last message, foreign or 0).
type pos struct {
	stream, seq uint64
	epoch       string
	ok          bool
}

type roomState struct {
	head    pos // what the next publish follows: the newest this Log knows
	dl      pos // the last delivered, what the next delivery must follow
	queue   []*pending
	running bool
}

type pending struct {
	room     string
	msgID    string
	body     []byte
	deadline time.Time
	done     func(chat.Stamp, bool, error)
}

// Open returns a Log on an existing connection (a NATS cluster's
// JetStream): it creates or updates the stream and returns. nc stays the
// caller's; Close does not close it.
func Open(nc *nats.Conn, cfg Config) (*Log, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return open(nc, cfg, false)
}

func open(nc *nats.Conn, cfg Config, own bool) (*Log, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout)
	defer cancel()
	st, err := js.CreateOrUpdateStream(ctx, streamConfig(cfg))
	if err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, nats.ErrNoResponders) ||
			errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("history: creating stream %s: %w (%w)", cfg.Stream, chat.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("history: creating stream %s: %w", cfg.Stream, err)
	}
	l := &Log{
		cfg: cfg, nc: nc, ownConn: own, js: js, stream: st,
		all: cfg.Prefix + ".h.>", pre: cfg.Prefix + ".h.",
		sem:   make(chan struct{}, cfg.MaxInflight),
		rooms: make(map[string]*roomState),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l, nil
}

func streamConfig(cfg Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              cfg.Stream,
		Description:       "wsd room history",
		Subjects:          []string{cfg.Prefix + ".h.>"},
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: int64(cfg.MaxMsgsPerRoom),
		MaxMsgs:           -1,
		MaxAge:            cfg.MaxAge,
		MaxBytes:          cfg.MaxBytes,
		MaxMsgSize:        int32(min(int64(maxRecordSize(cfg)), cfg.MaxBytes)),
		Duplicates:        cfg.Duplicates,
		AllowDirect:       true,
	}
}

// maxRecordSize bounds a record on the server too, so a foreign writer
// cannot store what no box would deliver. The stream's MaxMsgSize is also
// at most MaxBytes: with DiscardOld JetStream would otherwise take a
// message larger than the whole stream and drop it (and everything else)
// at once, acking it as stored.
func maxRecordSize(cfg Config) int {
	return maxHeaderOverheadSize + MaxFromLen + chat.MaxIDLen + cfg.MaxText + 20
}

func (l *Log) subject(room string) string { return l.pre + chat.RoomToken(room) }

// Submit implements chat.Log.
func (l *Log) Submit(m *chat.Message, done func(chat.Stamp, bool, error)) {
	l.st.submitted.Add(1)
	switch {
	case m.Room != "" && !chat.ValidRoom(m.Room):
		l.refuse(done, fmt.Errorf("history: invalid room %q", m.Room))
		return
	case len(m.Text) > l.cfg.MaxText, len(m.From) > MaxFromLen, len(m.ID) > chat.MaxIDLen:
		l.refuse(done, errSize)
		return
	}
	p := &pending{
		room:     m.Room,
		body:     appendBody(make([]byte, 0, len(m.From)+len(m.ID)+len(m.Text)+4), m),
		deadline: time.Now().Add(l.cfg.PublishTimeout),
		done:     done,
	}
	if len(m.ID) > 0 {
		p.msgID = msgID(m.From, m.ID)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.refuse(done, chat.ErrUnavailable)
		return
	}
	if l.pending >= l.cfg.MaxPending {
		l.mu.Unlock()
		l.refuse(done, fmt.Errorf("%w: %d submits queued", chat.ErrUnavailable, l.cfg.MaxPending))
		return
	}
	l.pending++
	r := l.roomLocked(m.Room)
	r.queue = append(r.queue, p)
	if !r.running {
		r.running = true
		l.wg.Add(1)
		go l.drain(r)
	}
	l.mu.Unlock()
}

// refuse calls done with err on a goroutine of the Log, as Submit
// promises, never the caller's.
func (l *Log) refuse(done func(chat.Stamp, bool, error), err error) {
	l.count(err)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		done(chat.Stamp{}, false, err)
	}()
}

func (l *Log) count(err error) {
	if errors.Is(err, chat.ErrUnavailable) {
		l.st.unavailable.Add(1)
	} else {
		l.st.failed.Add(1)
	}
}

// roomLocked returns room's state, making it; l.mu is held. Past
// MaxRooms an idle room is forgotten: its position is read again from
// the stream when next needed (one direct get).
func (l *Log) roomLocked(room string) *roomState {
	r := l.rooms[room]
	if r != nil {
		return r
	}
	if len(l.rooms) >= l.cfg.MaxRooms {
		tries := 0
		for name, o := range l.rooms {
			if !o.running {
				delete(l.rooms, name)
				break
			}
			if tries++; tries > 64 {
				break
			}
		}
	}
	r = &roomState{}
	l.rooms[room] = r
	return r
}

// drain publishes a room's queue, one message at a time, so the room's
// order is the order of Submit and a conflict costs one retry, not a
// pile-up. It ends when the queue is empty.
func (l *Log) drain(r *roomState) {
	defer l.wg.Done()
	for {
		l.mu.Lock()
		if len(r.queue) == 0 {
			r.running = false
			l.mu.Unlock()
			return
		}
		p := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		l.mu.Unlock()

		var (
			st  chat.Stamp
			dup bool
			err error
		)
		select {
		case l.sem <- struct{}{}:
			st, dup, err = l.publish(r, p)
			<-l.sem
		case <-l.ctx.Done():
			err = chat.ErrUnavailable
		}
		l.mu.Lock()
		l.pending--
		l.mu.Unlock()
		switch {
		case err != nil:
			l.count(err)
		case dup:
			l.st.duplicates.Add(1)
		default:
			l.st.stored.Add(1)
		}
		p.done(st, dup, err)
	}
}

// publish stores p after its room's last message, under
// Nats-Expected-Last-Subject-Sequence: if another box (or anything) wrote
// to the room since the position this Log knows, JetStream refuses it,
// and publish reads the room's last message and tries again.
//
// JetStream checks the expected last sequence before the msg id on a
// single server (stream.go, processJetStreamMsg) and the msg id first on
// a cluster (checkMsgHeadersPreClusteredProposal): a repeat of a stored
// message is therefore either refused as a conflict first (and seen as a
// duplicate on the retry, whose position is right) or answered as a
// duplicate at once. Both end in the duplicate branch.
func (l *Log) publish(r *roomState, p *pending) (chat.Stamp, bool, error) {
	ctx, cancel := context.WithDeadline(l.ctx, p.deadline)
	defer cancel()
	subj := l.subject(p.room)
	for attempt := 0; ; attempt++ {
		l.mu.Lock()
		h := r.head
		l.mu.Unlock()
		if !h.ok {
			var err error
			if h, err = l.last(ctx, subj); err != nil {
				return chat.Stamp{}, false, l.classify(err)
			}
			l.mu.Lock()
			if !r.head.ok || h.stream >= r.head.stream {
				r.head = h
			}
			l.mu.Unlock()
		}
		seq, epoch := h.seq+1, h.epoch
		if h.seq == 0 {
			seq, epoch = 1, chat.NewEpoch()
		}
		ts := time.Now().UnixMilli()
		msg := &nats.Msg{Subject: subj, Header: header(seq, epoch, ts, h.stream), Data: p.body}
		opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(h.stream)}
		if p.msgID != "" {
			opts = append(opts, jetstream.WithMsgID(p.msgID))
		}
		ack, err := l.js.PublishMsg(ctx, msg, opts...)
		if err != nil {
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) {
				switch apiErr.ErrorCode {
				case codeWrongLastSeq, codeWrongLastSeqR, codeDupInProcess:
					l.st.conflicts.Add(1)
					if attempt >= l.cfg.MaxRetries {
						return chat.Stamp{}, false, fmt.Errorf("history: room %q: %d conflicts in a row: %w", p.room, attempt+1, err)
					}
					l.mu.Lock()
					if r.head == h {
						r.head.ok = false
					}
					l.mu.Unlock()
					if err := sleep(ctx, backoff(attempt)); err != nil {
						return chat.Stamp{}, false, l.classify(err)
					}
					continue
				}
			}
			return chat.Stamp{}, false, l.classify(err)
		}
		if ack.Duplicate {
			return l.original(ctx, ack.Sequence)
		}
		l.mu.Lock()
		if !r.head.ok || ack.Sequence > r.head.stream {
			r.head = pos{stream: ack.Sequence, seq: seq, epoch: epoch, ok: true}
		}
		l.mu.Unlock()
		l.st.noteStored(ack.Sequence)
		return chat.Stamp{Seq: seq, Epoch: epoch, TS: ts}, false, nil
	}
}

// backoff is how long a publish waits after its attempt'th conflict: a
// box that lost the room to another must not re-read and retry at once,
// or a box writing the room back to back (it knows the room's position
// from its own acks, one round trip ahead) wins every time. Doubling,
// capped, jittered by ±50 % so two losers do not collide again.
func backoff(attempt int) time.Duration {
	d := conflictBackoff << min(attempt, 10)
	d = min(d, maxConflictBackoff)
	return d/2 + rand.N(d)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// original is a duplicate's answer: the stamp of the message JetStream
// kept for the msg id. If that message is gone already (the room's
// history is shorter than the dedup window) the send is still a
// duplicate, with a zero stamp: delivering it again would show it twice.
func (l *Log) original(ctx context.Context, seq uint64) (chat.Stamp, bool, error) {
	raw, err := l.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		l.st.dupGone.Add(1)
		return chat.Stamp{}, true, nil
	}
	if err != nil {
		return chat.Stamp{}, false, l.classify(err)
	}
	rec, err := parseStamp(raw.Header)
	if err != nil {
		l.st.dupGone.Add(1)
		return chat.Stamp{}, true, nil
	}
	return chat.Stamp{Seq: rec.seq, Epoch: rec.epoch, TS: rec.ts}, true, nil
}

// last reads the room's position from its last stored message. A last
// message that is not a valid record linked to its prev (written by
// something else) leaves
// the room without a position: its next message starts a new epoch, since
// what came before cannot be told apart from a forgery.
func (l *Log) last(ctx context.Context, subj string) (pos, error) {
	raw, err := l.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return pos{ok: true}, nil
	}
	if err != nil {
		return pos{}, err
	}
	rec, err := parseRecord(raw.Header, raw.Data, l.cfg.MaxText)
	if err == nil {
		var ok, missing bool
		if ok, missing, err = l.linked(ctx, subj, &rec, raw.Sequence); err != nil {
			return pos{}, err
		}
		if ok || missing {
			return pos{stream: raw.Sequence, seq: rec.seq, epoch: rec.epoch, ok: true}, nil
		}
	}
	l.st.foreign.Add(1)
	return pos{stream: raw.Sequence, ok: true}, nil
}

// classify maps a failed call to what done gets: ErrUnavailable (wrapped)
// when the store could not be reached or did not answer in time, the
// store's own refusal otherwise (a limit: the caller learns which).
func (l *Log) classify(err error) error {
	if l.ctx.Err() != nil {
		return fmt.Errorf("%w: closed", chat.ErrUnavailable)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%w: no answer within %v", chat.ErrUnavailable, l.cfg.PublishTimeout)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrReconnectBufExceeded), // reconnecting, publishes not buffered
		errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %v", chat.ErrUnavailable, err)
	}
	return fmt.Errorf("history: the store refused it: %w", err)
}

// Start implements chat.Log: one ordered consumer over every room's
// subject, from the stream's end now, read by one goroutine of the Log.
func (l *Log) Start(d chat.Deliverer) error {
	l.dmu.Lock()
	defer l.dmu.Unlock()
	if l.dclosed {
		return errClosed
	}
	if l.d != nil {
		return errors.New("history: Start called twice")
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.StartTimeout)
	defer cancel()
	info, err := l.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("history: start: %w", l.classify(err))
	}
	start := info.State.LastSeq + 1
	it, err := l.messages(ctx, start)
	if err != nil {
		return fmt.Errorf("history: start: %w", l.classify(err))
	}
	l.d, l.delivered, l.it = d, start-1, it
	l.st.noteStored(start - 1)
	l.st.consuming.Store(true)
	l.wg.Add(1)
	go l.consume(it)
	return nil
}

// messages opens an ordered consumer from stream seq start.
//
// The Log reads it through Messages, on its own goroutine, rather than
// Consume's callbacks: after the ordered consumer recreates itself (a
// missed heartbeat, a sequence mismatch) the callback of the old pull
// subscription can still be running while the new one's starts, and a
// message handed to the older one after a newer one would be out of
// order. Next is called by one goroutine, so there is one order.
func (l *Log) messages(ctx context.Context, start uint64) (jetstream.MessagesContext, error) {
	cons, err := l.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{l.all},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
	})
	if err != nil {
		return nil, err
	}
	return cons.Messages()
}

// consume is the delivery goroutine. The ordered consumer recovers from
// short outages by itself, resuming after the last message it handed
// over (nothing is lost unless it expired meanwhile, which handle sees
// as a hole in the stream seqs). When it gives up, consume makes a new
// one from the same place, and the next delivery starts with Reset("").
func (l *Log) consume(it jetstream.MessagesContext) {
	defer l.wg.Done()
	defer l.st.consuming.Store(false)
	for {
		for {
			msg, err := it.Next()
			if err != nil {
				if l.ctx.Err() == nil {
					l.cfg.Logf("history: consumer stopped: %v", err)
				}
				break
			}
			l.handle(msg)
		}
		it.Stop()
		for {
			if sleep(l.ctx, consumerRetry) != nil {
				return
			}
			l.st.consumerResets.Add(1)
			l.resetPending.Store(true)
			l.st.consuming.Store(false)
			l.dmu.Lock()
			from := l.delivered + 1
			l.dmu.Unlock()
			ctx, cancel := context.WithTimeout(l.ctx, l.cfg.StartTimeout)
			next, err := l.messages(ctx, from)
			cancel()
			if err != nil {
				l.cfg.Logf("history: consumer from %d: %v", from, err)
				continue
			}
			l.dmu.Lock()
			closed := l.dclosed
			if !closed {
				l.it = next
			}
			l.dmu.Unlock()
			if closed {
				next.Stop()
				return
			}
			it = next
			l.st.consuming.Store(true)
			break
		}
	}
}

// resetAllLocked forgets every room's delivery position and tells the
// Deliverer; dmu is held.
func (l *Log) resetAllLocked() {
	l.mu.Lock()
	for _, r := range l.rooms {
		r.dl = pos{}
	}
	l.mu.Unlock()
	l.st.resets.Add(1)
	l.d.Reset("")
}

// handle is the consumer's handler: it validates each message and
// delivers the wsd records that continue their room.
func (l *Log) handle(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	l.dmu.Lock()
	defer l.dmu.Unlock()
	if l.dclosed || l.d == nil {
		return
	}
	if err != nil {
		l.st.foreign.Add(1)
		return
	}
	sseq := meta.Sequence.Stream
	if sseq <= l.delivered {
		return // handed over already (a consumer restart)
	}
	if l.resetPending.Swap(false) || sseq > l.delivered+1 {
		// A hole in the stream: messages were removed (expired, evicted
		// by the room limit) before this Log got them.
		l.resetAllLocked()
	}
	l.delivered = sseq
	l.st.lastDelivered.Store(sseq)
	room, ok := strings.CutPrefix(msg.Subject(), l.pre)
	if ok {
		room, ok = chat.TokenRoom(room)
	}
	if !ok {
		l.st.foreign.Add(1)
		return
	}
	rec, err := parseRecord(msg.Headers(), msg.Data(), l.cfg.MaxText)
	if err != nil {
		l.st.foreign.Add(1)
		return
	}
	gap, ok := l.follows(room, msg.Subject(), &rec, sseq)
	if !ok {
		l.st.foreign.Add(1)
		return
	}
	if gap {
		l.st.gaps.Add(1)
		l.d.Reset(room)
	}
	l.st.delivered.Add(1)
	m := chat.Message{
		Room:  room,
		Stamp: chat.Stamp{Seq: rec.seq, Epoch: rec.epoch, TS: rec.ts},
		From:  string(rec.from),
		ID:    rec.id,
		Text:  rec.text,
	}
	l.d.Deliver(&m)
}

// follows decides whether rec (at stream seq sseq) continues its room as
// delivered so far, and records it as the room's position if so. gap
// reports a continuation that skipped seqs this Log did not deliver
// (refused as invalid here, valid for the box that wrote them). dmu is
// held.
//
// The rule: the next seq of the epoch whose prev is the message delivered
// last, or seq 1 of another epoch. Anything else is checked against the
// message its prev names (one direct get): it must be the room's, of the
// same epoch, one seq before. A room this Log has not delivered yet (just
// started, or forgotten past MaxRooms) is checked the same way.
func (l *Log) follows(room, subj string, rec *record, sseq uint64) (gap, ok bool) {
	l.mu.Lock()
	r := l.roomLocked(room)
	d := r.dl
	l.mu.Unlock()
	switch {
	case d.ok && rec.epoch == d.epoch && rec.seq == d.seq+1 && rec.prev == d.stream:
		ok = true
	case rec.seq == 1 && (!d.ok || rec.epoch != d.epoch) && rec.prev < sseq:
		ok = true
	case d.ok && rec.epoch == d.epoch && rec.seq > d.seq+1 && rec.prev > d.stream && rec.prev < sseq:
		ok, gap = l.verifyPrev(subj, rec, sseq, false), true
	case !d.ok && rec.seq > 1 && rec.prev > 0 && rec.prev < sseq:
		ok = l.verifyPrev(subj, rec, sseq, true)
	}
	if !ok {
		return false, false
	}
	l.mu.Lock()
	if r = l.rooms[room]; r == nil {
		r = l.roomLocked(room)
	}
	p := pos{stream: sseq, seq: rec.seq, epoch: rec.epoch, ok: true}
	r.dl = p
	if !r.head.ok || sseq > r.head.stream {
		r.head = p
	}
	l.mu.Unlock()
	return gap, true
}

// verifyPrev checks a delivery against the message rec.prev names.
// missingOK accepts a prev that is gone (a room first seen: its older
// history may have expired); a gap's prev was stored after the last
// delivery and must still be there.
func (l *Log) verifyPrev(subj string, rec *record, sseq uint64, missingOK bool) bool {
	ctx, cancel := context.WithTimeout(l.ctx, verifyTimeout)
	defer cancel()
	l.st.verifies.Add(1)
	ok, missing, err := l.linked(ctx, subj, rec, sseq)
	return err == nil && (ok || missing && missingOK)
}

// linked reports whether rec, stored at stream seq sseq, follows the
// message its prev names: seq 1 follows anything before it; any other
// seq needs its prev to be the room's message of the same epoch one seq
// before. missing: that message is gone (expired or evicted), so the
// link cannot be checked.
func (l *Log) linked(ctx context.Context, subj string, rec *record, sseq uint64) (ok, missing bool, err error) {
	if rec.prev >= sseq {
		return false, false, nil
	}
	if rec.seq == 1 {
		return true, false, nil
	}
	if rec.prev == 0 {
		return false, false, nil
	}
	raw, err := l.stream.GetMsg(ctx, rec.prev)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, true, nil
	}
	if err != nil {
		return false, false, err
	}
	if raw.Subject != subj {
		return false, false, nil
	}
	prev, err := parseStamp(raw.Header)
	return err == nil && prev.epoch == rec.epoch && prev.seq+1 == rec.seq, false, nil
}

// Close implements chat.Log. Queued and in-flight Submits end with
// ErrUnavailable; an embedded server is shut down (its files stay).
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.cancel()

	l.dmu.Lock()
	l.dclosed = true
	it := l.it
	l.dmu.Unlock()
	if it != nil {
		it.Stop() // ends consume's Next
	}
	l.wg.Wait()
	if l.ownConn {
		l.nc.Close()
	}
	if l.ns != nil {
		l.ns.Shutdown()
		done := make(chan struct{})
		go func() { l.ns.WaitForShutdown(); close(done) }()
		select {
		case <-done:
		case <-time.After(shutdownTimeout):
		}
	}
	if l.unlock != nil {
		l.unlock()
	}
	return nil
}
