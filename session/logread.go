package session

import (
	"errors"
	"sync"
	"time"

	"github.com/wsd-chat/wsd/chat"
	"github.com/wsd-chat/wsd/codec"
)

// Cold joins: a v1 join the Ring cannot answer (log.go, joinLogged) reads
// the Log, which may take milliseconds (a JetStream direct get per
// message) or, with the store away, its whole timeout. The Read never
// runs on a reactor worker: the join is queued for one of LogReads reader
// goroutines (at most LogReadQueue waiting; past that it is answered from
// the Ring alone and counted, Stats.LogReadsShed), and the connection's
// OnReady goes back to the reactor. Until the join is answered the
// connection reads nothing more from its socket (TCP holds the rest), and
// the commands that came with the join in the same read wait behind it,
// in order (charged to the inbound budget): its answers keep the order of
// its commands. Up to maxColdDeferred bytes of them are read meanwhile, so
// a peer that closes or pings is seen at once; past that the socket is
// left alone (TCP holds the rest). A first join holds the 101 back as
// well, with joined, as it does for a hot join, and reads nothing until
// it is answered: nothing may go out before the 101, a pong included.
//
// The reader hands the result back through the coldJoin and wakes the
// connection (Notify); its OnReady merges it under the room's lock
// (mergeRead), so only OnReady changes the connection's join, as for a
// hot one, and the seam is exact whatever arrived meanwhile: what the Log
// delivered during the Read is in the Ring, past the Read's top. A join
// not answered within LogReadTimeout is answered from the Ring alone
// (answerFromRing); its Read, when it returns, still seeds the Ring. A
// connection closed meanwhile drops its join (finish): the reader finds
// it abandoned and gives back what it holds. What a Read returns is
// charged to the outbound budget until the join is done.

// maxColdDeferred bounds the bytes of commands a connection keeps while
// its join waits for the Log.
const maxColdDeferred = 64 << 10

// coldFull reports whether c, whose join waits for the Log, reads no
// more for now (coldReady reads on). OnReady only.
func (c *Conn) coldFull() bool {
	v := c.v1
	return v.welcome != nil || v.cold().held >= maxColdDeferred
}

// coldJoin is one cold join's Read, shared by the connection's OnReady
// and a reader.
type coldJoin struct {
	c    *Conn
	room string

	mu    sync.Mutex
	state coldState
	info  chat.Info
	err   error
	rc    readCopy

	// OnReady only.
	timer    *time.Timer
	try      int      // Reads before this one (logJoinRetries)
	deferred [][]byte // commands that came after the join, in order
	held     int64    // their bytes, charged to the inbound budget
}

type coldState uint8

const (
	coldQueued    coldState = iota // waiting for a reader
	coldReading                    // a reader runs its Read
	coldDone                       // the Read returned: info, err, rc
	coldTimedOut                   // LogReadTimeout passed first
	coldAbandoned                  // the connection closed first
)

// startLogReaders starts the readers of cold joins.
func (h *Hub) startLogReaders() {
	h.lg.reads = make(chan *coldJoin, h.cfg.LogReadQueue)
	for range h.cfg.LogReads {
		go h.logReader()
	}
}

func (h *Hub) logReader() {
	for {
		select {
		case <-h.stop:
			return
		case cj := <-h.lg.reads:
			h.readCold(cj)
		}
	}
}

// readCold runs cj's Read, unless it timed out or was abandoned while
// queued.
func (h *Hub) readCold(cj *coldJoin) {
	cj.mu.Lock()
	if cj.state != coldQueued {
		cj.mu.Unlock()
		return
	}
	cj.state = coldReading
	cj.mu.Unlock()
	h.stats.LogReads.Add(1)
	var rc readCopy
	info, err := h.lg.log.Read(cj.room, 0, h.cfg.HistorySize, rc.add)
	h.out.add(rc.bytes) // after the Read: what it holds now is known
	cj.mu.Lock()
	st := cj.state
	if st == coldReading {
		cj.state, cj.info, cj.err, cj.rc = coldDone, info, err, rc
	}
	cj.mu.Unlock()
	if st == coldReading {
		cj.c.Notify(readyEvent)
		return
	}
	// Nobody waits for it any more; the room's latest still serve the
	// next join.
	if err == nil {
		h.seed(cj.room, info, &rc)
	}
	h.out.add(-rc.bytes)
}

// seed puts what a Read returned of room's latest messages in the Ring.
func (h *Hub) seed(room string, info chat.Info, rc *readCopy) {
	if len(rc.ents) == 0 || rc.ents[len(rc.ents)-1].Seq != info.Seq {
		return
	}
	h.ring.Merging(room, func(view chat.View) { h.seedLocked(view, info, rc) })
}

// startCold queues a Read for v.join, carrying deferred (the commands
// waiting behind the join, charged already), and reports false if the
// queue is full: nothing is queued then.
func (c *Conn) startCold(try int, prev *coldJoin) bool {
	v, h := c.v1, c.hub
	cj := &coldJoin{c: c, room: v.join.room, try: try}
	if prev != nil {
		cj.deferred, cj.held = prev.deferred, prev.held
	} else if v.join.id != nil {
		// The command's id points into the read buffer, reused once
		// OnReady returns.
		v.join.id = append([]byte(nil), v.join.id...)
	}
	cj.timer = time.AfterFunc(h.cfg.LogReadTimeout, func() {
		cj.mu.Lock()
		st := cj.state
		if st == coldQueued || st == coldReading {
			cj.state = coldTimedOut
		}
		cj.mu.Unlock()
		if st == coldQueued || st == coldReading {
			c.Notify(readyEvent)
		}
	})
	if v.welcome != nil && !v.join.waited {
		// Who holds the key now: joinV1 lets this first join displace
		// only that connection (a reconnect), never one that upgrades
		// while it waits.
		s := h.table.shardOf(c.key)
		s.mu.RLock()
		v.join.waited, v.join.holder = true, s.byKey.get(c.key)
		s.mu.RUnlock()
	}
	// Set before the reader can see it: its wake-up finds the join.
	v.coldWait = cj
	c.flags.set(flagCold)
	select {
	case h.lg.reads <- cj:
	default:
		cj.timer.Stop()
		v.coldWait = nil
		c.flags.clear(flagCold)
		return false
	}
	if prev == nil {
		h.stats.LogReadsWaiting.Add(1)
	}
	return true
}

