// Settings shared by every scenario: flag parsing, defaults, and the
// checks that keep load on loopback and bounded in connections and time.

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// maxConns is the most sockets one client process opens: the box allows
// 20,000 open files per process.
const maxConns = 19000

// options are the flags every scenario shares.
type options struct {
	addr        string
	addrs       []string // cluster: every box's client address; connection i dials addrs[i%len]
	n           int
	src         []string
	dialers     int
	dialTimeout time.Duration
	readBuf     int // bytes of read buffer per receiving connection
	gzipFrac    float64
	rounds      int // recover: times its phases run
	messages    int
	size        int
	senders     int
	inflight    int
	duration    time.Duration
	hold        time.Duration
	timeout     time.Duration
	serverPID   int
	metrics     string // admin address of a wsd, to read its counters
	json        string
	cpuProfile  string
	memoGzip    bool
	deflate     bool      // connections without gzip offer permessage-deflate (and send compressed)
	rst         bool      // connect: drop with RST rather than a close frame and FIN
	tls         bool      // dial wss:// (any certificate accepted: loopback only)
	progress    io.Writer // nil: no progress lines
	hostile     hostileOptions
	// chat protocol v1
	proto     string        // fanout: "seed", or "v1" (a seed pass then a v1 pass, side by side)
	v1        bool          // the connections speak v1 (set by the scenarios, not a flag)
	room      string        // the connections' first room ("" for the default room; not a flag)
	joins     int           // presence: joins per second (and as many leaves)
	churnHold time.Duration // presence: how long each joining connection stays
	interval  time.Duration // presence: the server's -presence-interval, for the verdict
	levels    []int         // rooms: rooms per connection, one measured step each
	idleRooms int           // idle -proto v1: rooms each connection is in
	warmup    int           // idle: connections opened and closed before the first RSS reading
	roomPool  int           // rooms: distinct rooms the connections' subscriptions spread over
}

// defaultOptions are the flag defaults; compare starts from them too.
func defaultOptions() *options {
	return &options{
		addr:        "127.0.0.1:8888",
		n:           1000,
		src:         []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"},
		dialers:     64,
		dialTimeout: 10 * time.Second,
		readBuf:     16 << 10,
		gzipFrac:    0.5,
		rounds:      1,
		messages:    50,
		size:        256,
		senders:     10,
		duration:    10 * time.Second,
		hold:        10 * time.Second,
		timeout:     30 * time.Second,
		memoGzip:    true,
		rst:         true,
		progress:    os.Stderr,
		hostile:     defaultHostile(),
		proto:       "seed",
		churnHold:   time.Second,
		interval:    time.Second,
		levels:      []int{1, 10, 100},
		roomPool:    1000,
		idleRooms:   1,
	}
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// bareJSON rewrites a "-json" with no value into "-json=-" (stdout).
func bareJSON(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if (a == "-json" || a == "--json") && (i+1 == len(args) || strings.HasPrefix(args[i+1], "-")) {
			a = "-json=-"
		}
		out = append(out, a)
	}
	return out
}

// flagOutput receives usage and flag errors (tests silence it).
var flagOutput io.Writer = os.Stderr

