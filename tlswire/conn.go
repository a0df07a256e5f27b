package tlswire

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Owner is the connection that carries a Conn's ciphertext. Both methods
// are called on the handshake goroutine.
type Owner interface {
	// FlushTLS asks the owner to send the records waiting in the Conn
	// (TakeOutput) now: the handshake is about to wait for the client.
	FlushTLS()
	// TLSHandshakeDone reports the end of the handshake, after a last
	// FlushTLS. On success the owner resumes reading from its reactor:
	// ciphertext fed during the handshake may already hold application
	// data, so Decrypt(nil, ...) must run even if the socket has nothing
	// new. On error the owner closes the connection, except that after
	// ErrStalled it may keep it until its own timeout: the Conn holds no
	// goroutine or buffer then, and Feed refuses more input.
	TLSHandshakeDone(err error)
}

// Phases of a Conn.
const (
	phaseHello     uint32 = iota // buffering the ClientHello in the reactor
	phaseHandshake               // handshake queued or running on a goroutine
	phaseOpen                    // established; the transport never blocks
	phaseStalled                 // gave its goroutine away (ErrStalled); the owner's timeout ends it
	phaseClosed
)

// MaxHandshakeInput bounds the ciphertext a client may send before the
// handshake completes (a ClientHello is at most a few KiB; crypto/tls caps
// handshake messages at 64 KiB).
const MaxHandshakeInput = 80 << 10

// ErrHandshakeInput is returned by Feed when a client sends more than
// MaxHandshakeInput before the handshake completes.
var ErrHandshakeInput = errors.New("tlswire: too much input before the handshake completed")

// Conn is one TLS server connection over a memory transport. Feed and
// Decrypt belong to the owner's reader (one at a time); Seal and
// TakeOutput to its writer (one at a time, under the owner's write lock);
// reader and writer may run concurrently, as crypto/tls allows.
type Conn struct {
	tc    *tls.Conn
	owner Owner
	pool  *Pool
	phase atomic.Uint32

	mu   sync.Mutex
	in   []byte        // ciphertext not yet taken by crypto/tls
	out  []byte        // records crypto/tls wrote, not yet taken by the owner
	wake chan struct{} // signals the handshake goroutine; nil after the handshake
	sig  chan struct{} // the same channel, kept for the pool's evictions

	// Handshake goroutine only.
	onCPU   bool          // holds one of the pool's CPU slots
	cpuWait chan struct{} // where a CPU slot is handed over (pool.go)
	gaveWay bool          // evicted by the pool (ErrStalled)

	// Under pool.mu: the pool's list of parked handshakes (pool.go).
	prev, next      *Conn
	parkedAt        time.Duration
	queuedAt        time.Duration
	parked, evicted bool
}

// NewConn returns a server Conn using cfg, whose handshake will run on pool.
func NewConn(cfg *tls.Config, pool *Pool, owner Owner) *Conn {
	wake := make(chan struct{}, 1)
	c := &Conn{owner: owner, pool: pool, wake: wake, sig: wake}
	c.tc = tls.Server((*transport)(c), cfg)
	return c
}

// Established reports whether the handshake has completed.
func (c *Conn) Established() bool { return c.phase.Load() == phaseOpen }

