// Scenario rolling: a rolling restart of a wsd cluster under chat load,
// on the Go client (package client). The bench starts an embedded
// nats-server with JetStream ("bench natsd -jetstream", a child process),
// -boxes wsd boxes joined through it, and -n chat protocol v1 clients in
// -rooms rooms (client i in room i%rooms, on box (i/rooms)%boxes, so
// every room has members on every box; every other box listed to
// reconnect to). They chat at -rate messages a second overall,
// each send with the client's own id ("client ids": a retry after a
// reconnect repeats it). After -steady, each box in turn gets SIGTERM
// (lame duck: its clients are closed over -lame-duck and reconnect to
// any box with since), is restarted on its address, and the roll waits
// -settle before the next box; -tail of load follows, then the senders
// stop and the members get -drain to catch up.
//
// Reported: messages sent, acked, delivered; lost (an acked message a
// member of its room never got), duplicated (a member got one message
// twice: a retried send broadcast again), order (members whose order of
// their room's messages differs from another member's), rejoins answered
// recovered:false, and p99 publish→delivery during the roll against the
// steady state. Presence: the left entries members receive, per roll,
// for keys that were back within -presence-grace (a drain must not show a
// moving client as gone: goal 0). With -kill each box is SIGKILLed
// instead of drained, with one more client (a ghost, never back) on it,
// and a probe on a surviving box watches the count of the ghost's room:
// it must come back to the room's size within -presence-lease and two
// presence intervals of the kill, and never count a moved member twice.
//
// The cluster-wide history is passed through with -box-flags (e.g.
// "-history-jetstream"); without it seq is per box, a client that moves
// boxes is answered recovered:false, and losses are expected: they are
// reported as measured, not hidden. Everything is bounded in count and
// time, on loopback, and stops by itself.

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/wsd-chat/wsd/client"
)

// rollOptions are the rolling scenario's settings.
type rollOptions struct {
	boxes, n, rooms int
	rate            float64 // messages a second, all clients together
	size            int     // bytes of padding in each message
	steady, settle  time.Duration
	tail, drain     time.Duration
	lameDuck        time.Duration
	kill            bool
	bin             string
	boxFlags        []string
	jetstream       bool
	inflight        int
	dialers         int
	timeout         time.Duration
	lease           time.Duration // -kill: how long the probe watches the count
	json            string
	progress        io.Writer
}

// Bounds of the rolling scenario, so that it stays a bench of a laptop.
const (
	rollMaxClients = 10000
	rollMaxBoxes   = 8
	rollMaxRate    = 5000
)

func defaultRollOptions() *rollOptions {
	return &rollOptions{boxes: 3, n: 3000, rooms: 30, rate: 300, size: 64, steady: 10 * time.Second,
		settle: 3 * time.Second, tail: 5 * time.Second, drain: 10 * time.Second, lameDuck: 2 * time.Second,
		jetstream: true, inflight: 512, dialers: 64, timeout: 30 * time.Second, lease: 10 * time.Second,
		progress: os.Stderr}
}

