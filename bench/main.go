// Command bench is wsd's load client. Every scenario is bounded in
// connections and time, ends by itself and talks to loopback only.
//
//	go run ./bench idle    -addr 127.0.0.1:8888 -n 15000 -src 127.0.0.1,127.0.0.2 -server-pid PID
//	go run ./bench fanout  -addr 127.0.0.1:8888 -n 5000 -gzip-frac 0.5 -m 50 -size 256
//	go run ./bench storm   -addr 127.0.0.1:8888 -n 1000 -senders 10 -duration 10s -server-pid PID
//	go run ./bench connect -addr 127.0.0.1:8888 -duration 10s
//	go run ./bench compare [-quick]     # wsd against the baseline, one table
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
)

// options are the flags every scenario shares.
type options struct {
	addr      string
	n         int
	src       []string
	dialers   int
	gzipFrac  float64
	messages  int
	size      int
	senders   int
	inflight  int
	duration  time.Duration
	hold      time.Duration
	serverPID int
	metrics   string // admin address of a wsd, to read its counters
	json      string
	timeout   time.Duration
	progress  io.Writer
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parse(name string, args []string) (*options, error) {
	o := &options{}
	var src string
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8888", "server `host:port` (loopback only)")
	fs.IntVar(&o.n, "n", 1000, "connections")
	fs.StringVar(&src, "src", "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4", "loopback source addresses, comma-separated")
	fs.IntVar(&o.dialers, "dialers", 64, "concurrent dialers")
	fs.Float64Var(&o.gzipFrac, "gzip-frac", 0.5, "fraction of connections with support_gzip=1")
	fs.IntVar(&o.messages, "m", 50, "messages to broadcast (fanout)")
	fs.IntVar(&o.size, "size", 256, "message size in bytes")
	fs.IntVar(&o.senders, "senders", 10, "senders (storm)")
	fs.IntVar(&o.inflight, "inflight", 8, "messages a sender may have unanswered (storm)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send (storm, connect)")
	fs.DurationVar(&o.hold, "hold", 5*time.Second, "how long to hold idle connections")
	fs.IntVar(&o.serverPID, "server-pid", 0, "server process, to read its RSS and CPU from /proc")
	fs.StringVar(&o.metrics, "metrics", "", "wsd admin `host:port`, to read its counters")
	fs.StringVar(&o.json, "json", "", "also write the results as JSON to this file (- for stdout)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "bound on waiting for deliveries")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.src = splitList(src)
	o.progress = os.Stderr
	if err := o.check(); err != nil {
		return nil, err
	}
	return o, nil
}

// check refuses settings that would point load anywhere but loopback or
// run unbounded.
func (o *options) check() error {
	if err := loopbackOnly(o.addr, o.src); err != nil {
		return err
	}
	switch {
	case o.n < 1 || o.n > 19000:
		return fmt.Errorf("-n %d: 1 to 19000 (one process holds at most ~19,000 sockets here)", o.n)
	case o.size < 32:
		return fmt.Errorf("-size %d: at least 32 bytes", o.size)
	case o.duration <= 0 || o.duration > 10*time.Minute:
		return fmt.Errorf("-duration %v: up to 10m", o.duration)
	case o.dialers < 1 || o.senders < 1 || o.inflight < 1 || o.messages < 1:
		return fmt.Errorf("-dialers, -senders, -inflight and -m must be positive")
	}
	return nil
}

func main() {
	raiseFileLimit()
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name, args := os.Args[1], os.Args[2:]
	var err error
	switch name {
	case "compare":
		err = runCompare(args)
	case "idle", "fanout", "storm", "connect":
		var o *options
		if o, err = parse(name, args); err == nil {
			var r *Result
			if r, err = runScenario(name, o); err == nil {
				r.print(os.Stdout)
				err = writeJSON(o.json, r)
			}
		}
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func runScenario(name string, o *options) (*Result, error) {
	switch name {
	case "idle":
		return runIdle(o)
	case "fanout":
		return runFanout(o)
	case "storm":
		return runStorm(o)
	case "connect":
		return runConnect(o)
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: bench idle|fanout|storm|connect [flags]  |  bench compare [-quick] [-out FILE]")
}

func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
