package session

import (
	"math"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/codec"
)

// The write queue, one for ws and wss. Every function here whose name ends
// in Locked needs c.wmu held; the others take it themselves.
//
// One path serves both: deliver writes at once what it can, flushLocked
// writes what was queued, and each first runs a prepare step that makes
// frames ready for the socket — nothing to do for ws, sealing into TLS
// records for wss (tls.go). The queue holds the same shared plaintext
// frames for both, so a backed-up wss connection holds references, not
// copies, and -max-queue drops its unsent frames as for ws.
//
// Invariant: c.headStarted is true exactly when outq[0] is committed to
// the wire — partly written (ws), or ciphertext already numbered by the
// TLS sequence (wss) — and must go out whole and first. On wss nothing but
// the head is ciphertext. overflowLocked keeps a started head; the queued
// byte counts (-max-queue, QueuedBytes) count ciphertext for a wss head
// and plaintext for the rest.

// outItem is one queued frame; b is what is left to write of it. A broadcast
// frame is shared and reference-counted through msg; a frame only this
// connection sends (a control frame, a handshake response) is owned by the
// queue through own. Static frames (the ping) have neither.
type outItem struct {
	b   []byte
	msg *message
	own *ownFrame
	v   uint8 // msg's variant that b belongs to
}

// charge is what the item costs its connection against MaxQueue.
func (it *outItem) charge() int64 { return int64(len(it.b)) + itemCost }

// held is what the item adds to the outbound budget beyond the broadcast
// it shares, which is charged once, when built.
func (it *outItem) held() int64 {
	if it.own != nil {
		return itemCost + int64(cap(it.own.b))
	}
	return itemCost
}

// ownFrame is a pooled buffer for a frame only one connection sends.
type ownFrame struct{ b []byte }

var ownFrames = sync.Pool{New: func() any { return new(ownFrame) }}

// maxPooledOwn bounds the buffers pooled ownFrames keep.
const maxPooledOwn = 4 << 10

// newOwnFrame returns a frame built by fill into a pooled buffer.
func newOwnFrame(fill func([]byte) []byte) *ownFrame {
	f := ownFrames.Get().(*ownFrame)
	f.b = fill(f.b[:0])
	return f
}

func (f *ownFrame) release() {
	if cap(f.b) > maxPooledOwn {
		f.b = nil
	}
	f.b = f.b[:0]
	ownFrames.Put(f)
}

// pingFrame is the empty ping wsd sends to quiet connections, shared by all.
var pingFrame = codec.AppendFrame(nil, codec.OpPing, nil)

// releaseLocked takes a queued item off c's books and gives up its bytes.
func (c *Conn) releaseLocked(it *outItem) {
	c.bookLocked(-it.charge(), -it.held())
	switch {
	case it.msg != nil:
		it.msg.releaseQueued(int(it.v))
	case it.own != nil:
		it.own.release()
	}
	*it = outItem{}
}

// write writes as much of items as the socket takes in one syscall and
// reports how many bytes went out. EAGAIN is not an error.
func (c *Conn) write(items []outItem) (int, error) {
	n, err := writev(c.fd(), items)
	c.hub.stats.WriteSyscalls.Add(1)
	if err == unix.EAGAIN {
		return 0, nil
	}
	c.hub.stats.BytesOut.Add(uint64(n))
	return n, err
}

// send hands c a frame only it sends; c owns f from now on.
func (c *Conn) send(f *ownFrame) bool {
	return c.deliver([]outItem{{b: f.b, own: f}})
}

// deliver hands frames to the connection: written at once if its queue is
// empty and the socket takes them, queued otherwise. It takes a reference
// on each broadcast it queues and ownership of every own frame. It reports
// whether the connection still accepts data (false once closing).
//
// A non-empty queue means the socket was full at its last write, so
// EPOLLOUT will flush it: frames for such a connection are only queued.
// Otherwise the frames are made ready for the socket (prepareLocked) and
// written straight from items, and only what the socket leaves is queued:
// a broadcast to a member that keeps up is never queued at all.
func (c *Conn) deliver(items []outItem) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	defer c.publishLocked()
	if c.wclosed {
		discardOwn(items)
		return false
	}
	c.countWindowLocked(items)
	full := len(c.outq) > 0
	if !full {
		var sealed [1]outItem
		wire, rest, err := c.prepareLocked(items, &sealed)
		full = c.writeNowLocked(wire)
		if err != nil && !c.wend.has(wendErr) {
			c.writeFailedLocked()
		}
		if c.wend.has(wendErr) {
			discardOwn(rest)
			return false
		}
		items = rest
	}
	for _, it := range items {
		c.enqueueLocked(it)
	}
	if !full && len(items) > 0 {
		// A wss backlog past one sealed batch, and the socket took the
		// batch: no EPOLLOUT is coming, so seal and write on.
		c.flushLocked()
		if c.wend.has(wendErr) {
			return false
		}
	}
	return c.queueLimitsLocked()
}