// parse reads a scenario's flags.
func parse(name string, args []string) (*options, error) {
	o := defaultOptions()
	src := strings.Join(o.src, ",")
	fs, err := o.flagSet(name, &src)
	if err != nil {
		return nil, err
	}
	quiet := fs.Bool("q", false, "no progress lines")
	if err := fs.Parse(bareJSON(args)); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	o.src = splitList(src)
	if *quiet {
		o.progress = nil
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	return o, nil
}

// flagSet returns the flags of one scenario, bound to o (and src, the
// comma-separated -src): the ones every scenario reads, then its own, so
// that "bench fanout -h" lists what fanout reads and a flag it would
// ignore is refused.
func (o *options) flagSet(name string, src *string) (*flag.FlagSet, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(flagOutput)
	fs.StringVar(&o.addr, "addr", o.addr, "server `host:port` (loopback only)")
	fs.StringVar(src, "src", *src, "loopback source addresses to dial from, comma-separated (each gives ~28k ports)")
	fs.IntVar(&o.dialers, "dialers", o.dialers, "concurrent dialers")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", o.dialTimeout, "bound on one connect + handshake")
	fs.Float64Var(&o.gzipFrac, "gzip-frac", o.gzipFrac, "fraction of connections with support_gzip=1")
	fs.IntVar(&o.serverPID, "server-pid", 0, "server process, to read its RSS and CPU from /proc")
	fs.StringVar(&o.metrics, "metrics", "", "wsd admin `host:port`, to read its counters before and after")
	fs.StringVar(&o.json, "json", "", "also write the results as JSON to `FILE` (-json alone: stdout)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the client's own CPU profile to `FILE` (to see where the client spends)")
	fs.BoolVar(&o.tls, "tls", o.tls, "dial wss:// (TLS; the server's certificate is not verified: loopback only)")
	held := func() { // scenarios that dial -n connections and hold them
		fs.IntVar(&o.n, "n", o.n, "connections")
		fs.DurationVar(&o.timeout, "timeout", o.timeout, "bound on each waiting phase (dialing all, deliveries, checks)")
		fs.BoolVar(&o.deflate, "deflate", o.deflate, "connections without support_gzip offer permessage-deflate as browsers do (client_max_window_bits); fanout and storm also send compressed messages and check them after inflating")
	}
	swarm := func() { // fanout and storm: every connection receives and checks
		held()
		fs.IntVar(&o.size, "size", o.size, "message size in bytes")
		fs.IntVar(&o.readBuf, "read-buf", o.readBuf, "read buffer per receiving connection: bigger means fewer read syscalls per frame")
		fs.BoolVar(&o.memoGzip, "memo-gzip", o.memoGzip, "gunzip identical gzip frames once per client process (compared byte for byte)")
	}
	switch name {
	case "idle":
		o.warmup = 50
		held()
		fs.DurationVar(&o.hold, "hold", o.hold, "how long to hold the connections")
		fs.StringVar(&o.proto, "proto", o.proto, "seed, or v1: every connection speaks chat protocol v1 and is in -rooms rooms")
		fs.IntVar(&o.idleRooms, "rooms", o.idleRooms, "v1: rooms each connection is in, the same for all (the first by its query, the rest by join commands)")
		fs.IntVar(&o.warmup, "warmup", o.warmup, "connections opened, joined, checked and closed before the first RSS reading, so the server's code and pools are in (0: none)")
	case "fanout":
		swarm()
		fs.IntVar(&o.messages, "m", o.messages, "messages to broadcast")
		fs.IntVar(&o.inflight, "inflight", 0, "broadcasts not yet delivered to every connection (default 1)")
		fs.StringVar(&o.proto, "proto", o.proto, "seed, or v1: a pass with seed members, then one with as many v1 members, both reported")
	case "recover":
		o.n, o.messages = 2000, 100
		held()
		fs.IntVar(&o.messages, "m", o.messages, "messages sent while the clients are away (within the server's -history-size)")
		fs.IntVar(&o.rounds, "rounds", o.rounds, "times the four phases run, their figures summed (steadier CPU figures on a busy box)")
		fs.IntVar(&o.size, "size", o.size, "message size in bytes")
	case "presence":
		o.n, o.duration, o.joins = 10000, 10*time.Second, 1000
		held()
		fs.IntVar(&o.joins, "joins", o.joins, "joins per second into the room, each by a new connection (and as many leaves)")
		fs.DurationVar(&o.churnHold, "churn-hold", o.churnHold, "how long each joining connection stays before it leaves")
		fs.DurationVar(&o.duration, "duration", o.duration, "how long the joins and leaves go on")
		fs.DurationVar(&o.interval, "interval", o.interval, "the server's -presence-interval: the verdict is at most one presence frame per member per interval")
		fs.IntVar(&o.messages, "m", 20, "broadcasts to the room to measure the cost of one delivery, for the frame-per-join comparison")
	case "rooms":
		held()
		fs.Func("rooms", "rooms per connection, one measured step each, increasing (default 1,10,100)", func(v string) error {
			o.levels = nil
			for _, f := range splitList(v) {
				k, err := strconv.Atoi(f)
				if err != nil {
					return err
				}
				o.levels = append(o.levels, k)
			}
			return nil
		})
		fs.IntVar(&o.roomPool, "room-pool", o.roomPool, "distinct rooms the subscriptions spread over")
		fs.IntVar(&o.messages, "m", 20, "broadcasts per step, spread over the rooms, to measure the fan-out cost")
		fs.IntVar(&o.size, "size", o.size, "message size in bytes")
	case "storm":
		swarm()
		fs.IntVar(&o.senders, "senders", o.senders, "connections that send")
		fs.IntVar(&o.inflight, "inflight", 0, "a sender's messages not yet back to it (default 8)")
		fs.DurationVar(&o.duration, "duration", o.duration, "how long to send")
	case "connect":
		fs.DurationVar(&o.duration, "duration", o.duration, "how long to dial")
		fs.BoolVar(&o.rst, "rst", o.rst, "drop each connection with a TCP RST (no TIME_WAIT); false: send a close frame, then FIN")
	case "hostile":
		h := &o.hostile
		fs.DurationVar(&o.duration, "duration", durDefault, "how long each attack runs")
		fs.DurationVar(&o.timeout, "timeout", o.timeout, "bound on dialing each attack's connections")
		fs.Func("attacks", "attacks to run, comma-separated, in this order (default "+strings.Join(attackNames, ",")+")", func(v string) error {
			h.attacks = splitList(v)
			return nil
		})
		fs.IntVar(&h.partialConns, "partial-conns", h.partialConns, "partial: connections that each send the first fragment of a message")
		fs.IntVar(&h.partialSize, "partial-size", h.partialSize, "partial: bytes of that first fragment")
		fs.IntVar(&h.inflateMsgs, "inflate-msgs", h.inflateMsgs, "inflate: gzip messages the client that never reads sends")
		fs.IntVar(&h.inflateSize, "inflate-size", h.inflateSize, "inflate and bomb: bytes of text each gzip message inflates to (it is ~1/1000 of that)")
		fs.IntVar(&h.floodMembers, "flood-members", h.floodMembers, "flood: members that never read")
		fs.IntVar(&h.floodMsgs, "flood-msgs", h.floodMsgs, "flood: empty messages sent")
		fs.IntVar(&h.pingers, "pingers", h.pingers, "ping: clients that never read")
		fs.IntVar(&h.pings, "pings", h.pings, "ping: pings each of them sends")
		fs.IntVar(&h.bombMembers, "bomb-members", h.bombMembers, "bomb: plain members of the room, reading everything")
		fs.IntVar(&h.bombs, "bombs", h.bombs, "bomb: gzip bombs sent")
		fs.IntVar(&h.contConns, "cont-attackers", h.contConns, "cont: clients that send a first fragment, then empty continuations")
		fs.IntVar(&h.contFrames, "cont-frames", h.contFrames, "cont: empty continuation frames each of them sends")
		fs.IntVar(&h.pongers, "pongers", h.pongers, "pong: clients that send unsolicited empty pongs")
		fs.IntVar(&h.pongs, "pongs", h.pongs, "pong: pongs each of them sends")
		fs.IntVar(&h.fanSenders, "fanflood-senders", h.fanSenders, "fanflood: clients sending empty messages into the room")
		fs.IntVar(&h.fanRate, "fanflood-rate", h.fanRate, "fanflood: empty messages a second each sender sends")
		fs.IntVar(&h.fanMembers, "fanflood-members", h.fanMembers, "fanflood: members of the room that never read")
		fs.IntVar(&h.deflateMsgs, "deflate-msgs", h.deflateMsgs, "deflate: permessage-deflate messages (inflating to -inflate-size) sent")
		fs.IntVar(&h.presocks, "presocks", h.presocks, "presock: TCP sockets from the first -src address that never send a request head")
		fs.IntVar(&h.partialIP, "partialip-conns", h.partialIP, "partialip: connections from the first -src address that each send the first fragment (-partial-size) of a message")
		fs.DurationVar(&h.honestP99, "honest-p99", h.honestP99, "honest clients are harmed when their delivery latency p99 passes this")
		fs.Func("max-rss", fmt.Sprintf("`MiB`: stop an attack as soon as the server's RSS passes this (with -server-pid; default %d)", h.maxRSS>>20), func(v string) error {
			mib, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return err
			}
			h.maxRSS = mib << 20
			return nil
		})
	default:
		return nil, fmt.Errorf("unknown scenario %q", name)
	}
	return fs, nil
}