func parseRolling(args []string) (*rollOptions, error) {
	ro := defaultRollOptions()
	fs := flag.NewFlagSet("rolling", flag.ContinueOnError)
	fs.SetOutput(flagOutput)
	fs.IntVar(&ro.boxes, "boxes", ro.boxes, "wsd boxes joined by NATS")
	fs.IntVar(&ro.n, "n", ro.n, "v1 clients")
	fs.IntVar(&ro.rooms, "rooms", ro.rooms, "rooms the clients are spread over")
	fs.Float64Var(&ro.rate, "rate", ro.rate, "messages a second, all clients together")
	fs.IntVar(&ro.size, "size", ro.size, "bytes of padding per message")
	fs.DurationVar(&ro.steady, "steady", ro.steady, "load before the roll (the steady-state latency)")
	fs.DurationVar(&ro.settle, "settle", ro.settle, "wait after a box is back before the next one")
	fs.DurationVar(&ro.tail, "tail", ro.tail, "load after the roll")
	fs.DurationVar(&ro.drain, "drain", ro.drain, "after the senders stop, how long members may take to catch up")
	fs.DurationVar(&ro.lameDuck, "lame-duck", ro.lameDuck, "the boxes' -lame-duck-duration")
	fs.BoolVar(&ro.kill, "kill", false, "SIGKILL each box instead of SIGTERM")
	fs.StringVar(&ro.bin, "wsd", "", "wsd binary to run (default: build ./cmd/wsd)")
	boxFlags := fs.String("box-flags", "", "more flags for every box, space-separated (e.g. \"-history-jetstream\")")
	fs.BoolVar(&ro.jetstream, "jetstream", ro.jetstream, "enable JetStream in the embedded nats-server")
	fs.IntVar(&ro.inflight, "inflight", ro.inflight, "sends waiting for their ack at once, all clients together")
	fs.IntVar(&ro.dialers, "dialers", ro.dialers, "concurrent dials while connecting the clients")
	fs.DurationVar(&ro.timeout, "timeout", ro.timeout, "bound on one send's ack and on connecting")
	fs.DurationVar(&ro.lease, "lease-wait", ro.lease, "-kill: how long the probe watches a room's count after a kill")
	fs.StringVar(&ro.json, "json", "", "write the result as JSON to this file (- for stdout)")
	quiet := fs.Bool("q", false, "no progress lines")
	if err := fs.Parse(bareJSON(args)); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	ro.boxFlags = strings.Fields(*boxFlags)
	if *quiet {
		ro.progress = nil
	}
	switch {
	case ro.boxes < 1 || ro.boxes > rollMaxBoxes:
		return nil, fmt.Errorf("-boxes %d: 1 to %d", ro.boxes, rollMaxBoxes)
	case ro.n < 1 || ro.n > rollMaxClients:
		return nil, fmt.Errorf("-n %d: 1 to %d", ro.n, rollMaxClients)
	case ro.rooms < 1 || ro.rooms > ro.n:
		return nil, fmt.Errorf("-rooms %d: 1 to -n", ro.rooms)
	case ro.rate <= 0 || ro.rate > rollMaxRate:
		return nil, fmt.Errorf("-rate %v: above 0, at most %d", ro.rate, rollMaxRate)
	case ro.size < 0 || ro.size > 64<<10:
		return nil, fmt.Errorf("-size %d: 0 to 65536", ro.size)
	case ro.steady <= 0 || ro.settle < 0 || ro.tail < 0 || ro.drain <= 0 || ro.lameDuck < 0:
		return nil, errors.New("-steady and -drain must be above 0; -settle, -tail, -lame-duck 0 or more")
	case ro.steady+ro.tail+time.Duration(ro.boxes)*(ro.settle+ro.lameDuck) > 10*time.Minute:
		return nil, errors.New("the run would pass 10 minutes")
	case ro.inflight < 1 || ro.dialers < 1:
		return nil, errors.New("-inflight and -dialers: at least 1")
	}
	return ro, nil
}

func runRollingCmd(args []string) error {
	ro, err := parseRolling(args)
	if err != nil {
		return err
	}
	r, err := runRolling(ro)
	if err != nil {
		return err
	}
	if ro.json == "-" {
		r.print(os.Stderr)
	} else {
		r.print(os.Stdout)
	}
	return writeJSON(ro.json, r)
}

// rollMsg identifies one message: its sender and the sender's count.
type rollMsg struct{ sender, k uint32 }

// rollMember is what one client received.
type rollMember struct {
	i, room     int
	c           *client.Client
	mu          sync.Mutex
	got         []rollMsg
	unrecovered int64
	warnings    int64
	closedErr   error
	away        []rollAway
}

// rollPhase says when a message was sent, for the latency split.
const (
	phaseSteady = iota
	phaseRoll
	phaseTail
	phaseDrain
	phases
)

var phaseNames = [phases]string{"steady", "roll", "tail", "drain"}

// rollHist is a latency histogram per phase, sharded to keep thousands of
// member goroutines off one lock.
type rollHist struct {
	shards [16]struct {
		mu sync.Mutex
		h  [phases]*hdrhistogram.Histogram
	}
}

func newRollHist() *rollHist {
	rh := &rollHist{}
	for i := range rh.shards {
		for p := range phases {
			rh.shards[i].h[p] = hdrhistogram.New(1, histMaxUs, 3)
		}
	}
	return rh
}