// ConnectionState returns the TLS connection state.
func (c *Conn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// Feed hands the handshake ciphertext read from the socket (copied). The
// handshake starts on the pool once a complete ClientHello is buffered.
// Before that, a record that cannot be part of a ClientHello is refused
// at once: ErrNotTLS or ErrRecordOverflow (whose alert waits in the
// output). After the handshake, use Decrypt.
func (c *Conn) Feed(p []byte) error {
	c.mu.Lock()
	switch c.phase.Load() {
	case phaseClosed:
		c.mu.Unlock()
		return net.ErrClosed
	case phaseStalled:
		// Too late for the handshake it gave up: closing now lets a
		// client that was only slow retry at once.
		c.mu.Unlock()
		return ErrStalled
	}
	if len(c.in)+len(p) > MaxHandshakeInput {
		c.mu.Unlock()
		return ErrHandshakeInput
	}
	c.in = append(c.in, p...)
	start := false
	if c.phase.Load() == phaseHello {
		var err error
		if start, err = helloComplete(c.in); err != nil {
			c.in = nil
			if err == ErrRecordOverflow {
				c.out = append(c.out, alertRecordOverflow...)
			}
			c.mu.Unlock()
			return err
		}
	}
	if start {
		c.phase.Store(phaseHandshake)
	}
	wake := c.wake
	c.mu.Unlock()
	if start {
		c.pool.start(c)
	} else if wake != nil {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Decrypt hands p (ciphertext from the socket; nil to process only what
// is buffered) to crypto/tls and passes each piece of plaintext to
// deliver, which reports whether to go on. p is not retained. It returns
// io.EOF after the client's close_notify and a TLS error for a bad record;
// a record cut short is kept for the next call and is not an error.
func (c *Conn) Decrypt(p, buf []byte, deliver func([]byte) bool) error {
	c.mu.Lock()
	borrowed := false
	if len(c.in) == 0 {
		c.in, borrowed = p, true
	} else {
		c.in = append(c.in, p...)
	}
	c.mu.Unlock()
	var err error
	for {
		n, rerr := c.tc.Read(buf)
		if n > 0 && !deliver(buf[:n]) {
			break
		}
		if rerr != nil {
			if !errors.Is(rerr, errWouldBlock) {
				err = rerr
			}
			break
		}
	}
	c.mu.Lock()
	switch {
	case len(c.in) == 0:
		c.in = nil
	case borrowed:
		// Only when deliver stopped early: keep the rest, in our own memory.
		c.in = append([]byte(nil), c.in...)
	}
	c.mu.Unlock()
	return err
}

// Seal encrypts plaintext as application data and returns dst with, first,
// any records the read side wrote since the last TakeOutput, then the new
// records. An error means the connection's write side is dead (a fatal
// alert was sent); the records returned up to it may still be sent.
func (c *Conn) Seal(dst, plaintext []byte) ([]byte, error) {
	c.mu.Lock()
	dst = append(dst, c.out...)
	c.out = dst
	c.mu.Unlock()
	_, err := c.tc.Write(plaintext)
	c.mu.Lock()
	dst, c.out = c.out, nil
	c.mu.Unlock()
	return dst, err
}

// HasOutput reports whether records wait to be taken.
func (c *Conn) HasOutput() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.out) > 0
}

// TakeOutput appends the records waiting to be sent to dst.
func (c *Conn) TakeOutput(dst []byte) []byte {
	c.mu.Lock()
	dst = append(dst, c.out...)
	c.out = nil
	c.mu.Unlock()
	return dst
}

// Close drops the buffers and ends a handshake in progress (its reads fail).
// It does not send close_notify: the owner closes the socket.
func (c *Conn) Close() {
	c.mu.Lock()
	c.phase.Store(phaseClosed)
	c.in, c.out = nil, nil
	wake := c.wake
	c.mu.Unlock()
	if wake != nil {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

// handshake runs on a pool goroutine.
func (c *Conn) handshake() {
	defer c.pool.finish(c)
	c.pool.Handshakes.Add(1)
	c.pool.busy(c, false)
	c.onCPU = true
	err := c.tc.Handshake()
	if c.onCPU {
		c.pool.idle()
		c.onCPU = false
	}
	c.mu.Lock()
	switch {
	case c.phase.Load() != phaseHandshake:
		err = net.ErrClosed
	case c.gaveWay:
		err = ErrStalled
		c.phase.Store(phaseStalled)
		c.in, c.out = nil, nil
	case err == nil:
		c.phase.Store(phaseOpen)
	}
	c.wake = nil
	c.mu.Unlock()
	c.owner.FlushTLS()
	c.owner.TLSHandshakeDone(err)
}

// errWouldBlock is what the transport's Read returns when no ciphertext is
// buffered after the handshake. crypto/tls retries on a Temporary error.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tlswire: no ciphertext buffered" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// transport is the net.Conn crypto/tls reads and writes.
type transport Conn

// Read gives crypto/tls buffered ciphertext. During the handshake (on the
// pool goroutine) it waits for more, first handing what the handshake
// wrote to the owner; afterwards it reports errWouldBlock instead.
func (t *transport) Read(p []byte) (int, error) {
	c := (*Conn)(t)
	c.mu.Lock()
	flushed := false
	for len(c.in) == 0 {
		switch c.phase.Load() {
		case phaseClosed:
			c.mu.Unlock()
			return 0, net.ErrClosed
		case phaseOpen:
			c.mu.Unlock()
			return 0, errWouldBlock
		}
		if len(c.out) > 0 && !flushed {
			c.mu.Unlock()
			c.owner.FlushTLS()
			c.mu.Lock()
			flushed = true
			continue
		}
		flushed = false
		wake := c.wake
		c.mu.Unlock()
		c.pool.idle()
		c.onCPU = false
		c.pool.park(c)
		<-wake
		if c.pool.unpark(c) {
			c.gaveWay = true
			return 0, ErrStalled
		}
		c.pool.busy(c, true)
		c.onCPU = true
		c.mu.Lock()
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	if len(c.in) == 0 && c.phase.Load() != phaseOpen {
		c.in = nil // handshake input: let it go as soon as it is read
	}
	c.mu.Unlock()
	return n, nil
}

// Write collects records for the owner.
func (t *transport) Write(p []byte) (int, error) {
	c := (*Conn)(t)
	c.mu.Lock()
	if c.phase.Load() != phaseClosed {
		c.out = append(c.out, p...)
	}
	c.mu.Unlock()
	return len(p), nil
}

func (t *transport) Close() error                     { (*Conn)(t).Close(); return nil }
func (t *transport) LocalAddr() net.Addr              { return addr{} }
func (t *transport) RemoteAddr() net.Addr             { return addr{} }
func (t *transport) SetDeadline(time.Time) error      { return nil }
func (t *transport) SetReadDeadline(time.Time) error  { return nil }
func (t *transport) SetWriteDeadline(time.Time) error { return nil }

type addr struct{}

func (addr) Network() string { return "tcp" }
func (addr) String() string  { return "reactor" }

// Limits on what a client may send before its ClientHello is complete.
// Every record up to then is a plaintext handshake record (RFC 8446 5.1:
// at most 2^14 bytes; crypto/tls allows its TLS 1.3 ciphertext overhead of
// 256 on top, and so does wsd). Checking each record header as it arrives
// refuses a client that is not speaking TLS, or that announces a record it
// will never finish, at once instead of at the handshake timeout.
const (
	recordHandshake = 22
	maxHelloRecord  = 16<<10 + 256
)

// ErrNotTLS is returned by Feed when a record before the ClientHello is
// complete is not a TLS handshake record (a plain HTTP request, say).
var ErrNotTLS = errors.New("tlswire: first bytes are not a TLS handshake record")

// ErrRecordOverflow is returned by Feed when a record before the
// ClientHello is complete claims more than a TLS record may hold; the
// record_overflow alert crypto/tls would send is left in the output.
var ErrRecordOverflow = errors.New("tlswire: record before the ClientHello is too long")

// alertRecordOverflow is a plaintext fatal record_overflow alert, with
// the record version crypto/tls uses before a version is agreed.
var alertRecordOverflow = []byte{21, 3, 1, 0, 2, 2, 22}

// helloComplete reports whether b holds a whole ClientHello handshake
// message (possibly spread over several records), or a whole handshake
// message that is not one (crypto/tls may as well answer at once). A
// record header that cannot start a TLS handshake is an error.
func helloComplete(b []byte) (bool, error) {
	const msgClientHello = 1
	var hdr [4]byte // the handshake message header: type, 24-bit length
	have, got := 0, 0
	for len(b) > 0 {
		if b[0] != recordHandshake || len(b) > 1 && b[1] != 3 {
			return false, ErrNotTLS // (every TLS version is 3.x on the wire)
		}
		if len(b) < 5 {
			return false, nil
		}
		n := int(b[3])<<8 | int(b[4])
		if n > maxHelloRecord {
			return false, ErrRecordOverflow
		}
		if len(b) < 5+n {
			return false, nil
		}
		body := b[5 : 5+n]
		b = b[5+n:]
		for have < 4 && len(body) > 0 {
			hdr[have] = body[0]
			have++
			body = body[1:]
		}
		got += len(body)
		if have == 4 {
			if hdr[0] != msgClientHello {
				return true, nil
			}
			if got >= int(hdr[1])<<16|int(hdr[2])<<8|int(hdr[3]) {
				return true, nil
			}
		}
	}
	return false, nil
}
