// Scenario cluster: the fanout load on K wsd boxes joined by NATS, side by
// side with the same load on one box. The bench starts everything itself:
// an embedded nats-server in a child process of its own ("bench natsd", so
// its CPU is measured apart from the client's), the boxes as separate wsd
// processes, and spreads the connections over the boxes round-robin (the
// sender on box 0). Figures: deliveries/s, latency, missing, gzip
// encodings per broadcast summed over the boxes, CPU of the boxes and of
// NATS, and the cluster's counters. Only the text crosses NATS, so each box
// with gzip members builds the gzip frame once per broadcast.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// clusterOptions are the cluster scenario's own settings.
type clusterOptions struct {
	boxes  int
	bin    string // a built wsd; empty: build ./cmd/wsd
	single bool   // also run the one-box reference
}

func parseCluster(args []string) (*options, *clusterOptions, error) {
	co := &clusterOptions{}
	var rest []string
	// The cluster flags first, the shared ones after (parse knows those).
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(flagOutput)
	fs.IntVar(&co.boxes, "boxes", 3, "wsd boxes joined by NATS")
	fs.StringVar(&co.bin, "wsd", "", "wsd binary to run (default: build ./cmd/wsd)")
	fs.BoolVar(&co.single, "single", true, "also run the same load on one box, for the side-by-side figures")
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		name, _, hasVal := strings.Cut(a, "=")
		if f := fs.Lookup(name); f != nil {
			if err := fs.Parse(args[i : i+1+boolOrValue(f, hasVal, args, i)]); err != nil {
				return nil, nil, err
			}
			i += boolOrValue(f, hasVal, args, i)
			continue
		}
		rest = append(rest, args[i])
	}
	if !strings.Contains(" "+strings.Join(rest, " "), " -n") {
		rest = append(rest, "-n", "3000")
	}
	rest = append(rest, "-addr", "127.0.0.1:1") // replaced by the boxes' addresses
	o, err := parse("fanout", rest)             // the cluster runs the fanout load
	if err != nil {
		return nil, nil, err
	}
	if co.boxes < 1 || co.boxes > 8 {
		return nil, nil, fmt.Errorf("-boxes %d: 1 to 8", co.boxes)
	}
	return o, co, nil
}

// boolOrValue is how many arguments after args[i] belong to flag f.
func boolOrValue(f *flag.Flag, hasVal bool, args []string, i int) int {
	if hasVal {
		return 0
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return 0
	}
	if i+1 < len(args) {
		return 1
	}
	return 0
}

func runClusterCmd(args []string) error {
	o, co, err := parseCluster(args)
	if err != nil {
		return err
	}
	results, err := runClusterScenario(o, co, os.Stderr)
	if err != nil {
		return err
	}
	printClusterTable(os.Stdout, results)
	return writeJSON(o.json, results)
}

// clusterRun is one measured configuration.
type clusterRun struct {
	Label  string  `json:"label"`
	Boxes  int     `json:"boxes"`
	Result *Result `json:"result"`
}