func (rh *rollHist) record(shard, phase int, us int64) {
	s := &rh.shards[shard%len(rh.shards)]
	s.mu.Lock()
	s.h[phase].RecordValue(min(max(us, 1), histMaxUs))
	s.mu.Unlock()
}

func (rh *rollHist) merged(phase int) *hdrhistogram.Histogram {
	h := hdrhistogram.New(1, histMaxUs, 3)
	for i := range rh.shards {
		h.Merge(rh.shards[i].h[phase])
	}
	return h
}

// formatRollText is a message's text: sender, count, phase, send time
// (Unix ns), then padding.
func formatRollText(m rollMsg, phase int, t time.Time, pad string) string {
	return fmt.Sprintf("%d %d %d %d %s", m.sender, m.k, phase, t.UnixNano(), pad)
}

func parseRollText(s string) (m rollMsg, phase int, sent int64, ok bool) {
	f := strings.SplitN(s, " ", 5)
	if len(f) < 4 {
		return m, 0, 0, false
	}
	a, e1 := strconv.ParseUint(f[0], 10, 32)
	b, e2 := strconv.ParseUint(f[1], 10, 32)
	p, e3 := strconv.Atoi(f[2])
	t, e4 := strconv.ParseInt(f[3], 10, 64)
	if e1 != nil || e2 != nil || e3 != nil || e4 != nil || p < 0 || p >= phases {
		return m, 0, 0, false
	}
	return rollMsg{uint32(a), uint32(b)}, p, t, true
}

