package session

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/wsd-chat/wsd/poller"
	"github.com/wsd-chat/wsd/tlswire"
)

// wss: TLS between the socket and the rest of a Conn.
//
// Read side: readAll hands socket bytes to tlsInput instead of input.
// Before the handshake is done they are fed to the tlswire.Conn (which runs
// the handshake on its pool); afterwards they are decrypted here, on the
// worker, and the plaintext goes to input exactly as a ws:// connection's
// bytes do (upgrade request, then frames).
//
// Write side: the one write queue (write.go) holds the same shared
// plaintext frames as for ws://; its prepare steps call in here to seal
// them only when they are about to be written, a batch at a time
// (sealBatch), and to put records crypto/tls wrote on its own in sequence
// (takeTLSOutputLocked).

// maxTLSPending bounds the ciphertext a peer may send without any of it
// coming out as plaintext: two full records. Application records turn into
// plaintext as each arrives; what does not (handshake messages after the
// handshake, such as a key update) is small.
const maxTLSPending = 2 * (16<<10 + 512)

// sealBudget bounds the plaintext sealed at once (sealBatch): about what
// one writev of plaintext frames would take.
const sealBudget = 64 << 10

// tlsOwner is a Conn as package tlswire sees it (tlswire.Owner), without
// exporting the methods on Conn.
type tlsOwner Conn

// FlushTLS sends handshake records (on the handshake goroutine).
func (o *tlsOwner) FlushTLS() {
	c := (*Conn)(o)
	c.wmu.Lock()
	c.flushLocked()
	c.wmu.Unlock()
}

// TLSHandshakeDone hands the connection back to the reactor.
func (o *tlsOwner) TLSHandshakeDone(err error) {
	c := (*Conn)(o)
	h := c.hub
	if errors.Is(err, tlswire.ErrStalled) {
		// The client stalled while others waited for a handshake
		// goroutine, and gave its own up. Its socket stays, costing no
		// goroutine, for a handshake timeout from now plus up to one more
		// at random: a client that stalls on purpose and reconnects when
		// dropped would, dropped now, come back at once for another
		// handshake's worth of CPU, and stalled clients that connected
		// together, dropped together, would come back as one burst.
		h.stats.TLSHandshakeFailures.Add(1)
		ht := int64(h.cfg.HandshakeTimeout)
		c.timer.Store(time.Now().UnixNano() + ht + rand.Int64N(ht))
		return
	}
	if err != nil {
		h.stats.TLSHandshakeFailures.Add(1)
		h.log.Debug("tls handshake failed", "err", err.Error())
		c.flags.set(flagKill)
	} else {
		h.stats.TLSHandshakes.Add(1)
	}
	c.Notify(poller.Readable)
}

// tlsInput handles ciphertext read from the socket (nil: only what the
// handshake left buffered).
func (c *Conn) tlsInput(p []byte) {
	t := c.tlsConn()
	if !t.Established() {
		if len(p) == 0 {
			return
		}
		if err := t.Feed(p); err != nil {
			// Too much input, or a record no ClientHello starts with:
			// refused now rather than at the handshake timeout.
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, tlswire.ErrStalled) {
				c.hub.stats.TLSHandshakeFailures.Add(1)
				c.hub.log.Debug("tls handshake refused", "err", err.Error())
			}
			c.flags.set(flagKill)
			if t.HasOutput() { // the alert, if there is one
				c.wmu.Lock()
				c.flushLocked()
				c.wmu.Unlock()
			}
		}
		return
	}
	buf := readBufs.Get().(*[]byte)
	out := false
	err := t.Decrypt(p, *buf, func(plain []byte) bool {
		out = true
		c.input(plain)
		return !c.flags.has(flagKill)
	})
	readBufs.Put(buf)
	// crypto/tls buffers a partial record, and a handshake message (up to
	// 256 KiB) spread over records, where no budget sees it. A peer whose
	// ciphertext stops turning into plaintext is cut off past
	// maxTLSPending, and a partial record counts as a partial message for
	// the sweeper's MessageTimeout.
	in := c.input1()
	if out {
		in.tlsPending = 0
	} else {
		in.tlsPending += len(p)
	}
	if in.tlsPending > maxTLSPending {
		c.hub.log.Debug("tls input without plaintext; closing", "key", c.key, "bytes", in.tlsPending)
		c.flags.set(flagKill)
	}
	c.trackMessageStart()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			c.hub.log.Debug("tls record error", "key", c.key, "err", err.Error())
		}
		// close_notify or a bad record: the peer is done, as at TCP EOF.
		c.flags.set(flagKill)
	}
	if t.HasOutput() { // an alert or a KeyUpdate reply
		c.wmu.Lock()
		c.flushLocked()
		c.wmu.Unlock()
	}
}