// check refuses settings that would point load anywhere but loopback or
// run unbounded.
func (o *options) check() error {
	if err := loopbackOnly(o.addr, o.src); err != nil {
		return err
	}
	switch {
	case o.n < 1 || o.n > maxConns:
		return fmt.Errorf("-n %d: 1 to %d (one process holds at most ~19,000 sockets here)", o.n, maxConns)
	case o.size < minPayload || o.size > 1<<20:
		return fmt.Errorf("-size %d: %d bytes to 1 MiB", o.size, minPayload)
	case o.gzipFrac < 0 || o.gzipFrac > 1:
		return fmt.Errorf("-gzip-frac %v: 0 to 1", o.gzipFrac)
	case o.duration <= 0 || o.duration > 10*time.Minute:
		return fmt.Errorf("-duration %v: up to 10m", o.duration)
	case o.hold < 0 || o.hold > 30*time.Minute:
		return fmt.Errorf("-hold %v: up to 30m", o.hold)
	case o.rounds < 1 || o.rounds > 100:
		return fmt.Errorf("-rounds %d: 1 to 100", o.rounds)
	case o.timeout <= 0 || o.timeout > 10*time.Minute:
		return fmt.Errorf("-timeout %v: up to 10m", o.timeout)
	case o.dialTimeout <= 0 || o.dialTimeout > time.Minute:
		return fmt.Errorf("-dial-timeout %v: up to 1m", o.dialTimeout)
	case o.messages < 1 || o.messages > 1_000_000:
		return fmt.Errorf("-m %d: 1 to 1,000,000", o.messages)
	case o.dialers < 1 || o.dialers > 1024:
		return fmt.Errorf("-dialers %d: 1 to 1024", o.dialers)
	case o.senders < 1 || o.senders > maxConns:
		return fmt.Errorf("-senders %d: 1 to %d", o.senders, maxConns)
	case o.inflight < 0 || o.inflight > 1024:
		return fmt.Errorf("-inflight %d: 0 (default) to 1024", o.inflight)
	case o.readBuf < 256 || o.readBuf > 1<<20:
		return fmt.Errorf("-read-buf %d: 256 to 1 MiB", o.readBuf)
	case len(o.src) == 0:
		return errors.New("-src: at least one source address")
	case o.proto != "seed" && o.proto != "v1":
		return fmt.Errorf("-proto %q: seed or v1", o.proto)
	case o.joins < 0 || o.joins > 10000:
		return fmt.Errorf("-joins %d: 1 to 10,000 per second", o.joins)
	case o.churnHold <= 0 || o.churnHold > time.Minute:
		return fmt.Errorf("-churn-hold %v: up to 1m", o.churnHold)
	case o.n+churners(o) > maxConns:
		return fmt.Errorf("-n %d plus %d joining connections at a time: over %d sockets", o.n, churners(o), maxConns)
	case o.interval <= 0 || o.interval > time.Minute:
		return fmt.Errorf("-interval %v: up to 1m", o.interval)
	case o.roomPool < 1 || o.roomPool > 100000:
		return fmt.Errorf("-room-pool %d: 1 to 100,000", o.roomPool)
	case o.idleRooms < 1 || o.idleRooms > 1000:
		return fmt.Errorf("-rooms %d: 1 to 1,000", o.idleRooms)
	case o.idleRooms > 1 && o.proto != "v1":
		return fmt.Errorf("-rooms %d: only a v1 connection (-proto v1) can be in more than one room", o.idleRooms)
	case o.warmup < 0 || o.warmup > 1000 || o.warmup+o.n > maxConns:
		return fmt.Errorf("-warmup %d: 0 to 1,000, with -n within %d sockets", o.warmup, maxConns)
	}
	for i, k := range o.levels {
		if k < 1 || k > 1000 || (i > 0 && k <= o.levels[i-1]) {
			return fmt.Errorf("-rooms %v: increasing, 1 to 1,000", o.levels)
		}
	}
	return o.hostile.check()
}

// churners is how many joining connections presence holds at a time at
// most: a second's worth beyond -joins × -churn-hold, for the slack of
// dialing; 0 for the other scenarios (joins 0), which hold none.
func churners(o *options) int {
	if o.joins == 0 {
		return 0
	}
	return int(float64(o.joins)*o.churnHold.Seconds()) + o.joins
}

// loopbackOnly refuses a server or source address outside 127.0.0.0/8.
func loopbackOnly(addr string, src []string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %v", addr, err)
	}
	if port == "" || port == "0" {
		return fmt.Errorf("-addr %q: needs a port", addr)
	}
	if !isLoopback4(host) {
		return fmt.Errorf("-addr %q: only 127.0.0.0/8 is allowed", addr)
	}
	for _, s := range src {
		if !isLoopback4(s) {
			return fmt.Errorf("-src %q: only 127.0.0.0/8 is allowed", s)
		}
	}
	return nil
}

func isLoopback4(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.To4() != nil && ip.To4()[0] == 127
}

// inflightOr is the -inflight setting or the scenario's default.
func (o *options) inflightOr(def int) int {
	if o.inflight > 0 {
		return o.inflight
	}
	return def
}