// hold queues items behind what c has queued, without writing them, so
// that frames handed over in several steps go out together: a v1 join's
// 101, joined and replay leave in one writev (flushHeld) rather than one
// write each. Anything delivered meanwhile (a presence frame, another
// room's message, a direct message) finds the queue non-empty and queues
// behind them, in order. Only the connection's own goroutine holds, and it
// calls flushHeld before returning to the reactor: held frames never wait
// for an EPOLLOUT that the socket, not being full, would not send. Like
// deliver it takes ownership of every own frame and reports whether the
// connection still accepts data.
func (c *Conn) hold(items []outItem) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	defer c.publishLocked()
	if c.wclosed {
		discardOwn(items)
		return false
	}
	c.countWindowLocked(items)
	c.enqueueAllLocked(items)
	return true
}

// countWindowLocked adds items to what the sweeper's window has seen
// handed over (kernelBacklogLocked).
func (c *Conn) countWindowLocked(items []outItem) {
	c.winFrames = satAdd(c.winFrames, len(items))
	for _, it := range items {
		c.winBytes = satAdd(c.winBytes, len(it.b))
	}
}

// flushHeld writes what hold queued (and anything queued behind it) as far
// as the socket takes it, then applies deliver's queue limits.
func (c *Conn) flushHeld() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.flushLocked()
	if c.wend.has(wendErr) {
		return false
	}
	return c.queueLimitsLocked()
}

// prepareLocked is the prepare step for frames deliver writes straight
// from its caller's slice: it returns wire, what of items is ready for the
// socket, and rest, what must be queued behind it. Plain frames are ready
// as they are. For wss the first batch of them (sealBatch) is sealed into
// one run of records in *sealed, and their plaintext released: a whole
// backlog is never copied, the rest is queued by reference and sealed a
// batch at a time by flushLocked. An error means the connection is dead
// (wire may still hold records to send first, such as an alert).
func (c *Conn) prepareLocked(items []outItem, sealed *[1]outItem) (wire, rest []outItem, err error) {
	if c.tlsConn() == nil {
		return items, nil, nil
	}
	k := sealBatch(items)
	ct, err := c.seal(items[:k])
	discardOwn(items[:k])
	rest = items[k:]
	if ct == nil {
		return nil, rest, err
	}
	sealed[0] = outItem{b: ct.b, own: ct}
	return sealed[:], rest, err
}

// writeNowLocked writes wire, frames ready for the socket that are not
// queued yet, as far as the socket takes them, and queues what it leaves
// (a partly written frame as the started head). It reports whether the
// socket is full, so that EPOLLOUT will come. On a write error the
// connection is failed and wire's own frames released.
func (c *Conn) writeNowLocked(wire []outItem) (full bool) {
	for len(wire) > 0 && len(c.outq) == 0 {
		n, err := c.write(wire)
		if err != nil {
			discardOwn(wire)
			c.writeFailedLocked()
			return true
		}
		if n == 0 {
			break
		}
		for n > 0 && len(wire) > 0 {
			if n < len(wire[0].b) {
				it := wire[0]
				it.b = it.b[n:]
				c.enqueueLocked(it)
				c.headStarted = true
				wire = wire[1:]
				break
			}
			n -= len(wire[0].b)
			if f := wire[0].own; f != nil {
				f.release()
			}
			wire = wire[1:]
		}
	}
	for _, it := range wire {
		c.enqueueLocked(it)
	}
	if len(wire) > 0 && c.tlsConn() != nil {
		// Sealed records are numbered: unwritten, they are still the head.
		c.headStarted = true
	}
	return len(c.outq) > 0
}

// queueLimitsLocked enforces -max-queue and the outbound memory budget
// after deliver queued frames; false when c overflowed (it is closing as a
// slow consumer).
func (c *Conn) queueLimitsLocked() bool {
	c.publishLocked()
	if c.queued.Load() > int64(c.hub.cfg.MaxQueue) {
		c.overflowLocked(errSlowConsumer)
		return false
	}
	if c.hub.out.over() {
		c.hub.squeeze()
	}
	return true
}

// Frames in the kernel. What a socket's send buffer holds is not in outq
// and costs wsd nothing, but it is backlog all the same: a send buffer of
// 4 MiB (the kernel's usual ceiling) holds two million empty-message
// frames, minutes of a flood, before outq grows at all. So the sweeper
// counts the frames a busy connection's socket holds unsent or
// unacknowledged (SIOCOUTQ's bytes over the connection's recent frame
// size) as queued, each at itemCost, what it would cost in outq: many tiny
// frames reach MaxQueue as a few large ones do, and a member that reads
// nothing of a flood of tiny messages is shed by its real backlog. A
// backlog of large frames in the kernel adds little (4 MiB of 1 KiB
// frames is 4,096 × itemCost, under 256 KiB).