// freePort returns a loopback address with a port free right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func runRolling(ro *rollOptions) (*Result, error) {
	run := newRunID()
	bo := defaultOptions()
	bo.addr = ""
	mode := "SIGTERM"
	if ro.kill {
		mode = "SIGKILL"
	}
	r := newResult("rolling", bo, map[string]any{"boxes": ro.boxes, "n": ro.n, "rooms": ro.rooms, "rate": ro.rate,
		"steady": ro.steady, "settle": ro.settle, "tail": ro.tail, "lame-duck": ro.lameDuck, "restart": mode,
		"box-flags": strings.Join(ro.boxFlags, " "), "jetstream": ro.jetstream})
	var errs errCount
	logf := func(format string, args ...any) {
		if ro.progress != nil {
			fmt.Fprintf(ro.progress, "rolling: "+format+"\n", args...)
		}
	}

	bin := ro.bin
	if bin == "" {
		b, cleanup, err := buildWsd("wsd-rolling-")
		if err != nil {
			return nil, err
		}
		defer cleanup()
		bin = b
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	natsArgs := []string{"natsd"}
	if ro.jetstream {
		natsArgs = append(natsArgs, "-jetstream")
	}
	nats, err := startServer(target{name: "natsd", bin: self, args: natsArgs}, startTimeout)
	if err != nil {
		return nil, err
	}
	defer nats.stop(stopTimeout)
	natsURL := "nats://" + nats.addr

	targets := make([]target, ro.boxes)
	procs := make([]*serverProc, ro.boxes)
	var procsMu sync.Mutex
	defer func() {
		procsMu.Lock()
		defer procsMu.Unlock()
		for _, p := range procs {
			if p != nil {
				p.stop(stopTimeout)
			}
		}
	}()
	urls := make([]string, ro.boxes)
	for i := range targets {
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		t := target{name: fmt.Sprintf("box%d", i), bin: bin, admin: true,
			args: []string{"-addr", addr, "-admin-addr", "127.0.0.1:0", "-log-level", "info",
				"-nats-url", natsURL, "-box-id", fmt.Sprintf("box%d", i),
				"-lame-duck-duration", ro.lameDuck.String(), "-shutdown-timeout", (ro.lameDuck + 5*time.Second).String(),
				"-max-handshakes-per-ip", "0"}}
		t.args = append(append(t.args, wsdLoadArgs...), ro.boxFlags...)
		targets[i] = t
		p, err := startServer(t, startTimeout)
		if err != nil {
			return nil, err
		}
		procs[i], urls[i] = p, "ws://"+addr+"/"
	}
	logf("nats %s, boxes %s", nats.addr, strings.Join(urls, " "))
	r.Addr = strings.Join(urls, " ")

	// The clients, each with every other box to reconnect to.
	members := make([]*rollMember, ro.n)
	roomName := func(k int) string { return roomNameOf(run, k) }
	hist := newRollHist()
	grace, interval, lease := rollPresenceTimes(ro.boxFlags)
	pres := &rollPresence{prefix: fmt.Sprintf("rl%08x-", run), n: ro.n}
	pres.roll.Store(-1)
	var delivered atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), ro.timeout+10*time.Minute)
	defer cancel()
	sem := make(chan struct{}, ro.dialers)
	var dialErr atomic.Value
	t0 := time.Now()
	for i := range members {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// Every room has members on every box: client i is in room
			// i%rooms, on box (i/rooms)%boxes.
			m := &rollMember{i: i, room: i % ro.rooms}
			box := (i / ro.rooms) % ro.boxes
			var others []string
			for k := 1; k < ro.boxes; k++ {
				others = append(others, urls[(box+k)%ro.boxes])
			}
			dctx, dcancel := context.WithTimeout(ctx, ro.timeout)
			defer dcancel()
			c, err := client.Dial(dctx, urls[box], client.Options{Key: fmt.Sprintf("rl%08x-%d", run, i),
				Rooms: []string{roomName(m.room)}, URLs: others, QueueSize: 4096,
				Backoff: client.Backoff{Min: 50 * time.Millisecond, Max: 2 * time.Second}})
			if err != nil {
				dialErr.CompareAndSwap(nil, err)
				errs.add("dial-" + errKind(err))
				return
			}
			m.c = c
			members[i] = m
		}()
	}
	wg.Wait()
	if v := dialErr.Load(); v != nil {
		for _, m := range members {
			if m != nil {
				m.c.Close()
			}
		}
		return nil, fmt.Errorf("connecting the clients: %v", v)
	}
	r.add("connect time", "s", "lower", time.Since(t0).Seconds())
	logf("%d clients connected in %v", ro.n, time.Since(t0).Round(time.Millisecond))

	// Every member's events, until its client is closed.
	var readers sync.WaitGroup
	for _, m := range members {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for ev := range m.c.Events() {
				switch ev := ev.(type) {
				case *client.Message:
					msg, ph, sent, ok := parseRollText(ev.Text)
					if !ok {
						errs.add("member-bad-text")
						continue
					}
					hist.record(m.i, ph, time.Since(time.Unix(0, sent)).Microseconds())
					m.mu.Lock()
					m.got = append(m.got, msg)
					m.mu.Unlock()
					delivered.Add(1)
				case *client.Joined:
					if ev.Rejoin && !ev.Recovered {
						m.mu.Lock()
						m.unrecovered++
						m.mu.Unlock()
					}
				case *client.Warning:
					m.mu.Lock()
					m.warnings++
					m.mu.Unlock()
				case *client.Presence:
					pres.note(ev.Left, time.Now())
				case *client.StateChange:
					m.mu.Lock()
					open := len(m.away) > 0 && m.away[len(m.away)-1].to.IsZero()
					switch {
					case ev.State == client.Connected && open:
						m.away[len(m.away)-1].to = time.Now()
					case ev.State != client.Connected && !open:
						m.away = append(m.away, rollAway{from: time.Now()})
					}
					m.mu.Unlock()
					if ev.State == client.Closed && ev.Err != nil && !errors.Is(ev.Err, client.ErrClosed) {
						m.mu.Lock()
						m.closedErr = ev.Err
						m.mu.Unlock()
						errs.add("client-closed-" + errKind(ev.Err))
					}
				}
			}
		}()
	}
	closeClients := func() {
		for _, m := range members {
			m.c.Close()
		}
		readers.Wait()
	}

	// The senders: -rate a second, round-robin over the clients, each send
	// waiting for its ack on its own goroutine (at most -inflight).
	var phase atomic.Int32
	var sent, acked, dupAcks, sendErrs atomic.Int64
	var ackMu sync.Mutex
	ackedBy := make([][]rollMsg, ro.rooms) // acked messages per room
	counts := make([]uint32, ro.n)
	pad := strings.Repeat("x", ro.size)
	stopSend := make(chan struct{})
	var senders sync.WaitGroup
	inflight := make(chan struct{}, ro.inflight)
	senders.Add(1)
	go func() {
		defer senders.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		start := time.Now()
		next := 0
		for {
			select {
			case <-stopSend:
				return
			case now := <-tick.C:
				due := int64(now.Sub(start).Seconds() * ro.rate)
				for sent.Load() < due {
					select {
					case inflight <- struct{}{}:
					case <-stopSend:
						return
					}
					m := members[next%ro.n]
					next++
					msg := rollMsg{uint32(m.i), counts[m.i]}
					counts[m.i]++
					ph := int(phase.Load())
					sent.Add(1)
					senders.Add(1)
					go func() {
						defer senders.Done()
						defer func() { <-inflight }()
						sctx, scancel := context.WithTimeout(ctx, ro.timeout)
						defer scancel()
						id := fmt.Sprintf("%d-%d", msg.sender, msg.k)
						ack, err := m.c.SendID(sctx, roomName(m.room), id, formatRollText(msg, ph, time.Now(), pad))
						if err != nil {
							sendErrs.Add(1)
							errs.add("send-" + errKind(err))
							return
						}
						acked.Add(1)
						if ack.Duplicate {
							dupAcks.Add(1)
						}
						ackMu.Lock()
						ackedBy[m.room] = append(ackedBy[m.room], msg)
						ackMu.Unlock()
					}()
				}
			}
		}
	}()
	progress := startProgress(ro.progress, "rolling", func() string {
		return fmt.Sprintf("%s sent %d acked %d delivered %d errors %d", phaseNames[phase.Load()], sent.Load(), acked.Load(), delivered.Load(), errs.total())
	})
	defer progress()

	sleep := func(d time.Duration) { time.Sleep(d) }
	sleep(ro.steady)
	phase.Store(phaseRoll)
	rollStart := time.Now()
	reconnects0 := totalConnects(members)
	var probe *client.Client
	pres.counting.Store(true)
	for i := range procs {
		procsMu.Lock()
		p := procs[i]
		procsMu.Unlock()
		var ghost *client.Client
		if ro.kill && ro.boxes > 1 {
			ghost = dialGhost(ctx, ro, urls[i], roomName(i%ro.rooms), run, i, &errs)
			sleep(2 * interval) // its join reaches the other boxes
		}
		logf("%s %s", mode, p.name)
		t := time.Now()
		pres.roll.Store(int32(i))
		if ro.kill {
			p.cmd.Process.Kill()
		} else {
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-p.done:
		case <-time.After(ro.lameDuck + 20*time.Second):
			p.cmd.Process.Kill()
			<-p.done
			errs.add("box-exit-timeout")
		}
		r.add(fmt.Sprintf("%s exit", p.name), "s", "", time.Since(t).Seconds())
		if ghost != nil {
			ghost.Close() // gone with its box: no one heard it leave
		}
		if ro.kill && ro.boxes > 1 {
			probe = watchLease(ctx, r, ro, urls[(i+1)%ro.boxes], roomName(i%ro.rooms), run, i, members, &errs, probe, t, lease+2*interval)
		}
		np, err := startServer(targets[i], startTimeout)
		if err != nil {
			phase.Store(phaseDrain)
			close(stopSend)
			senders.Wait()
			closeClients()
			return nil, fmt.Errorf("restarting %s: %w", p.name, err)
		}
		procsMu.Lock()
		procs[i] = np
		procsMu.Unlock()
		sleep(ro.settle)
	}
	rollTime := time.Since(rollStart)
	pres.roll.Store(int32(ro.boxes))
	phase.Store(phaseTail)
	sleep(ro.tail)
	phase.Store(phaseDrain)
	close(stopSend)
	senders.Wait()
	if probe != nil {
		probe.Close()
	}

	// Drain: until every acked message reached every member of its room,
	// or -drain.
	roomSize := make([]int64, ro.rooms)
	for _, m := range members {
		roomSize[m.room]++
	}
	var want int64
	for k, a := range ackedBy {
		want += int64(len(a)) * roomSize[k]
	}
	waitFor(ro.drain, func() bool { return delivered.Load() >= want })
	reconnects := totalConnects(members) - reconnects0
	pres.counting.Store(false) // closing the clients makes real leaves
	presEnd := time.Now()
	closeClients()

	// The verdict, member by member.
	var lost, lostMembers, lostSilent, dups, orderDiffers, unrecovered, warnings int64
	refPos := make([]map[rollMsg]int, ro.rooms)
	for k := range ro.rooms {
		var best *rollMember
		for _, m := range members {
			if m.room == k && (best == nil || len(m.got) > len(best.got)) {
				best = m
			}
		}
		refPos[k] = make(map[rollMsg]int, len(best.got))
		for i, msg := range best.got {
			if _, seen := refPos[k][msg]; !seen {
				refPos[k][msg] = i
			}
		}
	}
	for _, m := range members {
		seen := make(map[rollMsg]bool, len(m.got))
		last, differs := -1, false
		for _, msg := range m.got {
			if seen[msg] {
				dups++
				continue
			}
			seen[msg] = true
			if p, ok := refPos[m.room][msg]; ok {
				if p < last {
					differs = true
				}
				last = max(last, p)
			}
		}
		if differs {
			orderDiffers++
		}
		missing := int64(0)
		for _, msg := range ackedBy[m.room] {
			if !seen[msg] {
				missing++
			}
		}
		lost += missing
		if missing > 0 {
			lostMembers++
		}
		if m.unrecovered == 0 {
			lostSilent += missing // never told its copy may have a hole
		}
		unrecovered += m.unrecovered
		warnings += m.warnings
	}
	var ackedTotal int64
	for _, a := range ackedBy {
		ackedTotal += int64(len(a))
	}
	r.add("clients", "", "", float64(ro.n))
	r.add("roll time", "s", "", rollTime.Seconds())
	r.add("messages sent", "", "", float64(sent.Load()))
	r.add("messages acked", "", "higher", float64(ackedTotal))
	r.add("send errors", "", "lower", float64(sendErrs.Load()))
	r.add("acks duplicate:true (retried sends)", "", "", float64(dupAcks.Load()))
	r.add("deliveries", "", "", float64(delivered.Load()))
	r.add("deliveries of acked messages expected", "", "", float64(want))
	r.add("lost (acked, never delivered to a member)", "", "lower", float64(lost))
	r.add("members with a loss", "", "lower", float64(lostMembers))
	r.add("lost by members never answered recovered:false", "", "lower", float64(lostSilent))
	r.add("duplicated (a member got one message twice)", "", "lower", float64(dups))
	r.add("members whose order differs", "", "lower", float64(orderDiffers))
	r.add("rejoins recovered:false", "", "lower", float64(unrecovered))
	r.add("seq duplicates dropped by the client", "", "", float64(warnings))
	r.add("reconnects", "", "", float64(reconnects))
	away := make([][]rollAway, ro.n)
	for i, m := range members {
		away[i] = m.away
	}
	pres.mu.Lock()
	flaps, flapsPerRoll := leftFlaps(pres.lefts, away, grace, 2*interval+time.Second, presEnd, ro.boxes)
	r.add("presence: frames received (roll to drain)", "", "", float64(pres.frames.Load()))
	r.add("presence: left entries received, any key", "", "", float64(pres.anyLeft.Load()))
	r.add("presence: left entries naming a member", "", "", float64(pres.received))
	r.add("presence: left for a key back within the grace", "", "lower", float64(flaps))
	for i := range ro.boxes {
		r.add(fmt.Sprintf("presence: left for a key back within the grace, box%d roll", i), "", "lower", float64(flapsPerRoll[i+1]))
	}
	r.add("presence: left for a key back within the grace, before or after the roll", "", "lower",
		float64(flapsPerRoll[0]+flapsPerRoll[ro.boxes+1]))
	if pres.overflow > 0 {
		r.add("presence: left entries past the bench's bound (not classified)", "", "lower", float64(pres.overflow))
	}
	pres.mu.Unlock()
	r.add("presence: grace", "s", "", grace.Seconds())
	r.add("presence: interval", "s", "", interval.Seconds())
	r.add("presence: lease", "s", "", lease.Seconds())
	r.addLatency("publish→delivery steady", hist.merged(phaseSteady))
	r.addLatency("publish→delivery roll", hist.merged(phaseRoll))
	r.addLatency("publish→delivery tail", hist.merged(phaseTail))
	if s, ok := r.get("publish→delivery steady p99"); ok {
		if rl, ok := r.get("publish→delivery roll p99"); ok {
			r.add("p99 roll / steady", "×", "lower", ratio(rl, s))
		}
	}
	r.finish(&errs)
	return r, nil
}