// runClusterScenario measures one box (if co.single) and the cluster.
func runClusterScenario(o *options, co *clusterOptions, log io.Writer) ([]clusterRun, error) {
	bin := co.bin
	if bin == "" {
		b, cleanup, err := buildWsd("wsd-cluster-")
		if err != nil {
			return nil, err
		}
		defer cleanup()
		bin = b
	}
	var runs []clusterRun
	if co.single {
		fmt.Fprintf(log, "== cluster: one box\n")
		r, err := measureBoxes(o, bin, 1, false, log)
		if err != nil {
			return nil, fmt.Errorf("one box: %w", err)
		}
		runs = append(runs, clusterRun{"one box", 1, r})
	}
	label := fmt.Sprintf("%d boxes", co.boxes)
	fmt.Fprintf(log, "== cluster: %s\n", label)
	r, err := measureBoxes(o, bin, co.boxes, true, log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	runs = append(runs, clusterRun{label, co.boxes, r})
	return runs, nil
}

// measureBoxes starts k boxes (joined by a NATS it starts if clustered),
// runs the fanout load spread over them, and stops everything.
func measureBoxes(o *options, bin string, k int, clustered bool, log io.Writer) (*Result, error) {
	var nats *serverProc
	var procs []*serverProc
	defer func() {
		for _, p := range procs {
			p.stop(stopTimeout)
		}
		if nats != nil {
			nats.stop(stopTimeout)
		}
	}()
	var natsURL string
	if clustered {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		var serr error
		nats, serr = startServer(target{name: "natsd", bin: self, args: []string{"natsd"}}, startTimeout)
		if serr != nil {
			return nil, serr
		}
		natsURL = "nats://" + nats.addr
	}
	for i := 0; i < k; i++ {
		t := target{name: fmt.Sprintf("box%d", i), bin: bin, admin: true,
			args: []string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-log-level", "info", "-shutdown-timeout", "5s"}}
		t.args = append(t.args, wsdLoadArgs...)
		if natsURL != "" {
			t.args = append(t.args, "-nats-url", natsURL, "-box-id", t.name)
		}
		p, err := startServer(t, startTimeout)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	run := *o
	run.addrs = nil
	for _, p := range procs {
		run.addrs = append(run.addrs, p.addr)
	}
	run.addr = run.addrs[0]
	if k == 1 {
		run.addrs = nil
		run.serverPID, run.metrics = procs[0].pid, procs[0].admin
	}
	before := make([]map[string]float64, k)
	cpu0 := make([]float64, k)
	for i, p := range procs {
		before[i], _ = scrape(p.admin)
		cpu0[i], _ = readCPU(p.pid)
	}
	var natsCPU0 float64
	if nats != nil {
		natsCPU0, _ = readCPU(nats.pid)
	}
	r, err := runScenario("fanout", &run)
	if err != nil {
		return nil, err
	}
	r.Scenario = "cluster"
	r.Settings["boxes"] = fmt.Sprint(k)
	if k > 1 {
		// Sums over the boxes; runScenario read none of them.
		sum := map[string]float64{}
		var boxesCPU float64
		for i, p := range procs {
			after, err := scrape(p.admin)
			if err != nil {
				continue
			}
			for name, v := range after {
				sum[name] += v - before[i][name]
			}
			c, _ := readCPU(p.pid)
			boxesCPU += c - cpu0[i]
		}
		if b := sum["wsd_broadcasts_total"]; b > 0 {
			r.add("server broadcasts", "", "", b)
			r.add("server gzip encodings per broadcast", "", "lower", ratio(sum["wsd_gzip_encodings_total"], b))
		}
		r.add("server cpu (all boxes)", "s", "lower", boxesCPU)
		if nats != nil {
			c, _ := readCPU(nats.pid)
			r.add("nats cpu", "s", "lower", c-natsCPU0)
		}
		r.add("cluster published", "", "", sum["wsd_cluster_published_total"])
		r.add("cluster key claims", "", "", sum["wsd_cluster_claims_sent_total"])
		r.add("cluster remote deliveries", "", "", sum["wsd_cluster_remote_deliveries_total"])
		r.add("cluster dropped", "", "lower", sum["wsd_cluster_dropped_total"])
		r.add("nats bytes in", "B", "lower", sum["wsd_cluster_published_bytes_total"])
	} else if v, ok := r.get("server cpu"); ok {
		r.add("server cpu (all boxes)", "s", "lower", v)
	}
	r.print(log)
	return r, nil
}

// clusterFigures are the rows of the side-by-side table.
var clusterFigures = []string{"connections", "deliveries/s", "latency p50", "latency p99", "deliveries missing",
	"deliveries wrong", "server gzip encodings per broadcast", "server cpu (all boxes)", "nats cpu",
	"nats bytes in", "cluster dropped", "client cpu"}

// printClusterTable prints every run side by side, with each run's ratio
// to the first (one box).
func printClusterTable(w io.Writer, runs []clusterRun) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "figure\t")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t", r.Label)
	}
	for _, r := range runs[1:] {
		fmt.Fprintf(tw, "%s / %s\t", r.Label, runs[0].Label)
	}
	fmt.Fprintln(tw)
	for _, name := range clusterFigures {
		fmt.Fprintf(tw, "%s\t", name)
		for _, r := range runs {
			v, ok := r.Result.get(name)
			fmt.Fprintf(tw, "%s\t", cell(v, ok))
		}
		base, okb := runs[0].Result.get(name)
		for _, r := range runs[1:] {
			v, ok := r.Result.get(name)
			if ok && okb && base != 0 {
				fmt.Fprintf(tw, "%.2f\t", v/base)
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "errors\t")
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t", errCell(r.Result))
	}
	fmt.Fprintln(tw)
	tw.Flush()
}

// runNatsd is "bench natsd": an embedded nats-server on a free loopback
// port, until SIGTERM/SIGINT (the bench starts it with a parent-death
// signal, so it never outlives the bench). It prints
// "listening addr=HOST:PORT" once it accepts clients.
func runNatsd(args []string) error {
	fs := flag.NewFlagSet("natsd", flag.ContinueOnError)
	port := fs.Int("port", -1, "port (-1: any free one)")
	maxPayload := fs.Int("max-payload", 0, "max_payload in bytes (0: the server's default, 1 MiB)")
	jetstream := fs.Bool("jetstream", false, "enable JetStream, stored in a temporary directory removed at exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nopts := &natsserver.Options{Host: "127.0.0.1", Port: *port, NoLog: true, NoSigs: true, MaxPayload: int32(*maxPayload)}
	if *jetstream {
		dir, err := os.MkdirTemp("", "bench-natsd-js-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		nopts.JetStream, nopts.StoreDir = true, dir
	}
	ns, err := natsserver.NewServer(nopts)
	if err != nil {
		return err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return errors.New("nats-server not ready")
	}
	fmt.Fprintf(os.Stderr, "natsd listening addr=%s\n", ns.Addr().String())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	ns.Shutdown()
	return nil
}

// buildWsd builds wsd from this module into a temporary directory named
// after prefix; cleanup removes it.
func buildWsd(prefix string) (bin string, cleanup func(), err error) {
	root, err := moduleRoot()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	t, err := build(root, dir, "wsd")
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return t.bin, func() { os.RemoveAll(dir) }, nil
}