// kernelCheckFrames is what a connection must have been handed since the
// sweeper's last look for its socket to be asked: one syscall per busy
// connection per sweep, none for the rest.
const kernelCheckFrames = 1024

// kernelBacklogLocked reports whether c's queue and the frames its socket
// holds together pass MaxQueue, and starts the next window of counts.
func (c *Conn) kernelBacklogLocked() bool {
	frames, bytes := int64(c.winFrames), int64(c.winBytes)
	c.winFrames, c.winBytes = 0, 0
	if frames < kernelCheckFrames || c.wclosed {
		return false
	}
	held, err := unix.IoctlGetInt(c.fd(), unix.SIOCOUTQ)
	if err != nil || held <= 0 {
		return false
	}
	inKernel := int64(held) / max(bytes/frames, 1)
	return c.queued.Load()+inKernel*itemCost > int64(c.hub.cfg.MaxQueue)
}

// shedIfKernelBacklog closes c as a slow consumer if kernelBacklogLocked
// says so. The sweeper calls it with c's shard locked.
func (c *Conn) shedIfKernelBacklog() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.kernelBacklogLocked() {
		return false
	}
	c.overflowLocked(errSlowConsumer)
	return true
}

// discardOwn releases the own frames among items that were not queued.
func discardOwn(items []outItem) {
	for _, it := range items {
		if it.own != nil {
			it.own.release()
		}
	}
}

func (c *Conn) enqueueLocked(it outItem) {
	if c.outq == nil {
		c.outq = getQueue(1)
		c.progressAt.Store(time.Now().UnixNano())
	}
	if it.msg != nil {
		it.msg.retainQueued(int(it.v))
	}
	c.outq = append(c.outq, it)
	c.bookLocked(it.charge(), it.held())
}

// enqueueAllLocked is enqueueLocked for a run of frames (a join's replay):
// the queue grown once and their charge booked once, not one atomic add
// per frame.
func (c *Conn) enqueueAllLocked(items []outItem) {
	if len(items) == 0 {
		return
	}
	if c.outq == nil {
		c.outq = getQueue(len(items))
		c.progressAt.Store(time.Now().UnixNano())
	}
	var charge, held int64
	for i := range items {
		it := &items[i]
		if it.msg != nil {
			it.msg.retainQueued(int(it.v))
		}
		charge += it.charge()
		held += it.held()
	}
	c.outq = append(c.outq, items...)
	c.bookLocked(charge, held)
}

// bookLocked records a change to what c's queue holds: its own charge at
// once (the MaxQueue check reads it), the Hub-wide counters — shared by
// every worker, so contended — summed here and published once per locked
// section by publishLocked rather than once per frame.
func (c *Conn) bookLocked(charge, held int64) {
	c.queued.Add(charge)
	c.pendQueued += charge
	c.pendHeld += held
}

// publishLocked adds what bookLocked summed to the Hub-wide counters. Every
// locked section that queues or drops frames ends with it.
func (c *Conn) publishLocked() {
	if c.pendQueued != 0 {
		c.hub.stats.QueuedBytes.Add(c.pendQueued)
		c.pendQueued = 0
	}
	if c.pendHeld != 0 {
		c.hub.out.add(c.pendHeld)
		c.pendHeld = 0
	}
}

// flushLocked writes queued frames until the queue is empty or the socket
// is full. Called on EPOLLOUT, after queueing a close, and for wss when
// crypto/tls has records to send (handshake, alerts, KeyUpdate replies).
func (c *Conn) flushLocked() {
	defer c.publishLocked()
	for c.wend&(wendErr|wendFdClosed) == 0 {
		wire, err := c.prepareHeadLocked()
		if err != nil {
			c.writeFailedLocked()
			return
		}
		if len(wire) == 0 {
			break
		}
		if !c.writeQueuedLocked(wire) {
			return
		}
	}
	c.queueDrainedLocked()
}

// prepareHeadLocked is the prepare step for the queue: it makes the front
// of the queue ready for the socket and returns that ready prefix, empty
// when nothing is queued. A waiting pong goes first unless a started head
// must be finished. For plain ws every queued frame is ready. For wss the
// head is ciphertext and only the head is ready: records crypto/tls wrote
// on its own go first (takeTLSOutputLocked), then, once no ciphertext is
// left, the next batch of plaintext is sealed in its place.
func (c *Conn) prepareHeadLocked() ([]outItem, error) {
	if c.tlsConn() != nil {
		c.takeTLSOutputLocked()
	}
	if c.pong != nil && !c.headStarted {
		c.queuePongLocked()
	}
	if c.tlsConn() == nil {
		return c.outq, nil
	}
	for !c.headStarted && len(c.outq) > 0 {
		if err := c.sealHeadLocked(); err != nil {
			return nil, err
		}
	}
	if len(c.outq) == 0 {
		return nil, nil
	}
	return c.outq[:1], nil
}

