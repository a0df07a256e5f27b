// The hostile scenario's attacks: what each one dials and sends, and how
// an attacker's connection ended.

package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// attackCtx is what an attack's code needs: where to dial, when to stop,
// and what it opened.
type attackCtx struct {
	hr       *hostileRun
	name     string
	room     string
	stop     chan struct{} // closed at the end of -duration or when the RSS passes -max-rss
	end      func()        // closes stop, once
	deadline time.Time     // set by begin
	began    sync.Once
	timer    *time.Timer
	mu       sync.Mutex
	conns    []*wsConn  // attackers
	raw      []net.Conn // attackers that never upgraded (presock)
	members  []*member  // bystanders that read everything
	checks   []honestCheck
	// attackSrc and honestSrc are the source addresses of the attackers
	// and of the honest clients (the same but in presock and partialip).
	attackSrc, honestSrc []string
}

// attackPlace says where an attack's honest clients chat and dial from.
type attackPlace struct {
	elsewhere bool // in a room of their own: the attack is on what all rooms share
	apart     bool // attackers from the first -src address, honest clients from the others
}

var attackPlaces = map[string]attackPlace{
	"cont": {elsewhere: true}, "pong": {elsewhere: true}, "fanflood": {elsewhere: true},
	"presock": {elsewhere: true, apart: true}, "partialip": {elsewhere: true, apart: true},
}

// splitSources gives the attackers the first address of src and the
// honest clients the others (with one address, the next one up: 127.0.0.1
// → 127.0.0.2).
func splitSources(src []string) (attack, honest []string) {
	if len(src) > 1 {
		return src[:1], src[1:]
	}
	ip := net.ParseIP(src[0]).To4()
	next := net.IPv4(ip[0], ip[1], ip[2], ip[3]+1)
	if ip[3] == 254 {
		next = net.IPv4(ip[0], ip[1], ip[2], 1)
	}
	return src, []string{next.String()}
}

// honestCheck is something an honest client must get through during an
// attack (a newcomer's upgrade, a large message); failure "" is passed.
type honestCheck struct {
	name, failure string
}

// dial opens n attackers (gzip-capable when gz(i)); neverRead shrinks
// their receive buffers.
func (ac *attackCtx) dial(role string, n int, gz func(int) bool, neverRead bool) []*wsConn {
	o := ac.hr.o
	d := newDialer(o, fmt.Sprintf("%s%08x-%s-%s", attackPrefix, ac.hr.run, ac.name, role))
	d.room, d.readBuf, d.src = ac.room, 16<<10, tcpAddrs(ac.attackSrc)
	if neverRead {
		d.rcvBuf = neverReadBuf
	}
	conns, _ := dialAll(o, d, n, gz, &ac.hr.live)
	conns = slices.DeleteFunc(conns, func(c *wsConn) bool { return c == nil })
	ac.mu.Lock()
	ac.conns = append(ac.conns, conns...)
	ac.mu.Unlock()
	return conns
}

// begin starts the attack's clock, once its connections are open and its
// frames built: it ends -duration later. Every attacker's socket is bounded
// to then plus the time its outcome is read.
func (ac *attackCtx) begin() {
	ac.began.Do(func() {
		d := ac.hr.o.duration
		ac.deadline = time.Now().Add(d)
		ac.timer = time.AfterFunc(d, ac.end)
		ac.mu.Lock()
		for _, c := range ac.conns {
			c.SetDeadline(ac.deadline.Add(collectFor + time.Second))
		}
		for _, c := range ac.raw {
			c.SetDeadline(ac.deadline.Add(collectFor + time.Second))
		}
		ac.mu.Unlock()
	})
}

func (ac *attackCtx) stopped() bool {
	select {
	case <-ac.stop:
		return true
	default:
		return false
	}
}

// write writes b to c by the attack's deadline; false when it should stop
// (the attack is over or c failed).
func (ac *attackCtx) write(c *wsConn, b []byte, frames int64) bool {
	if ac.stopped() {
		return false
	}
	c.SetWriteDeadline(ac.deadline)
	if _, err := c.Write(b); err != nil {
		return false
	}
	ac.hr.frames.Add(frames)
	return true
}

