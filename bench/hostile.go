// Scenario hostile: attacks on memory, CPU and shared budgets, one after
// the other, each for -duration, against any server (wsd or the
// baseline), while two honest clients (one plain, one gzip) chat — in the
// attacked room, or in a room of their own for the attacks on what every
// room shares (cont, pong, fanflood, presock, partialip): each sends a
// short message every 20 ms and reads everything.
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
//	cont     -cont-attackers clients each send the first, non-final
//	         fragment of a message, then -cont-frames empty continuations
//	pong     -pongers clients each send -pongs unsolicited empty pongs
//	fanflood -fanflood-senders clients each send -fanflood-rate empty
//	         messages a second into a room of -fanflood-members members
//	         that never read
//	deflate  one permessage-deflate client sends -deflate-msgs messages of
//	         about 1 KB that inflate to -inflate-size bytes of text
//	presock  -presocks TCP sockets from the first -src address that never
//	         send a request head; then a newcomer from another address
//	         must upgrade and get its message back
//	partialip -partialip-conns connections from the first -src address
//	         each send the first fragment (-partial-size bytes) of a
//	         message; then a client from another address sends a 1 MB
//	         message that must come back whole
//
// In presock and partialip the honest clients dial from the -src
// addresses after the first (127.0.0.2 when there is only one), the
// attackers from the first alone. A newcomer or a 1 MB message that does
// not pass harms the honest clients as a closed one does.
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
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsd-chat/wsd/internal/rsswatch"
)