func totalConnects(members []*rollMember) int64 {
	var n int64
	for _, m := range members {
		n += int64(m.c.Stats().Connects)
	}
	return n
}

// dialGhost connects, before a kill, one more client to the box about to
// die, in the room the probe watches, and closes it with the box: a key
// that never comes back, which only the dead box's lease keeps counted.
// Its key is no member's, so its leave is no flap.
func dialGhost(ctx context.Context, ro *rollOptions, u, room string, run uint32, box int, errs *errCount) *client.Client {
	gctx, cancel := context.WithTimeout(ctx, ro.timeout)
	defer cancel()
	g, err := client.Dial(gctx, u, client.Options{Key: fmt.Sprintf("rl%08x-ghost%d", run, box), Rooms: []string{room}})
	if err != nil {
		errs.add("ghost-" + errKind(err))
		return nil
	}
	go func() {
		for range g.Events() {
		}
	}()
	return g
}

// watchLease is -kill's probe: from a surviving box, the count of the
// killed box's first room, every 100 ms for -lease-wait. The killed
// members reconnect elsewhere, so the room's true size is the number of
// its members; what the dead box's lease still counts must not be counted
// twice, and once the lease has run out nothing of that box may remain:
// the ghost (dialGhost) must leave, no later than -presence-lease and 2
// presence intervals after the kill. It adds the count first seen and its range, when it first came
// back to the room's size and when it last differed from it (since the
// kill; -1: never back, or still off at the end), and whether it settled
// within bound (-presence-lease + 2 presence intervals).
func watchLease(ctx context.Context, r *Result, ro *rollOptions, u, room string, run uint32, box int,
	members []*rollMember, errs *errCount, probe *client.Client, killed time.Time, bound time.Duration) *client.Client {
	if probe != nil {
		probe.Close()
	}
	size := 0
	for _, m := range members {
		if roomNameOf(run, m.room) == room {
			size++
		}
	}
	pctx, cancel := context.WithTimeout(ctx, ro.timeout)
	defer cancel()
	p, err := client.Dial(pctx, u, client.Options{Key: fmt.Sprintf("rl%08x-probe%d", run, box), Rooms: []string{room}})
	if err != nil {
		errs.add("probe-" + errKind(err))
		return nil
	}
	go func() {
		for range p.Events() {
		}
	}()
	start := time.Now()
	back, settled, first := -1.0, -1.0, -1.0
	var counts []int
	for time.Since(start) < ro.lease {
		mctx, mcancel := context.WithTimeout(ctx, time.Second)
		m, err := p.Members(mctx, room)
		mcancel()
		if err == nil {
			n := m.Count - 1 // not the probe
			counts = append(counts, n)
			since := time.Since(killed).Seconds()
			if first < 0 {
				first = since
			}
			switch {
			case n != size:
				settled = -1
			case settled < 0:
				settled = since
			}
			if n == size && back < 0 {
				back = since
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	name := fmt.Sprintf("box%d kill: room", box)
	r.add(name+" size", "", "", float64(size))
	if len(counts) > 0 {
		r.add(name+" count first seen", "", "", float64(counts[0]))
		r.add(name+" count first seen after", "s", "", first) // a probe that connects late sees less of the lease
		r.add(name+" count min", "", "", float64(slices.Min(counts)))
		r.add(name+" count max", "", "", float64(slices.Max(counts)))
		r.add(name+" count last", "", "", float64(counts[len(counts)-1]))
	}
	r.add(name+" count back to size after", "s", "lower", back)
	r.add(name+" count at size for good after", "s", "lower", settled)
	within := 0.0
	if settled >= 0 && settled <= bound.Seconds() {
		within = 1
	}
	r.add(name+" at size within lease + 2 intervals", "", "higher", within)
	return p
}

func roomNameOf(run uint32, k int) string { return fmt.Sprintf("roll-%08x-%d", run, k) }
