// Scenario hostile: the attacks of issue 10's table, one after the other,
// each for -duration, against any server (wsd or the baseline), while two
// honest clients (one plain, one gzip) chat in the attacked room: each
// sends a short message every 20 ms and reads everything.
//
//	partial  -partial-conns connections each send the first fragment
//	         (-partial-size bytes) of a message and never finish it
//	inflate  one gzip client that never reads sends -inflate-msgs gzip
//	         messages that inflate to -inflate-size bytes of text
//	flood    -flood-members members that never read, and a client (that
//	         never reads either) sending -flood-msgs empty messages
//	ping     -pingers clients that never read send -pings pings each
//	bomb     one gzip client sends -bombs gzip bombs (inflating to
//	         -inflate-size) into a room of -bomb-members plain members
//	         that read everything
//
// For each attack it reports the server's RSS before and its peak (sampled
// every 10 ms from /proc/PID/status with -server-pid), whether the honest
// clients kept chatting (messages sent and received, echo latency, closed
// or not: "harmed" is closed, a message missing, or a p99 over
// -honest-p99), and what the attackers got: the close code each one
// received, or "open" when it was still connected 2 s after the attack,
// or how its connection ended without a close frame (eof, reset). A
// server that dies is reported as such and the remaining attacks are not
// run. Every attack is bounded in connections, messages and time; with
// -server-pid an attack also stops as soon as the server's RSS passes
// -max-rss, so a server that would grow without bound cannot take the
// machine down with it.

package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"
)

// attackNames are the attacks in the order they run: issue 10's table.
var attackNames = []string{"partial", "inflate", "flood", "ping", "bomb"}

const (
	honestSize   = 64                    // bytes of an honest message
	honestEvery  = 20 * time.Millisecond // an honest sender's pace
	collectFor   = 2 * time.Second       // how long attackers are read for their close
	honestGrace  = 5 * time.Second       // bound on the wait for the last honest messages
	rssEvery     = 10 * time.Millisecond // RSS sampling period
	neverReadBuf = 4096                  // SO_RCVBUF of a client that never reads
	attackBatch  = 1000                  // small frames written at once
	settleFDs    = 10 * time.Second      // bound on the wait for the server to close the last attack's sockets
	warmBound    = 5 * time.Second       // bound on the honest clients' first exchange
	maxPartial   = int64(1) << 30        // -partial-conns × -partial-size, at most
	maxBombBytes = int64(4) << 30        // -bombs × -inflate-size (what bombs inflate to), at most
	maxAttackers = 5000                  // connections of one attack, at most
	maxFrames    = 100_000_000           // frames one attack sends, at most
	maxInflate   = 1 << 20               // -inflate-size: both servers' largest message
	maxRSSLimit  = int64(8) << 30        // -max-rss, at most
	p99Default   = time.Second           // -honest-p99
	rssDefault   = int64(1536) << 20     // -max-rss: the baseline stays under ~2 GiB
	durDefault   = 3 * time.Second       // -duration: how long each attack runs
	honestBound  = 30 * time.Second      // over every honest socket: nothing blocks past an attack
	maxHonestLat = int64(histMaxUs)      // µs
	gzipTrailer  = 8                     // CRC-32 and ISIZE
	smallGzip    = 512                   // a gzip frame larger than this is not an honest message
	attackPrefix = "x"                   // specialKey prefix of attackers
	honestPrefix = "h"                   // specialKey prefix of honest clients and members
)

// hostileOptions are the hostile scenario's own settings.
type hostileOptions struct {
	attacks      []string
	partialConns int
	partialSize  int
	inflateMsgs  int
	inflateSize  int
	floodMembers int
	floodMsgs    int
	pingers      int
	pings        int
	bombMembers  int
	bombs        int
	honestP99    time.Duration
	maxRSS       int64 // bytes
}