// repeat writes frame to c, per times at once, until total frames are
// sent or the attack ends.
func (ac *attackCtx) repeat(c *wsConn, frame []byte, per, total int) {
	batch := bytes.Repeat(frame, min(per, total))
	for sent := 0; sent < total; {
		k := min(per, total-sent)
		if !ac.write(c, batch[:k*len(frame)], int64(k)) {
			return
		}
		sent += k
	}
}

// member is a bystander of the bomb attack: it reads and drops
// everything, and notes how it ended if the server closed it.
type member struct {
	c     *wsConn
	ended atomic.Pointer[string]
	quit  atomic.Bool
}

// clientFrame is one masked frame (a fixed mask: attack traffic only).
func clientFrame(op ws.OpCode, fin bool, p []byte) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	return appendMasked(nil, b0, p, [4]byte{0x5a, 0x17, 0xc3, 0x9e})
}

var gzipTexts sync.Map // n → gzipText(n)

// gzipText is the gzip of n bytes of 'a': about n/1000 bytes.
func gzipText(n int) []byte {
	if z, ok := gzipTexts.Load(n); ok {
		return z.([]byte)
	}
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	w.Write(bytes.Repeat([]byte("a"), n))
	w.Close()
	gzipTexts.Store(n, b.Bytes())
	return b.Bytes()
}

func noGzip(int) bool  { return false }
func allGzip(int) bool { return true }

// attacks holds each attack's code: it dials its connections, sends until
// it is done or ac.stop, and returns; the connections stay open until the
// attack's outcome is collected.
var attacks = map[string]func(ac *attackCtx){
	"partial": func(ac *attackCtx) {
		h := ac.hr.h
		conns := ac.dial("p", h.partialConns, noGzip, true)
		frame := clientFrame(ws.OpText, false, bytes.Repeat([]byte("a"), h.partialSize)) // FIN clear
		ac.begin()
		forEach(conns, ac.hr.o.dialers, func(c *wsConn) { ac.write(c, frame, 1) })
	},
	"inflate": func(ac *attackCtx) {
		h := ac.hr.h
		conns := ac.dial("z", 1, allGzip, true)
		if len(conns) == 0 {
			return
		}
		msg := clientFrame(ws.OpBinary, true, gzipText(h.inflateSize))
		ac.begin()
		ac.repeat(conns[0], msg, 10, h.inflateMsgs)
	},
	"flood": func(ac *attackCtx) {
		h := ac.hr.h
		ac.dial("m", h.floodMembers, gzipFor(0.5), true)
		conns := ac.dial("f", 1, noGzip, true)
		if len(conns) == 0 {
			return
		}
		ac.begin()
		ac.repeat(conns[0], clientFrame(ws.OpText, true, nil), attackBatch, h.floodMsgs)
	},
	"ping": func(ac *attackCtx) {
		h := ac.hr.h
		conns := ac.dial("g", h.pingers, noGzip, true)
		ping := clientFrame(ws.OpPing, true, nil)
		ac.begin()
		forEach(conns, len(conns), func(c *wsConn) { ac.repeat(c, ping, attackBatch, h.pings) })
	},
	"bomb": func(ac *attackCtx) {
		h := ac.hr.h
		for _, c := range ac.hr.dialMembers(ac, h.bombMembers) {
			ac.members = append(ac.members, c)
		}
		conns := ac.dial("z", 1, allGzip, true)
		if len(conns) == 0 {
			return
		}
		bomb := clientFrame(ws.OpBinary, true, gzipText(h.inflateSize))
		ac.begin()
		ac.repeat(conns[0], bomb, 10, h.bombs)
	},
	"cont": func(ac *attackCtx) {
		h := ac.hr.h
		conns := ac.dial("c", h.contConns, noGzip, true)
		first := clientFrame(ws.OpText, false, []byte("a"))
		cont := clientFrame(ws.OpContinuation, false, nil)
		ac.begin()
		forEach(conns, len(conns), func(c *wsConn) {
			if ac.write(c, first, 1) {
				ac.repeat(c, cont, attackBatch, h.contFrames)
			}
		})
	},
	"pong": func(ac *attackCtx) {
		h := ac.hr.h
		conns := ac.dial("o", h.pongers, noGzip, true)
		pong := clientFrame(ws.OpPong, true, nil)
		ac.begin()
		forEach(conns, len(conns), func(c *wsConn) { ac.repeat(c, pong, attackBatch, h.pongs) })
	},
	"fanflood": func(ac *attackCtx) {
		h := ac.hr.h
		ac.dial("m", h.fanMembers, noGzip, true)
		conns := ac.dial("f", h.fanSenders, noGzip, true)
		ac.begin()
		forEach(conns, len(conns), func(c *wsConn) { ac.paced(c, clientFrame(ws.OpText, true, nil), h.fanRate) })
	},
	"deflate": func(ac *attackCtx) {
		h := ac.hr.h
		conns := ac.dialDeflate("d")
		if len(conns) == 0 {
			return
		}
		// Sent whether or not the server took the extension: a server
		// that did not must refuse RSV1.
		msg := appendMasked(nil, 0x80|0x40|byte(ws.OpText), deflateText(h.inflateSize), [4]byte{0x5a, 0x17, 0xc3, 0x9e})
		ac.begin()
		ac.repeat(conns[0], msg, 10, h.deflateMsgs)
	},
	"presock": func(ac *attackCtx) {
		ac.rawSockets(ac.hr.h.presocks)
		ac.begin()
		ac.check("newcomer", ac.newcomer)
	},
	"partialip": func(ac *attackCtx) {
		h := ac.hr.h
		conns := ac.dial("p", h.partialIP, noGzip, true)
		frame := clientFrame(ws.OpText, false, bytes.Repeat([]byte("a"), h.partialSize)) // FIN clear
		ac.begin()
		forEach(conns, ac.hr.o.dialers, func(c *wsConn) { ac.write(c, frame, 1) })
		ac.check("1 MB message", ac.bigMessage)
	},
}

