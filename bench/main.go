package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"syscall"
)

func main() {
	raiseFileLimit()
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(name string, args []string) error {
	switch name {
	case "compare":
		return runCompare(args)
	case "cluster":
		return runClusterCmd(args)
	case "natsd":
		return runNatsd(args)
	case "rolling":
		return runRollingCmd(args)
	case "cluster-scale":
		return runClusterScale(args)
	case "scale-recv":
		return runScaleRecv(args)
	case "idle", "fanout", "storm", "connect", "hostile", "recover", "presence", "rooms":
	case "-h", "-help", "--help", "help":
		usage()
		return nil
	default:
		usage()
		os.Exit(2)
	}
	o, err := parse(name, args)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		stop, err := startProfile(o.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	r, err := runScenario(name, o)
	if err != nil {
		return err
	}
	if o.json == "-" {
		r.print(os.Stderr) // stdout is for the JSON alone
	} else {
		r.print(os.Stdout)
	}
	return writeJSON(o.json, r)
}

// runScenario runs one scenario against o.addr and, when o.metrics is set,
// adds the server-side figures wsd's /metrics gives.
func runScenario(name string, o *options) (*Result, error) {
	var before map[string]float64
	if o.metrics != "" {
		before, _ = scrape(o.metrics)
	}
	var r *Result
	var err error
	// compare runs variants of a scenario under their own names, such as
	// fanout-deflate: the part before the dash is the scenario.
	kind, _, _ := strings.Cut(name, "-")
	switch kind {
	case "idle":
		r, err = runIdle(o)
	case "fanout":
		r, err = runFanout(o)
	case "storm":
		r, err = runStorm(o)
	case "connect":
		r, err = runConnect(o)
	case "hostile":
		r, err = runHostile(o)
	case "recover":
		r, err = runRecover(o)
	case "presence":
		r, err = runPresence(o)
	case "rooms":
		r, err = runRooms(o)
	default:
		return nil, fmt.Errorf("unknown scenario %q", name)
	}
	if err == nil {
		r.Scenario = name
	}
	if err == nil && before != nil {
		if after, e := scrape(o.metrics); e == nil {
			addServerCounters(r, before, after)
		}
	}
	return r, err
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: bench idle|fanout|storm|connect|hostile [flags]   (bench SCENARIO -h for flags)
       bench fanout -proto v1 | recover | presence | rooms [flags]   # chat protocol v1
       bench cluster [-boxes 3] [fanout flags]
       bench cluster-scale [-n 54000] [-boxes 3]   # one global broadcast to N connections over K boxes
       bench rolling [-boxes 3] [-n 3000] [-rooms 30] [-kill] [-box-flags "..."]   # a rolling restart under v1 chat
       bench compare [-quick] [-out FILE] [-only wsd,baseline] [-src ADDRS]`)
}

// startProfile writes this process's CPU profile to path until stop.
func startProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// raiseFileLimit lifts the soft open-file limit to the hard one: idle
// holds up to ~19,000 sockets.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