func defaultHostile() hostileOptions {
	return hostileOptions{
		attacks:      attackNames,
		partialConns: 256,
		partialSize:  1<<20 - 1,
		inflateMsgs:  2000,
		inflateSize:  1<<20 - 1,
		floodMembers: 20,
		floodMsgs:    300_000,
		pingers:      10,
		pings:        200_000,
		bombMembers:  20,
		bombs:        100,
		honestP99:    p99Default,
		maxRSS:       rssDefault,
	}
}

// check refuses an attack that does not exist or is too big for a shared
// box: the baseline holds about twice what the partial messages and the
// bombs add up to.
func (h *hostileOptions) check() error {
	if len(h.attacks) == 0 {
		return errors.New("-attacks: at least one")
	}
	for _, a := range h.attacks {
		if !slices.Contains(attackNames, a) {
			return fmt.Errorf("-attacks: unknown attack %q (%s)", a, strings.Join(attackNames, ","))
		}
	}
	counts := []struct {
		flag string
		v    int
		max  int
	}{
		{"-partial-conns", h.partialConns, maxAttackers}, {"-flood-members", h.floodMembers, maxAttackers},
		{"-pingers", h.pingers, maxAttackers}, {"-bomb-members", h.bombMembers, maxAttackers},
		{"-inflate-msgs", h.inflateMsgs, maxFrames}, {"-flood-msgs", h.floodMsgs, maxFrames},
		{"-pings", h.pings, maxFrames}, {"-bombs", h.bombs, maxFrames},
		{"-partial-size", h.partialSize, maxInflate}, {"-inflate-size", h.inflateSize, maxInflate},
	}
	for _, c := range counts {
		if c.v < 1 || c.v > c.max {
			return fmt.Errorf("%s %d: 1 to %d", c.flag, c.v, c.max)
		}
	}
	switch {
	case int64(h.partialConns)*int64(h.partialSize) > maxPartial:
		return fmt.Errorf("-partial-conns × -partial-size = %d MiB: at most %d MiB (the box is shared)",
			int64(h.partialConns)*int64(h.partialSize)>>20, maxPartial>>20)
	case int64(h.bombs)*int64(h.inflateSize) > maxBombBytes:
		return fmt.Errorf("-bombs × -inflate-size = %d MiB: at most %d MiB (the box is shared)",
			int64(h.bombs)*int64(h.inflateSize)>>20, maxBombBytes>>20)
	case h.honestP99 <= 0 || h.honestP99 > time.Minute:
		return fmt.Errorf("-honest-p99 %v: up to 1m", h.honestP99)
	case h.maxRSS < 64<<20 || h.maxRSS > maxRSSLimit:
		return fmt.Errorf("-max-rss %d MiB: 64 to %d", h.maxRSS>>20, maxRSSLimit>>20)
	}
	return nil
}

// attackOutcome is what one attack did to the server and to the honest
// clients.
type attackOutcome struct {
	name               string
	skipped            string // why the attack did not run ("" if it did)
	rssBefore, rssPeak int64  // -1: not known (no -server-pid)
	died, capped       bool
	attackers          int
	frames             int64          // frames the attackers wrote
	got                map[string]int // per attacker: close code, open, eof, reset, …
	honestSent         int64
	honestGot          int64
	honestWant         int64
	honestClosed       []string // how each closed honest client ended
	lat                *hdrhistogram.Histogram
	members            int // bystanders (bomb)
	membersClosed      int
}

// harm lists what the attack did to the honest clients; empty: nothing.
func (a *attackOutcome) harm(p99Bound time.Duration) []string {
	var h []string
	if len(a.honestClosed) > 0 {
		h = append(h, "closed "+strings.Join(a.honestClosed, ","))
	}
	if miss := a.honestWant - a.honestGot; miss > 0 {
		h = append(h, fmt.Sprintf("%d of %d missing", miss, a.honestWant))
	}
	if a.lat != nil && a.lat.TotalCount() > 0 {
		if p99 := time.Duration(a.lat.ValueAtQuantile(99)) * time.Microsecond; p99 > p99Bound {
			h = append(h, fmt.Sprintf("p99 %v", p99.Round(time.Millisecond)))
		}
	} else if a.honestWant > 0 || a.honestSent == 0 {
		h = append(h, "nothing received")
	}
	return h
}