// dialMembers opens n plain members of the attacked room that read
// everything.
func (hr *hostileRun) dialMembers(ac *attackCtx, n int) []*member {
	d := newDialer(hr.o, fmt.Sprintf("%s%08x-%s-member", honestPrefix, hr.run, ac.name))
	d.room, d.readBuf = ac.room, 64<<10
	conns, _ := dialAll(hr.o, d, n, noGzip, &hr.live)
	var ms []*member
	for _, c := range conns {
		if c == nil {
			continue
		}
		c.SetDeadline(time.Now().Add(hr.o.timeout + hr.o.duration + honestBound))
		m := &member{c: c}
		ms = append(ms, m)
		go func() {
			for {
				if _, _, err := c.readMessage(nil); err != nil {
					if !m.quit.Load() {
						k := errKind(err)
						m.ended.Store(&k)
					}
					return
				}
			}
		}()
	}
	return ms
}

// forEach runs fn on every connection, with at most workers at once.
func forEach[C any](conns []C, workers int, fn func(C)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(max(workers, 1), len(conns)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; int(i) < len(conns); i = next.Add(1) - 1 {
				fn(conns[i])
			}
		}()
	}
	wg.Wait()
}

// outcomeOf reads what the server sends c until its close frame or until;
// it returns the close code, "open" if c is still connected then, or how
// the connection ended without a close frame.
func outcomeOf(c *wsConn, until time.Time) string {
	c.SetReadDeadline(until)
	for {
		op, _, _, p, err := c.readFrame()
		if err != nil {
			if k := errKind(err); k != "timeout" {
				return k
			}
			return "open"
		}
		if op == ws.OpClose {
			if len(p) < 2 {
				return "1005"
			}
			return strconv.Itoa(int(binary.BigEndian.Uint16(p)))
		}
	}
}
