package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// process is a wsd or baseline process under test.
type process struct {
	name  string
	cmd   *exec.Cmd
	addr  string
	admin string
	done  chan struct{}
}

// target describes how to start one of the compared servers.
type target struct {
	name string
	bin  string
	args []string
}

func buildTargets(dir string) ([]target, error) {
	build := func(out, pkg string) error {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Stderr = os.Stderr
		return cmd.Run()
	}
	wsd, base := filepath.Join(dir, "wsd"), filepath.Join(dir, "baseline")
	if err := build(wsd, "./cmd/wsd"); err != nil {
		return nil, fmt.Errorf("build wsd: %w", err)
	}
	if err := build(base, "./bench/baseline"); err != nil {
		return nil, fmt.Errorf("build baseline: %w", err)
	}
	return []target{
		{"wsd", wsd, []string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-log-level", "info"}},
		{"baseline", base, []string{"-addr", "127.0.0.1:0"}},
	}, nil
}

// start runs a target and waits for its "listening" line (and, for wsd,
// its admin address).
func start(t target) (*process, error) {
	s := &process{name: t.name, cmd: exec.Command(t.bin, t.args...), done: make(chan struct{})}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	wantAdmin := t.name == "wsd"
	ready := make(chan struct{})
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			if v := logField(line, "admin_addr="); v != "" {
				s.admin = v
			} else if v := logField(line, "addr="); v != "" && strings.Contains(line, "listening") {
				s.addr = v
			}
			if !signalled && s.addr != "" && (!wantAdmin || s.admin != "") {
				signalled = true
				close(ready)
			}
		}
		io.Copy(io.Discard, stderr)
		s.cmd.Wait()
	}()
	select {
	case <-ready:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("%s exited before listening", t.name)
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		return nil, fmt.Errorf("%s not listening after 10s", t.name)
	}
}

func logField(line, key string) string {
	i := strings.Index(line, " "+key)
	if i < 0 {
		return ""
	}
	v := line[i+1+len(key):]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

func (s *process) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// plan is one scenario with its settings.
type plan struct {
	scenario string
	set      func(o *options)
}

func plans(quick bool) []plan {
	k := 1
	if quick {
		k = 10
	}
	return []plan{
		{"idle", func(o *options) { o.n = 15000 / k; o.hold = 5 * time.Second / time.Duration(k) }},
		{"fanout", func(o *options) { o.n = 5000 / k; o.gzipFrac = 0.5; o.messages = 50; o.size = 256 }},
		{"storm", func(o *options) {
			o.n = 1000 / k
			o.senders = 10
			o.duration = 10 * time.Second / time.Duration(k)
			o.gzipFrac = 0.5
			o.size = 256
		}},
		{"connect", func(o *options) { o.duration = 10 * time.Second / time.Duration(k); o.dialers = 32 }},
	}
}

func runCompare(args []string) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "shrink every scenario tenfold")
	out := fs.String("out", "", "also write every result as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "wsd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	targets, err := buildTargets(dir)
	if err != nil {
		return err
	}
	results := map[string]map[string]*Result{}
	for _, t := range targets {
		results[t.name] = map[string]*Result{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	for _, p := range plans(*quick) {
		for _, t := range targets {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A fresh server per scenario, so each starts from the same state.
			s, err := start(t)
			if err != nil {
				return err
			}
			o, _ := parse(p.scenario, []string{"-addr", s.addr})
			p.set(o)
			o.serverPID = s.cmd.Process.Pid
			o.metrics = s.admin
			fmt.Fprintf(os.Stderr, "%s against %s (%d connections)\n", p.scenario, t.name, o.n)
			r, err := runScenario(p.scenario, o)
			s.stop()
			if err != nil {
				fmt.Fprintf(os.Stderr, "  %s/%s: %v\n", p.scenario, t.name, err)
				if r == nil {
					r = &Result{Scenario: p.scenario, Errors: map[string]int{err.Error(): 1}}
				}
			}
			results[t.name][p.scenario] = r
			time.Sleep(time.Second) // let the kernel settle sockets between runs
		}
	}
	printCompare(os.Stdout, results, *quick)
	return writeJSON(*out, results)
}

// figure is one row of the comparison table.
type figure struct {
	scenario, name string
	value          func(*Result) float64
	lowerIsBetter  bool
	wsdOnly        bool
}

var figures = []figure{
	{"idle", "connect rate (conn/s)", func(r *Result) float64 { return r.ConnectRate }, false, false},
	{"idle", "server RSS per idle connection (B)", func(r *Result) float64 { return r.BytesPerConn }, true, false},
	{"idle", "connections still open at the end", func(r *Result) float64 { return float64(r.StillOpen) }, false, false},
	{"fanout", "deliveries/s", func(r *Result) float64 { return r.DeliveryRate }, false, false},
	{"fanout", "latency p50 (ms)", func(r *Result) float64 { return r.LatencyMillis.P50 }, true, false},
	{"fanout", "latency p99 (ms)", func(r *Result) float64 { return r.LatencyMillis.P99 }, true, false},
	{"fanout", "latency max (ms)", func(r *Result) float64 { return r.LatencyMillis.Max }, true, false},
	{"fanout", "deliveries missing", func(r *Result) float64 { return float64(r.Missing) }, true, false},
	{"fanout", "deliveries wrong", func(r *Result) float64 { return float64(r.Wrong) }, true, false},
	{"fanout", "gzip encodings per broadcast", func(r *Result) float64 { return r.GzipPerBroadcast }, true, true},
	{"storm", "deliveries/s", func(r *Result) float64 { return r.DeliveryRate }, false, false},
	{"storm", "latency p99 (ms)", func(r *Result) float64 { return r.LatencyMillis.P99 }, true, false},
	{"storm", "server CPU s per 1M deliveries", func(r *Result) float64 { return r.CPUPerMillion }, true, false},
	{"storm", "client CPU s (whole run)", func(r *Result) float64 { return r.ClientCPU }, true, false},
	{"storm", "deliveries missing", func(r *Result) float64 { return float64(r.Missing) }, true, false},
	{"storm", "deliveries wrong", func(r *Result) float64 { return float64(r.Wrong) }, true, false},
	{"storm", "write syscalls per delivered frame", func(r *Result) float64 { return r.WritesPerFrame }, true, true},
	{"connect", "handshakes/s", func(r *Result) float64 { return r.HandshakeRate }, false, false},
	{"connect", "errors", func(r *Result) float64 {
		n := 0
		for _, v := range r.Errors {
			n += v
		}
		return float64(n)
	}, true, false},
}

func printCompare(w io.Writer, results map[string]map[string]*Result, quick bool) {
	mode := "default sizes"
	if quick {
		mode = "-quick (sizes ÷10)"
	}
	fmt.Fprintf(w, "\nwsd vs baseline (gorilla, goroutine per connection) — %s, %d CPUs, %s\n\n", mode, runtime.NumCPU(), runtime.Version())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\tfigure\twsd\tbaseline\twsd/baseline\t\n")
	for _, f := range figures {
		wr, br := results["wsd"][f.scenario], results["baseline"][f.scenario]
		if wr == nil || br == nil {
			continue
		}
		wv, bv := f.value(wr), f.value(br)
		bs, ratio := format(bv), ""
		if f.wsdOnly {
			bs = "—"
		} else if bv != 0 {
			ratio = fmt.Sprintf("%.2f×", wv/bv)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", f.scenario, f.name, format(wv), bs, ratio)
	}
	tw.Flush()
}

func format(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