// figures adds the outcome to r, each figure named "ATTACK: what".
func (a *attackOutcome) figures(r *Result, p99Bound time.Duration) {
	f := func(name, unit, better string, v float64) { r.add(a.name+": "+name, unit, better, v) }
	if a.skipped != "" {
		if a.died {
			f("server died", "", "lower", 1)
		}
		f("not run", "", "lower", 1)
		return
	}
	if a.rssBefore >= 0 {
		f("server rss before", "MiB", "", float64(a.rssBefore)/(1<<20))
	}
	if a.rssPeak >= 0 {
		f("server peak rss", "MiB", "lower", float64(a.rssPeak)/(1<<20))
	}
	f("server died", "", "lower", b2f(a.died))
	if a.capped {
		f("stopped at -max-rss", "", "lower", 1)
	}
	f("attackers", "", "", float64(a.attackers))
	f("attack frames sent", "", "", float64(a.frames))
	for _, k := range sortedKeys(a.got) {
		f("attackers got "+k, "", "", float64(a.got[k]))
	}
	if a.members > 0 {
		f("members", "", "", float64(a.members))
		f("members closed", "", "lower", float64(a.membersClosed))
	}
	f("honest sent", "", "", float64(a.honestSent))
	f("honest received", "", "higher", float64(a.honestGot))
	f("honest missing", "", "lower", float64(max(a.honestWant-a.honestGot, 0)))
	f("honest closed", "", "lower", float64(len(a.honestClosed)))
	if a.lat != nil && a.lat.TotalCount() > 0 {
		f("honest p50", "ms", "lower", float64(a.lat.ValueAtQuantile(50))/1000)
		f("honest p99", "ms", "lower", float64(a.lat.ValueAtQuantile(99))/1000)
		f("honest max", "ms", "lower", float64(a.lat.Max())/1000)
	}
	f("honest harmed", "", "lower", b2f(len(a.harm(p99Bound)) > 0))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// hostileRun is one run of the scenario.
type hostileRun struct {
	o        *options
	h        hostileOptions
	run      uint32
	epoch    time.Time
	live     live
	baseFDs  int
	current  atomic.Pointer[string] // attack under way, for the progress line
	frames   atomic.Int64
	honestOK atomic.Int64
}

func runHostile(o *options) (*Result, error) {
	h := o.hostile
	r := newResult("hostile", o, map[string]any{"attacks": strings.Join(h.attacks, ","), "duration": o.duration,
		"partial-conns": h.partialConns, "partial-size": h.partialSize, "inflate-msgs": h.inflateMsgs,
		"inflate-size": h.inflateSize, "flood-members": h.floodMembers, "flood-msgs": h.floodMsgs,
		"pingers": h.pingers, "pings": h.pings, "bomb-members": h.bombMembers, "bombs": h.bombs,
		"honest-p99": h.honestP99, "max-rss-mib": h.maxRSS >> 20})
	hr := &hostileRun{o: o, h: h, run: newRunID(), epoch: time.Now()}
	none := "-"
	hr.current.Store(&none)
	stopProgress := startProgress(o.progress, "hostile", func() string {
		s := fmt.Sprintf("attack %s frames %d honest received %d errors %d", *hr.current.Load(), hr.frames.Load(),
			hr.honestOK.Load(), hr.live.errs.total())
		if o.serverPID > 0 {
			if rss, err := readRSS(o.serverPID); err == nil {
				s += fmt.Sprintf(" server rss %.0f MiB", float64(rss)/(1<<20))
			}
		}
		return s
	})
	defer stopProgress()
	if o.serverPID > 0 {
		hr.baseFDs, _ = countFDs(o.serverPID)
	}
	died := false
	ran := 0
	for _, name := range h.attacks {
		hr.current.Store(&name)
		var a *attackOutcome
		if died {
			a = &attackOutcome{name: name, skipped: "the server died", died: true}
		} else {
			a = hr.attack(name)
			died = a.died
		}
		if a.skipped == "" {
			ran++
		} else {
			hr.live.errs.add(name + "-not-run")
		}
		a.figures(r, h.honestP99)
		if !died {
			hr.settle()
		}
	}
	r.finish(&hr.live.errs)
	if ran == 0 {
		return r, fmt.Errorf("no attack ran:%s", hr.live.errs.String())
	}
	return r, nil
}

// settle waits (boundedly) for the server to close the last attack's
// sockets, so the next attack starts from the same state.
func (hr *hostileRun) settle() {
	if hr.o.serverPID <= 0 {
		time.Sleep(100 * time.Millisecond)
		return
	}
	for deadline := time.Now().Add(settleFDs); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if n, err := countFDs(hr.o.serverPID); err != nil || n <= hr.baseFDs+4 {
			return
		}
	}
}