// deferCommand keeps payload, a command that arrived while the join
// waits for its Read, to run once the join is answered.
func (c *Conn) deferCommand(payload []byte) {
	cj := c.v1.cold()
	cj.deferred = append(cj.deferred, append([]byte(nil), payload...))
	n := int64(len(payload)) + 24
	cj.held += n
	c.hub.in.add(n)
}

// coldReady is OnReady's look at a pending cold join: once its Read is in
// (or timed out) the join is answered and the commands behind it run. It
// reports whether the connection reads its socket again.
func (c *Conn) coldReady() bool {
	v, h := c.v1, c.hub
	cj := v.cold()
	cj.mu.Lock()
	st := cj.state
	cj.mu.Unlock()
	if st == coldQueued || st == coldReading {
		return false
	}
	cj.timer.Stop()
	v.coldWait = nil
	c.flags.clear(flagCold)
	if c.state.Load() != stOpen || c.closeReq.Load() != nil || c.flags.has(flagKill) {
		c.dropCold(cj) // closing: settle takes it from here
		return true
	}
	if h.draining.Load() && v.welcome != nil {
		c.dropCold(cj)
		c.refuse(errDraining, nil, nil)
		return true
	}
	switch st {
	case coldDone:
		switch {
		case cj.err != nil:
			h.stats.LogReadErrors.Add(1)
			c.answerFromRing(true)
		case !c.mergeRead(cj.info, &cj.rc):
			h.out.add(-cj.rc.bytes)
			cj.rc = readCopy{}
			if cj.try < logJoinRetries && c.startCold(cj.try+1, cj) {
				return false
			}
			c.answerFromRing(false)
		}
		h.out.add(-cj.rc.bytes)
	case coldTimedOut:
		h.stats.LogReadTimeouts.Add(1)
		c.answerFromRing(false)
	}
	h.stats.LogReadsWaiting.Add(-1)
	c.endCold()
	c.runDeferred(cj)
	v.done() // kept while the join waited (unless a deferred join waits now)
	return true
}

// endCold is the rest of runJoin (v1.go) for a join that waited: the
// answer goes out and, for a first join, what it displaced is closed.
func (c *Conn) endCold() {
	v := c.v1
	first := v.welcome
	if first != nil && v.join.superseded {
		c.refuseFirst(errSuperseded)
		return
	}
	if first != nil && v.join.storeSlow {
		c.refuseFirst(errHistoryUnavailable)
		return
	}
	old := c.endJoin()
	if first != nil {
		v.welcome = nil
		c.joinedFirst(old)
	}
}

// refuseFirst answers a first join the box cannot place with an HTTP
// refusal, err: the store did not answer and the Ring knows nothing of
// the room (503), or the key changed hands while it waited (409). The
// 101 is not sent.
func (c *Conn) refuseFirst(err error) {
	v := c.v1
	w := v.welcome
	v.join, v.welcome = pendingJoin{}, nil
	w.release()
	c.refuse(err, nil, nil)
}

// runDeferred runs the commands that waited behind cj's join, in order,
// until one of them is a join that waits in turn: the rest wait behind it.
func (c *Conn) runDeferred(cj *coldJoin) {
	h := c.hub
	for i, p := range cj.deferred {
		if c.v1.cold() != nil {
			next := c.v1.cold()
			next.deferred = append(next.deferred, cj.deferred[i:]...)
			for _, q := range cj.deferred[i:] {
				next.held += int64(len(q)) + 24
			}
			break
		}
		h.in.add(-int64(len(p)) - 24)
		cj.deferred[i] = nil
		if c.state.Load() != stOpen || c.closeReq.Load() != nil {
			continue // closing: late commands are dropped, as OnMessage does
		}
		if err := c.command(p); err != nil {
			c.hub.closeAfterFanout(c, asCloseError(err))
		}
	}
	cj.deferred, cj.held = nil, 0
}

// dropCold forgets cj, the connection's cold join, on its way out: a
// Read in gives back its charge (and seeds the Ring), one still running
// finds the join abandoned, and the commands behind it are dropped.
func (c *Conn) dropCold(cj *coldJoin) {
	h := c.hub
	cj.timer.Stop()
	cj.mu.Lock()
	st := cj.state
	if st != coldDone {
		cj.state = coldAbandoned
	}
	cj.mu.Unlock()
	if st == coldDone {
		if cj.err == nil {
			h.seed(cj.room, cj.info, &cj.rc)
		}
		h.out.add(-cj.rc.bytes)
	}
	h.in.add(-cj.held)
	cj.deferred, cj.held = nil, 0
	h.stats.LogReadsWaiting.Add(-1)
	if v := c.v1; v.cold() == cj {
		v.coldWait = nil
		c.flags.clear(flagCold)
	}
	if w := c.v1.welcome; w != nil {
		c.v1.welcome = nil
		c.v1.join = pendingJoin{}
		w.release()
	}
}

// asCloseError is the close a command's error asks for (input's rule).
func asCloseError(err error) *codec.CloseError {
	var ce *codec.CloseError
	if !errors.As(err, &ce) {
		ce = errInternal
	}
	return ce
}
