package session

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// outItem is one queued frame: b is what is left to write of m's bytes.
type outItem struct {
	b []byte
	m *Message
}

// maxIovec bounds one writev (IOV_MAX is 1024 on Linux).
const maxIovec = 64

// iovecs is scratch space for one writev; taken from a pool for the call.
type iovecs struct{ v [maxIovec]unix.Iovec }

var iovecPool = sync.Pool{New: func() any { return new(iovecs) }}

// writeItems writes as much of items as the socket takes in one syscall
// and reports how many bytes went out. EAGAIN is not an error.
func (c *Conn) writeItems(items []outItem) (int, error) {
	if len(items) > maxIovec {
		items = items[:maxIovec]
	}
	var (
		n   int
		err error
	)
	if len(items) == 1 {
		n, err = unix.Write(c.fd(), items[0].b)
	} else {
		iv := iovecPool.Get().(*iovecs)
		for i := range items {
			iv.v[i].Base = unsafe.SliceData(items[i].b)
			iv.v[i].SetLen(len(items[i].b))
		}
		for {
			r, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(c.fd()),
				uintptr(unsafe.Pointer(&iv.v[0])), uintptr(len(items)))
			if e == unix.EINTR {
				continue
			}
			n = int(r)
			if e != 0 {
				n, err = 0, e
			}
			break
		}
		clear(iv.v[:len(items)])
		iovecPool.Put(iv)
	}
	c.hub.stats.WriteSyscalls.Add(1)
	if err == unix.EAGAIN {
		return 0, nil
	}
	if n < 0 {
		n = 0
	}
	c.hub.stats.BytesOut.Add(uint64(n))
	return n, err
}

// deliver hands frames to the connection: written at once if its queue is
// empty and the socket takes them, queued otherwise. It takes its own
// references on whatever it queues. It reports whether the connection still
// accepts data (false once closing).
func (c *Conn) deliver(items []outItem) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return false
	}
	if c.tls != nil {
		return c.deliverTLSLocked(items)
	}
	if len(c.outq) == 0 {
		for len(items) > 0 {
			n, err := c.writeItems(items)
			if err != nil {
				c.writeFailed(err)
				return false
			}
			if n == 0 {
				break
			}
			for n > 0 && len(items) > 0 {
				if n < len(items[0].b) {
					c.enqueue(outItem{b: items[0].b[n:], m: items[0].m})
					c.headStarted = true
					items = items[1:]
					break
				}
				n -= len(items[0].b)
				items = items[1:]
			}
			if len(c.outq) > 0 {
				break
			}
		}
	}
	for _, it := range items {
		c.enqueue(it)
	}
	if c.outBytes > c.hub.cfg.MaxQueue {
		c.overflow()
		return false
	}
	return true
}

func (c *Conn) enqueue(it outItem) {
	if c.outq == nil {
		c.outq = getQueue()
	}
	it.m.retain()
	c.outq = append(c.outq, it)
	c.outBytes += len(it.b)
	c.hub.stats.QueuedBytes.Add(int64(len(it.b)))
}

// flush writes queued frames until the queue is empty or the socket is
// full. Called on EPOLLOUT. c.wmu must be held.
func (c *Conn) flushLocked() {
	if c.tls != nil {
		c.flushTLSLocked()
		return
	}
	for len(c.outq) > 0 && !c.fdClosed {
		n, err := c.writeItems(c.outq)
		if err != nil {
			c.writeFailed(err)
			return
		}
		if n == 0 {
			return
		}
		c.consume(n)
	}
	c.queueDrained()
}

// consume drops n written bytes from the head of the queue.
func (c *Conn) consume(n int) {
	i := 0
	for n > 0 && i < len(c.outq) {
		it := &c.outq[i]
		if n < len(it.b) {
			it.b = it.b[n:]
			c.outBytes -= n
			c.hub.stats.QueuedBytes.Add(int64(-n))
			c.headStarted = true
			n = 0
			break
		}
		n -= len(it.b)
		c.outBytes -= len(it.b)
		c.hub.stats.QueuedBytes.Add(int64(-len(it.b)))
		it.m.release()
		*it = outItem{}
		c.headStarted = false
		i++
	}
	c.outq = c.outq[:copy(c.outq, c.outq[i:])]
}

// queueDrained runs when the queue became empty: the buffer goes back to
// the pool (an idle connection holds none), and a pending close proceeds.
func (c *Conn) queueDrained() {
	if len(c.outq) != 0 {
		return
	}
	if c.outq != nil {
		putQueue(c.outq)
		c.outq = nil
	}
	if c.wclosed && !c.shutWR && !c.fdClosed {
		// Our close frame is out: half-close so the peer sees EOF after it.
		c.shutWR = true
		_ = unix.Shutdown(c.fd(), unix.SHUT_WR)
		c.Notify(readyEvent)
	}
}

// dropQueue releases everything queued (the connection is going away).
func (c *Conn) dropQueue() {
	for i := range c.outq {
		c.outq[i].m.release()
		c.outq[i] = outItem{}
	}
	c.hub.stats.QueuedBytes.Add(int64(-c.outBytes))
	c.outBytes = 0
	if c.outq != nil {
		putQueue(c.outq[:0])
		c.outq = nil
	}
}

// writeFailed handles EPIPE, ECONNRESET and the like: nothing more can be
// written, so the connection is finished.
func (c *Conn) writeFailed(err error) {
	c.wclosed = true
	c.werr = true
	c.dropQueue()
	c.Notify(readyEvent)
}

var queuePool = sync.Pool{New: func() any { q := make([]outItem, 0, 16); return &q }}

func getQueue() []outItem { return (*queuePool.Get().(*[]outItem))[:0] }

func putQueue(q []outItem) {
	if cap(q) > 1024 {
		return
	}
	q = q[:0]
	queuePool.Put(&q)
}