// serverUp tells whether the server is still there: its /proc entry with
// a VmRSS line (a zombie has none) or, without -server-pid, its port.
func (hr *hostileRun) serverUp() bool {
	if hr.o.serverPID > 0 {
		_, err := readRSS(hr.o.serverPID)
		return err == nil
	}
	c, err := net.DialTimeout("tcp4", hr.o.addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// rssWatch samples a process's RSS every rssEvery and keeps the peak; it
// calls over (once) when the RSS passes limit or the process is gone.
type rssWatch struct {
	peak atomic.Int64
	gone atomic.Bool
	over atomic.Bool
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func watchRSS(pid int, limit int64, over func()) *rssWatch {
	w := &rssWatch{stop: make(chan struct{}), done: make(chan struct{})}
	w.peak.Store(-1)
	if pid <= 0 {
		close(w.done)
		return w
	}
	sample := func() bool {
		rss, err := readRSS(pid)
		if err != nil {
			w.gone.Store(true)
			over()
			return false
		}
		if rss > w.peak.Load() {
			w.peak.Store(rss)
		}
		if rss > limit && !w.over.Swap(true) {
			over()
		}
		return true
	}
	sample()
	go func() {
		defer close(w.done)
		t := time.NewTicker(rssEvery)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				sample()
				return
			case <-t.C:
				if !sample() {
					return
				}
			}
		}
	}()
	return w
}

// end stops the watch and returns the peak (-1 when not watched).
func (w *rssWatch) end() int64 {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	return w.peak.Load()
}

// honestPeer is one of the two honest clients.
type honestPeer struct {
	c    *wsConn
	id   uint16
	sent atomic.Int64
	got  [2]atomic.Int64 // honest messages received, by sender
	// first is, by sender, the first sequence number received (-1: none
	// yet): what a sender sent before is not expected (a server may
	// register a client only after its handshake's response).
	first  [2]atomic.Int64
	ended  atomic.Pointer[string]
	mu     sync.Mutex
	hist   *hdrhistogram.Histogram // latency of every honest delivery, µs
	closed bool                    // closed by the bench: a read error is no harm
}

// chatRoom is the two honest clients of one attack.
type chatRoom struct {
	hr    *hostileRun
	peers [2]*honestPeer
	stop  chan struct{}
	wg    sync.WaitGroup // senders
	rwg   sync.WaitGroup // readers
}

// startChat dials the two honest clients into room (the second one with
// gzip) and waits until each has the other's first message.
func (hr *hostileRun) startChat(room string) (*chatRoom, error) {
	d := newDialer(hr.o, fmt.Sprintf("%s%08x-%s", honestPrefix, hr.run, room))
	d.room, d.readBuf = room, 64<<10
	ch := &chatRoom{hr: hr, stop: make(chan struct{})}
	for i := range ch.peers {
		c, err := d.dial(i, i == 1)
		if err != nil {
			ch.close()
			return nil, fmt.Errorf("honest client: %w", err)
		}
		c.SetDeadline(time.Now().Add(honestBound + hr.o.timeout + hr.o.duration))
		p := &honestPeer{c: c, id: uint16(i), hist: hdrhistogram.New(1, maxHonestLat, 3)}
		p.first[0].Store(-1)
		p.first[1].Store(-1)
		ch.peers[i] = p
		ch.rwg.Add(1)
		go ch.read(p)
	}
	for _, p := range ch.peers {
		ch.wg.Add(1)
		go ch.send(p)
	}
	for deadline := time.Now().Add(warmBound); !ch.allGot(1); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) || ch.anyEnded() {
			ch.close()
			return nil, errors.New("honest clients: no exchange before the attack")
		}
	}
	return ch, nil
}