// takeTLSOutputLocked moves records crypto/tls wrote outside Seal to the
// front of the queue: behind the ciphertext head if there is one (they
// are numbered after it), else ahead of every plaintext frame.
func (c *Conn) takeTLSOutputLocked() {
	t := c.tlsConn()
	if !t.HasOutput() {
		return
	}
	if !c.headStarted {
		c.pushHeadLocked(newOwnFrame(t.TakeOutput))
		return
	}
	// Grow the head, keeping its charges in step.
	head := &c.outq[0]
	charge, held := head.charge(), head.held()
	f := head.own
	rest, before := len(head.b), len(f.b)
	f.b = t.TakeOutput(f.b)
	head.b = f.b[before-rest:]
	c.bookLocked(head.charge()-charge, head.held()-held)
}

// sealHeadLocked replaces the plaintext frames at the front of the queue
// (up to sealBudget bytes) with their ciphertext.
func (c *Conn) sealHeadLocked() error {
	k := sealBatch(c.outq)
	ct, err := c.seal(c.outq[:k])
	for i := 0; i < k; i++ {
		c.releaseLocked(&c.outq[i])
	}
	c.outq = c.outq[:copy(c.outq, c.outq[k:])]
	if ct != nil {
		c.pushHeadLocked(ct)
	}
	return err
}

// sealBatch returns how many of items (at least one, if any) are sealed
// together: up to sealBudget bytes and maxIovec frames, so no connection
// holds more than one batch of private ciphertext whatever its backlog.
func sealBatch(items []outItem) int {
	k, size := 0, 0
	for k < len(items) && k < maxIovec && (k == 0 || size+len(items[k].b) <= sealBudget) {
		size += len(items[k].b)
		k++
	}
	return k
}

// pushHeadLocked queues ciphertext ct first; the queue owns it from now on.
func (c *Conn) pushHeadLocked(ct *ownFrame) {
	c.enqueueFrontLocked(outItem{b: ct.b, own: ct})
	c.headStarted = true
}

// seal encrypts items (their bytes in order) into a new frame, nil if there
// were no bytes. Several frames are sealed as one plaintext so they share
// records.
func (c *Conn) seal(items []outItem) (*ownFrame, error) {
	if !c.tlsConn().Established() {
		// Nothing is delivered before the upgrade, which needs the TLS
		// handshake done; sealing earlier would wait for the handshake
		// while holding c.wmu, which the handshake needs to send.
		return nil, errNotEstablished
	}
	var plain []byte
	var scratch *[]byte
	if len(items) == 1 {
		plain = items[0].b
	} else {
		scratch = sealScratch.Get().(*[]byte)
		plain = (*scratch)[:0]
		for _, it := range items {
			plain = append(plain, it.b...)
		}
	}
	ct := ownFrames.Get().(*ownFrame)
	var err error
	ct.b, err = c.tlsConn().Seal(ct.b[:0], plain)
	if scratch != nil && cap(plain) <= sealBudget {
		*scratch = plain[:0]
		sealScratch.Put(scratch)
	}
	if len(ct.b) == 0 {
		ct.release()
		return nil, err
	}
	return ct, err
}

var errNotEstablished = errors.New("session: TLS data before the handshake")

var sealScratch = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}
