// The hostile scenario's attacks on what connections share — CPU, the
// fan-out, slots and the inbound budget — and the honest checks that tell
// whether others still get through.

package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
)

const checkBound = 10 * time.Second // bound on one honest check

// paced writes frame to c at rate a second (in 10 ms steps) until the
// attack ends or rate × -duration frames are sent.
func (ac *attackCtx) paced(c *wsConn, frame []byte, rate int) {
	total := int(int64(rate) * int64(ac.hr.o.duration) / int64(time.Second))
	step := max(rate/100, 1)
	batch := bytes.Repeat(frame, 4*step) // a late tick catches up by at most 4 steps
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for sent := 0; sent < total; {
		select {
		case <-ac.stop:
			return
		case <-tick.C:
		}
		due := min(int(time.Since(start).Seconds()*float64(rate)), total) - sent
		k := min(due, 4*step)
		if k <= 0 {
			continue
		}
		if !ac.write(c, batch[:k*len(frame)], int64(k)) {
			return
		}
		sent += k
	}
}

// dialDeflate opens one attacker that offers permessage-deflate as
// browsers do, never reads, and writes plain text frames.
func (ac *attackCtx) dialDeflate(role string) []*wsConn {
	o := ac.hr.o
	d := newDialer(o, fmt.Sprintf("%s%08x-%s-%s", attackPrefix, ac.hr.run, ac.name, role))
	d.room, d.readBuf, d.src, d.rcvBuf = ac.room, 16<<10, tcpAddrs(ac.attackSrc), neverReadBuf
	d.hsZ = d.hs
	d.hsZ.Extensions = []httphead.Option{browserOffer}
	conns, _ := dialAll(o, d, 1, noGzip, &ac.hr.live)
	if conns[0] == nil {
		return nil
	}
	ac.mu.Lock()
	ac.conns = append(ac.conns, conns[0])
	ac.mu.Unlock()
	return conns
}

var deflateTexts sync.Map // n → deflateText(n)

// deflateText is n bytes of 'a' as a permessage-deflate payload (sync
// flush, its 4-byte tail removed): about n/1000 bytes.
func deflateText(n int) []byte {
	if z, ok := deflateTexts.Load(n); ok {
		return z.([]byte)
	}
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(bytes.Repeat([]byte("a"), n))
	w.Flush()
	z := b.Bytes()[:b.Len()-4]
	deflateTexts.Store(n, z)
	return z
}

// rawSockets opens n TCP connections from the attackers' address that
// never send a byte.
func (ac *attackCtx) rawSockets(n int) {
	o := ac.hr.o
	nd := net.Dialer{LocalAddr: tcpAddrs(ac.attackSrc)[0], Timeout: o.dialTimeout, Control: bindNoPort}
	conns := make([]net.Conn, n)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	deadline := time.Now().Add(o.timeout)
	forEach(idx, o.dialers, func(i int) {
		if time.Now().After(deadline) {
			ac.hr.live.errs.add("dial-phase-timeout")
			return
		}
		c, err := nd.Dial("tcp4", o.addr)
		if err != nil {
			ac.hr.live.errs.add(errKind(err))
			return
		}
		conns[i] = c
	})
	ac.mu.Lock()
	for _, c := range conns {
		if c != nil {
			ac.raw = append(ac.raw, c)
		}
	}
	ac.mu.Unlock()
}

// rawOutcome is how a socket that sent nothing ended by until: the HTTP
// status the server answered ("http-429"), "open", or how it was closed.
func rawOutcome(c net.Conn, until time.Time) string {
	c.SetReadDeadline(until)
	br := bufio.NewReaderSize(c, 512)
	line, err := br.ReadString('\n')
	if f := strings.Fields(line); len(f) >= 2 && strings.HasPrefix(f[0], "HTTP/") {
		return "http-" + f[1]
	}
	if k := errKind(err); k != "timeout" {
		return k
	}
	return "open"
}

func closeRaw(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// check runs an honest check and keeps its outcome.
func (ac *attackCtx) check(name string, fn func() error) {
	failure := ""
	if err := fn(); err != nil {
		failure = err.Error()
	}
	ac.checks = append(ac.checks, honestCheck{name: name, failure: failure})
}

// honestConn dials an honest client from the honest addresses into a
// room of its own.
func (ac *attackCtx) honestConn(role string) (*wsConn, error) {
	d := newDialer(ac.hr.o, fmt.Sprintf("%s%08x-%s-%s", honestPrefix, ac.hr.run, ac.name, role))
	d.room, d.readBuf, d.src = ac.room+"-"+role, 64<<10, tcpAddrs(ac.honestSrc)
	c, err := d.dial(0, false)
	if err != nil {
		return nil, errors.New(errKind(err))
	}
	c.SetDeadline(time.Now().Add(checkBound))
	return c, nil
}

// echoed reads c until a text message of n bytes comes back.
func echoed(c *wsConn, n int) error {
	for {
		op, m, err := c.readMessage(nil)
		if err != nil {
			return errors.New(errKind(err))
		}
		if op == ws.OpText && len(m) == n {
			return nil
		}
	}
}

// newcomer upgrades a client from an honest address and gets its message
// back.
func (ac *attackCtx) newcomer() error {
	c, err := ac.honestConn("new")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.writeFrame(ws.OpText, []byte("newcomer")); err != nil {
		return errors.New(errKind(err))
	}
	return echoed(c, len("newcomer"))
}

// bigMessage sends a 1 MB message from an honest address, in 64 KiB
// writes so that the server holds it partly received, and gets it back.
func (ac *attackCtx) bigMessage() error {
	c, err := ac.honestConn("big")
	if err != nil {
		return err
	}
	defer c.Close()
	f := clientFrame(ws.OpText, true, bytes.Repeat([]byte("b"), bigHonest))
	for i := 0; i < len(f); i += 64 << 10 {
		if _, err := c.Write(f[i:min(i+64<<10, len(f))]); err != nil {
			return errors.New(errKind(err))
		}
		time.Sleep(2 * time.Millisecond)
	}
	return echoed(c, bigHonest)
}