func (ch *chatRoom) send(p *honestPeer) {
	defer ch.wg.Done()
	buf := make([]byte, honestSize)
	t := time.NewTicker(honestEvery)
	defer t.Stop()
	for seq := uint32(0); ; seq++ {
		fillPayload(buf, ch.hr.run, p.id, seq, int64(time.Since(ch.hr.epoch)))
		if err := p.c.writeFrame(ws.OpText, buf); err != nil {
			return
		}
		p.sent.Add(1)
		select {
		case <-ch.stop:
			return
		case <-t.C:
		}
	}
}

// read takes everything the server sends p; honest messages are counted
// and timed, the attack's traffic skipped (a gzip frame is gunzipped only
// when its trailer says it inflates to an honest message's size).
func (ch *chatRoom) read(p *honestPeer) {
	defer ch.rwg.Done()
	run := ch.hr.run
	for {
		op, m, err := p.c.readMessage(nil)
		if err != nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if !closed {
				kind := errKind(err)
				p.ended.Store(&kind)
			}
			return
		}
		var d decoded
		switch {
		case op == ws.OpText && len(m) == honestSize:
			d = parsePayload(m, run, honestSize)
		case op == ws.OpBinary && len(m) <= smallGzip && len(m) > gzipTrailer &&
			binary.LittleEndian.Uint32(m[len(m)-4:]) == honestSize:
			d = gunzipCheck(m, run, honestSize)
		}
		if !d.ok || d.sender > 1 {
			continue
		}
		lat := (int64(time.Since(ch.hr.epoch)) - d.ts) / 1000
		p.first[d.sender].CompareAndSwap(-1, int64(d.seq))
		p.got[d.sender].Add(1)
		ch.hr.honestOK.Add(1)
		p.mu.Lock()
		p.hist.RecordValue(min(max(lat, 1), maxHonestLat))
		p.mu.Unlock()
	}
}

// expected is how many of sender s's messages p should have: all it sent
// from the first one p received.
func (ch *chatRoom) expected(p *honestPeer, s int) int64 {
	return ch.peers[s].sent.Load() - max(p.first[s].Load(), 0)
}

// allGot tells whether each peer has n messages from each sender (n < 0:
// all that were expected).
func (ch *chatRoom) allGot(n int64) bool {
	for _, p := range ch.peers {
		for s := range ch.peers {
			want := n
			if n < 0 {
				want = ch.expected(p, s)
			}
			if p.got[s].Load() < want && p.ended.Load() == nil {
				return false
			}
		}
	}
	return true
}

func (ch *chatRoom) anyEnded() bool {
	for _, p := range ch.peers {
		if p != nil && p.ended.Load() != nil {
			return true
		}
	}
	return false
}