// writeQueuedLocked writes what the socket takes of items, the front of
// the queue, in one syscall and drops it from the queue. It reports whether
// to go on: false when the socket is full or the write failed (c is then
// failed).
func (c *Conn) writeQueuedLocked(items []outItem) bool {
	n, err := c.write(items)
	if err != nil {
		c.writeFailedLocked()
		return false
	}
	if n == 0 {
		return false
	}
	c.consumeLocked(n)
	return true
}

// queuePongLocked puts the waiting pong at the head of the queue: control
// frames may go between any two frames, and it answers a ping that came
// after everything queued was sent.
func (c *Conn) queuePongLocked() {
	f := c.pong
	c.pong = nil
	c.enqueueFrontLocked(outItem{b: f.b, own: f})
}

// enqueueFrontLocked queues it ahead of everything queued.
func (c *Conn) enqueueFrontLocked(it outItem) {
	c.enqueueLocked(it)
	last := len(c.outq) - 1
	it = c.outq[last]
	copy(c.outq[1:], c.outq[:last])
	c.outq[0] = it
}

// consumeLocked drops n written bytes from the head of the queue.
func (c *Conn) consumeLocked(n int) {
	if n > 0 {
		c.progressAt.Store(time.Now().UnixNano())
	}
	i := 0
	for n > 0 && i < len(c.outq) {
		it := &c.outq[i]
		if n < len(it.b) {
			it.b = it.b[n:]
			c.bookLocked(int64(-n), 0)
			c.headStarted = true
			break
		}
		n -= len(it.b)
		c.releaseLocked(it)
		c.headStarted = false
		i++
	}
	c.outq = c.outq[:copy(c.outq, c.outq[i:])]
}

// queueDrainedLocked runs when the queue may have become empty: the buffer
// goes back to the pool (an idle connection holds none), and a pending
// close proceeds.
func (c *Conn) queueDrainedLocked() {
	if len(c.outq) != 0 {
		return
	}
	if c.outq != nil {
		putQueue(c.outq)
		c.outq = nil
	}
	if c.wclosed && c.wend&(wendShut|wendFdClosed) == 0 {
		// Our close frame is out: half-close so the peer sees EOF after it.
		c.wend |= wendShut
		_ = unix.Shutdown(c.fd(), unix.SHUT_WR)
		c.Notify(readyEvent)
	}
}

// dropQueueLocked releases everything queued (the connection is going away).
func (c *Conn) dropQueueLocked() {
	if c.pong != nil {
		c.pong.release()
		c.pong = nil
	}
	for i := range c.outq {
		c.releaseLocked(&c.outq[i])
	}
	if c.outq != nil {
		putQueue(c.outq[:0])
		c.outq = nil
	}
	c.headStarted = false
	c.publishLocked()
}

// writeFailedLocked handles EPIPE, ECONNRESET and the like: nothing more can
// be written, so the connection is finished.
func (c *Conn) writeFailedLocked() {
	c.wclosed = true
	c.wend |= wendErr
	c.dropQueueLocked()
	c.Notify(readyEvent)
}

// Emptied queues go back to pools by their backing arrays, so a put
// allocates nothing (a *[]outItem would be one allocation per drain): a
// small one for most connections, a large one for a run of frames or a
// queue a burst grew. A queue grown past maxPooledQueue goes to the
// collector.
const smallQueue, largeQueue, maxPooledQueue = 16, 256, 1024

var (
	smallQueues = sync.Pool{New: func() any { return new([smallQueue]outItem) }}
	largeQueues = sync.Pool{New: func() any { return new([largeQueue]outItem) }}
)

// getQueue returns an empty queue for n frames.
func getQueue(n int) []outItem {
	if n > smallQueue {
		return largeQueues.Get().(*[largeQueue]outItem)[:0]
	}
	return smallQueues.Get().(*[smallQueue]outItem)[:0]
}

// putQueue keeps q's array for reuse.
func putQueue(q []outItem) {
	switch c := cap(q); {
	case c > maxPooledQueue:
	case c >= largeQueue:
		largeQueues.Put((*[largeQueue]outItem)(q[:largeQueue]))
	case c >= smallQueue:
		smallQueues.Put((*[smallQueue]outItem)(q[:smallQueue]))
	}
}

// satAdd is a window count's a+n, stopping at the int32 limit: the sweeper
// looks at the window once a second, and past 2 GiB of frames its average
// size is large enough for any backlog check.
func satAdd(a int32, n int) int32 {
	return int32(min(int64(a)+int64(n), math.MaxInt32))
}