// attackNames are the attacks in the order they run.
var attackNames = []string{"partial", "inflate", "flood", "ping", "bomb",
	"cont", "pong", "fanflood", "deflate", "presock", "partialip"}

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
	maxFanRate   = 100_000               // -fanflood-rate, at most
	bigHonest    = 1_000_000             // bytes of partialip's honest message
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
	contConns    int
	contFrames   int
	pongers      int
	pongs        int
	fanSenders   int
	fanRate      int // messages per second per sender
	fanMembers   int
	deflateMsgs  int
	presocks     int
	partialIP    int
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
		contConns:    4,
		contFrames:   5_000_000,
		pongers:      4,
		pongs:        5_000_000,
		fanSenders:   10,
		fanRate:      9000, // under both servers' 10,000 messages/s
		fanMembers:   20,
		deflateMsgs:  400,
		presocks:     4000,
		partialIP:    150, // 150 MiB: past the 128 MiB inbound budget
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
		{"-cont-attackers", h.contConns, maxAttackers}, {"-cont-frames", h.contFrames, maxFrames},
		{"-pongers", h.pongers, maxAttackers}, {"-pongs", h.pongs, maxFrames},
		{"-fanflood-senders", h.fanSenders, maxAttackers}, {"-fanflood-members", h.fanMembers, maxAttackers},
		{"-fanflood-rate", h.fanRate, maxFanRate}, {"-deflate-msgs", h.deflateMsgs, maxFrames},
		{"-presocks", h.presocks, maxAttackers}, {"-partialip-conns", h.partialIP, maxAttackers},
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
	case int64(h.partialIP)*int64(h.partialSize) > maxPartial:
		return fmt.Errorf("-partialip-conns × -partial-size = %d MiB: at most %d MiB (the box is shared)",
			int64(h.partialIP)*int64(h.partialSize)>>20, maxPartial>>20)
	case int64(h.bombs)*int64(h.inflateSize) > maxBombBytes:
		return fmt.Errorf("-bombs × -inflate-size = %d MiB: at most %d MiB (the box is shared)",
			int64(h.bombs)*int64(h.inflateSize)>>20, maxBombBytes>>20)
	case int64(h.deflateMsgs)*int64(h.inflateSize) > maxBombBytes:
		return fmt.Errorf("-deflate-msgs × -inflate-size = %d MiB: at most %d MiB (the box is shared)",
			int64(h.deflateMsgs)*int64(h.inflateSize)>>20, maxBombBytes>>20)
	case h.honestP99 <= 0 || h.honestP99 > time.Minute:
		return fmt.Errorf("-honest-p99 %v: up to 1m", h.honestP99)
	case h.maxRSS < 64<<20 || h.maxRSS > maxRSSLimit:
		return fmt.Errorf("-max-rss %d MiB: 64 to %d", h.maxRSS>>20, maxRSSLimit>>20)
	}
	return nil
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
		"cont-attackers": h.contConns, "cont-frames": h.contFrames, "pongers": h.pongers, "pongs": h.pongs,
		"fanflood-senders": h.fanSenders, "fanflood-rate": h.fanRate, "fanflood-members": h.fanMembers,
		"deflate-msgs": h.deflateMsgs, "presocks": h.presocks, "partialip-conns": h.partialIP,
		"honest-p99": h.honestP99, "max-rss-mib": h.maxRSS >> 20})
	hr := &hostileRun{o: o, h: h, run: newRunID(), epoch: time.Now()}
	none := "-"
	hr.current.Store(&none)
	stopProgress := startProgress(o.progress, "hostile", func() string {
		s := fmt.Sprintf("attack %s frames %d honest received %d errors %d", *hr.current.Load(), hr.frames.Load(),
			hr.honestOK.Load(), hr.live.errs.total())
		if o.serverPID > 0 {
			if rss, err := rsswatch.Read(o.serverPID); err == nil {
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
		_, err := rsswatch.Read(hr.o.serverPID)
		return err == nil
	}
	c, err := net.DialTimeout("tcp4", hr.o.addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// attack runs one attack: the honest chat (in the attacked room or beside
// it, see attackPlaces), the attack for -duration (or until the RSS passes -max-rss), then the
// attackers' outcomes, the honest figures and the RSS peak.
func (hr *hostileRun) attack(name string) *attackOutcome {
	o := hr.o
	a := &attackOutcome{name: name, got: map[string]int{}, rssBefore: -1, rssPeak: -1}
	room := fmt.Sprintf("hostile-%08x-%s", hr.run, name)
	place := attackPlaces[name]
	chatRoom := room
	if place.elsewhere {
		chatRoom += "-calm"
	}
	attackSrc, honestSrc := o.src, o.src
	if place.apart {
		attackSrc, honestSrc = splitSources(o.src)
	}
	ch, err := hr.startChat(chatRoom, honestSrc)
	if err != nil {
		a.skipped = err.Error()
		a.died = !hr.serverUp()
		hr.live.errs.add(name + "-honest-" + errKind(errors.Unwrap(err)))
		return a
	}
	if o.serverPID > 0 {
		if rss, err := rsswatch.Read(o.serverPID); err == nil {
			a.rssBefore = rss
		}
	}
	ac := &attackCtx{hr: hr, name: name, room: room, stop: make(chan struct{}), attackSrc: attackSrc, honestSrc: honestSrc}
	var once sync.Once
	ac.end = func() { once.Do(func() { close(ac.stop) }) }
	watch := rsswatch.Start(o.serverPID, rssEvery, hr.h.maxRSS, ac.end)
	framesBefore := hr.frames.Load()

	attacks[name](ac)
	ac.begin() // if the attack could not open its connections
	defer ac.timer.Stop()
	<-ac.stop // every attack runs its full -duration
	a.capped = watch.Over()
	a.attackers = len(ac.conns) + len(ac.raw)
	a.frames = hr.frames.Load() - framesBefore
	a.checks = ac.checks

	if a.capped || watch.Gone() {
		// Free the server at once: no waiting for close frames.
		a.got["closed by bench"] += a.attackers
		closeAll(ac.conns)
		closeRaw(ac.raw)
	} else {
		until := time.Now().Add(collectFor)
		var mu sync.Mutex
		count := func(k string) {
			mu.Lock()
			a.got[k]++
			mu.Unlock()
		}
		forEach(ac.conns, len(ac.conns), func(c *wsConn) { count(outcomeOf(c, until)) })
		forEach(ac.raw, min(len(ac.raw), 256), func(c net.Conn) { count(rawOutcome(c, until)) })
	}
	a.members = len(ac.members)
	for _, m := range ac.members {
		if m.ended.Load() != nil {
			a.membersClosed++
		}
	}
	ch.finish(a)
	a.rssPeak = watch.Peak()
	closeAll(ac.conns)
	closeRaw(ac.raw)
	for _, m := range ac.members {
		m.quit.Store(true)
		m.c.Close()
	}
	a.died = watch.Gone() || !hr.serverUp()
	return a
}