// finish stops the senders, waits (boundedly) for their last messages and
// fills in the honest figures of a.
func (ch *chatRoom) finish(a *attackOutcome) {
	close(ch.stop)
	ch.wg.Wait()
	deadline := time.Now().Add(honestGrace)
	for !ch.allGot(-1) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	a.lat = hdrhistogram.New(1, maxHonestLat, 3)
	for _, p := range ch.peers {
		a.honestSent += p.sent.Load()
	}
	for _, p := range ch.peers {
		a.honestWant += ch.expected(p, 0) + ch.expected(p, 1)
		a.honestGot += p.got[0].Load() + p.got[1].Load()
		if e := p.ended.Load(); e != nil {
			a.honestClosed = append(a.honestClosed, *e)
		}
		p.mu.Lock()
		a.lat.Merge(p.hist)
		p.mu.Unlock()
	}
	ch.close()
}

// close closes both clients and waits for their readers.
func (ch *chatRoom) close() {
	for _, p := range ch.peers {
		if p != nil {
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			p.c.Close()
		}
	}
	ch.rwg.Wait()
}

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
	conns    []*wsConn // attackers
	members  []*member // bystanders that read everything
}

// dial opens n attackers (gzip-capable when gz(i)); neverRead shrinks
// their receive buffers.
func (ac *attackCtx) dial(role string, n int, gz func(int) bool, neverRead bool) []*wsConn {
	o := ac.hr.o
	d := newDialer(o, fmt.Sprintf("%s%08x-%s-%s", attackPrefix, ac.hr.run, ac.name, role))
	d.room, d.readBuf = ac.room, 16<<10
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
func forEach(conns []*wsConn, workers int, fn func(*wsConn)) {
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

// attack runs one attack: the honest chat in a room of its own, the
// attack for -duration (or until the RSS passes -max-rss), then the
// attackers' outcomes, the honest figures and the RSS peak.
func (hr *hostileRun) attack(name string) *attackOutcome {
	o := hr.o
	a := &attackOutcome{name: name, got: map[string]int{}, rssBefore: -1, rssPeak: -1}
	room := fmt.Sprintf("hostile-%08x-%s", hr.run, name)
	ch, err := hr.startChat(room)
	if err != nil {
		a.skipped = err.Error()
		a.died = !hr.serverUp()
		hr.live.errs.add(name + "-honest-" + errKind(errors.Unwrap(err)))
		return a
	}
	if o.serverPID > 0 {
		if rss, err := readRSS(o.serverPID); err == nil {
			a.rssBefore = rss
		}
	}
	ac := &attackCtx{hr: hr, name: name, room: room, stop: make(chan struct{})}
	var once sync.Once
	ac.end = func() { once.Do(func() { close(ac.stop) }) }
	watch := watchRSS(o.serverPID, hr.h.maxRSS, ac.end)
	framesBefore := hr.frames.Load()

	attacks[name](ac)
	ac.begin() // if the attack could not open its connections
	defer ac.timer.Stop()
	<-ac.stop // every attack runs its full -duration
	a.capped = watch.over.Load()
	a.attackers = len(ac.conns)
	a.frames = hr.frames.Load() - framesBefore

	if a.capped || watch.gone.Load() {
		// Free the server at once: no waiting for close frames.
		for range ac.conns {
			a.got["closed by bench"]++
		}
		closeAll(ac.conns)
	} else {
		until := time.Now().Add(collectFor)
		var mu sync.Mutex
		forEach(ac.conns, len(ac.conns), func(c *wsConn) {
			k := outcomeOf(c, until)
			mu.Lock()
			a.got[k]++
			mu.Unlock()
		})
	}
	a.members = len(ac.members)
	for _, m := range ac.members {
		if m.ended.Load() != nil {
			a.membersClosed++
		}
	}
	ch.finish(a)
	a.rssPeak = watch.end()
	closeAll(ac.conns)
	for _, m := range ac.members {
		m.quit.Store(true)
		m.c.Close()
	}
	a.died = watch.gone.Load() || !hr.serverUp()
	return a
}
