// compare: build wsd and the baseline, run every scenario against a fresh
// process of each with identical settings, and print one table of the
// figures for wsd, the baseline and their ratio. Every phase is bounded:
// builds, start-up, each scenario (by its own settings), the wait for the
// server to release its sockets, and shutdown.

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/wsd-chat/wsd/internal/selfsigned"
)

const (
	buildTimeout = 5 * time.Minute
	startTimeout = 20 * time.Second
	settleBound  = 30 * time.Second
	stopTimeout  = 20 * time.Second
)

// fanout-text and fanout-deflate are the same all-text fanout without and
// with permessage-deflate: their ratio is what deflate costs the server.
// hostile runs each attack against a fresh process of the server (see
// measureHostile) and has a table of its own.
var scenarios = []string{"idle", "fanout", "fanout-text", "fanout-deflate", "storm", "connect", "hostile"}

// target is a server binary to measure.
type target struct {
	name  string
	bin   string
	args  []string
	load  []string // added to args for the load scenarios, not for hostile
	admin bool     // prints an admin address with /metrics
}

// wsdLoadArgs are what the load scenarios need of wsd beyond its defaults:
// their senders broadcast into rooms of thousands as fast as the fan-out
// takes it (storm: about 300,000 deliveries a second per sender), past
// -max-delivery-rate's default, which is set for a person in a chat. The
// hostile scenario runs at the defaults.
var wsdLoadArgs = []string{"-max-delivery-rate", "0"}

// compareOptions are the settings of every scenario in a compare run.
func compareOptions(quick bool, src []string) map[string]*options {
	div := 1
	if quick {
		div = 10
	}
	base := func() *options {
		o := defaultOptions()
		o.src = src
		o.timeout = 30 * time.Second
		o.progress = os.Stderr
		return o
	}
	idle := base()
	idle.n, idle.hold, idle.warmup = 15000/div, 10*time.Second/time.Duration(div), 50
	fanout := base()
	fanout.n, fanout.gzipFrac, fanout.messages, fanout.size = 5000/div, 0.5, 50/div, 256
	storm := base()
	storm.n, storm.senders, storm.duration = 1000/div, 10, 10*time.Second/time.Duration(div)
	text := base()
	text.n, text.gzipFrac, text.messages, text.size = 5000/div, 0, 50/div, 256
	deflate := *text
	deflate.deflate = true
	connect := base()
	connect.duration, connect.dialers = 10*time.Second/time.Duration(div), 32
	hostile := base()
	hostile.duration = durDefault
	if quick {
		h := &hostile.hostile
		hostile.duration = time.Second
		h.partialConns, h.inflateMsgs, h.floodMsgs, h.pings, h.bombs = h.partialConns/div, h.inflateMsgs/div, h.floodMsgs/div, h.pings/div, h.bombs/div
		h.contFrames, h.pongs, h.deflateMsgs, h.presocks = h.contFrames/div, h.pongs/div, h.deflateMsgs/div, h.presocks/div
	}
	return map[string]*options{"idle": idle, "fanout": fanout, "fanout-text": text, "fanout-deflate": &deflate,
		"storm": storm, "connect": connect, "hostile": hostile}
}

func runCompare(args []string) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "connections, messages and durations divided by ten (seconds rather than minutes)")
	out := fs.String("out", "", "also write every result (both servers, every figure) as JSON to `FILE` (- for stdout)")
	src := fs.String("src", "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4", "loopback source addresses")
	only := fs.String("only", "wsd,baseline", "servers to measure")
	useTLS := fs.Bool("tls", false, "every scenario over wss://: both servers get a fresh self-signed certificate")
	which := fs.String("scenarios", strings.Join(scenarios, ","), "scenarios to run")
	attacksList := fs.String("attacks", strings.Join(attackNames, ","), "hostile: attacks to run, in this order")
	boxes := fs.Int("cluster-boxes", 3, "also run the fanout load on this many wsd boxes joined by NATS, against one box (0: skip)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	sets := compareOptions(*quick, splitList(*src))
	sets["hostile"].hostile.attacks = splitList(*attacksList)
	run := splitList(*which)
	for _, name := range run {
		if sets[name] == nil {
			return fmt.Errorf("-scenarios: unknown scenario %q", name)
		}
	}
	for _, o := range sets {
		o.tls = *useTLS
		o.addr = "127.0.0.1:1" // checked again with the real port
		if err := o.check(); err != nil {
			return err
		}
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "wsd-compare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	var tlsArgs []string
	if *useTLS {
		cert, key, err := selfsigned.WriteFiles(dir, "bench", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
		if err != nil {
			return err
		}
		tlsArgs = []string{"-tls-cert", cert, "-tls-key", key}
	}
	var targets []target
	for _, name := range splitList(*only) {
		t, err := build(root, dir, name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "compare: %s: %v\n", name, err)
			continue
		}
		t.args = append(t.args, tlsArgs...)
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		return errors.New("nothing built")
	}
	loadAvg := readLoadAvg()
	results := map[string][]*Result{}
	for _, t := range targets {
		fmt.Fprintf(os.Stderr, "== %s\n", t.name)
		results[t.name] = measure(t, run, sets, os.Stderr)
	}
	var clusterRuns []clusterRun
	for _, t := range targets {
		if t.name != "wsd" || *boxes < 2 {
			continue
		}
		fmt.Fprintf(os.Stderr, "== cluster (%d boxes)\n", *boxes)
		o := *sets["fanout"]
		runs, err := runClusterScenario(&o, &clusterOptions{boxes: *boxes, bin: t.bin, single: true}, os.Stderr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "compare: cluster: %v\n", err)
			results["cluster"] = []*Result{{Scenario: "cluster", Server: "wsd", Error: err.Error(), Settings: map[string]string{}}}
			continue
		}
		clusterRuns = runs
		for _, r := range runs {
			r.Result.Server = r.Label
			results["cluster"] = append(results["cluster"], r.Result)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "compare (quick=%v, tls=%v): client and server share this machine's %d cores; load average before: %s\n",
		*quick, *useTLS, numCPU(), loadAvg)
	if slices.ContainsFunc(run, func(s string) bool { return s != "hostile" }) {
		printCompare(&b, results["wsd"], results["baseline"])
	}
	printHostile(&b, results["wsd"], results["baseline"])
	printDeflate(&b, results["wsd"])
	if len(clusterRuns) > 0 {
		fmt.Fprintf(&b, "\ncluster: the fanout load above on %d wsd boxes joined by NATS (gzip frame carried), against one box\n", *boxes)
		printClusterTable(&b, clusterRuns)
	}
	printErrors(&b, results)
	printNotes(&b, results, numCPU())
	fmt.Print(b.String())
	return writeJSON(*out, results)
}

// moduleRoot is the directory holding go.mod, found upwards from here.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod here or above: run compare from the wsd module")
		}
		dir = parent
	}
}

// build compiles wsd or the baseline into dir.
func build(root, dir, name string) (target, error) {
	pkg := map[string]string{"wsd": "./cmd/wsd", "baseline": "./bench/baseline"}[name]
	if pkg == "" {
		return target{}, fmt.Errorf("unknown server %q (wsd or baseline)", name)
	}
	bin := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if outp, err := cmd.CombinedOutput(); err != nil {
		return target{}, fmt.Errorf("go build %s: %v\n%s", pkg, err, outp)
	}
	t := target{name: name, bin: bin, args: []string{"-addr", "127.0.0.1:0"}}
	if name == "wsd" {
		// info, not warn: the "listening" lines are logged at info. wsd
		// logs no line per message or per connection at info.
		t.args = append(t.args, "-admin-addr", "127.0.0.1:0", "-log-level", "info", "-shutdown-timeout", "5s")
		t.admin = true
		t.load = wsdLoadArgs
	}
	return t, nil
}

// measure runs every scenario against a fresh process of t (hostile
// against a fresh process per attack). A scenario that fails is recorded
// with its error and the next one still runs.
func measure(t target, scenarios []string, sets map[string]*options, log io.Writer) []*Result {
	var out []*Result
	fail := func(name string, err error) {
		fmt.Fprintf(log, "%s %s: %v\n", t.name, name, err)
		out = append(out, &Result{Scenario: name, Server: t.name, Error: err.Error(), Settings: map[string]string{}})
	}
	var p *serverProc
	var startErr error
	baseFDs := 0
	defer func() {
		if p != nil {
			p.stop(stopTimeout)
		}
	}()
	for _, name := range scenarios {
		if name == "hostile" {
			r := measureHostile(t, sets[name], log)
			r.print(log)
			out = append(out, r)
			continue
		}
		if p == nil && startErr == nil {
			lt := t
			lt.args = append(append([]string(nil), t.args...), t.load...)
			if p, startErr = startServer(lt, startTimeout); startErr == nil {
				baseFDs, _ = countFDs(p.pid)
			} else {
				p = nil
			}
		}
		if startErr != nil {
			fail(name, startErr)
			continue
		}
		if !p.alive() {
			fail(name, fmt.Errorf("server exited: %s", p.tail()))
			continue
		}
		o := *sets[name]
		o.addr, o.serverPID, o.metrics = p.addr, p.pid, p.admin
		r, err := runScenario(name, &o)
		if err != nil {
			fail(name, err)
		} else {
			r.Server = t.name
			r.print(log)
			out = append(out, r)
		}
		settle(p, baseFDs)
	}
	return out
}

// measureHostile runs each attack of the hostile scenario against a fresh
// process of t, so that each attack's peak RSS is its own and a server an
// attack kills is restarted for the next one. The attacks' figures go
// into one Result; a server that exited is noted in its errors with the
// last lines it logged.
func measureHostile(t target, o *options, log io.Writer) *Result {
	merged := &Result{Scenario: "hostile", Server: t.name, Settings: map[string]string{}, Started: time.Now()}
	errs := &errCount{}
	for _, a := range o.hostile.attacks {
		p, err := startServer(t, startTimeout)
		if err != nil {
			fmt.Fprintf(log, "%s hostile %s: %v\n", t.name, a, err)
			merged.add(a+": not run", "", "lower", 1)
			errs.add(a + "-server-did-not-start")
			continue
		}
		oa := *o
		oa.addr, oa.serverPID, oa.metrics = p.addr, p.pid, ""
		oa.hostile.attacks = []string{a}
		r, err := runScenario("hostile", &oa)
		if err != nil {
			fmt.Fprintf(log, "%s hostile %s: %v\n", t.name, a, err)
		}
		if r != nil {
			merged.Addr = r.Addr
			merged.Figures = append(merged.Figures, r.Figures...)
			for k, v := range r.Settings {
				if k != "attacks" {
					merged.Settings[k] = v
				}
			}
			for k, v := range r.Errors {
				errs.addN(k, v)
			}
		}
		if !p.alive() {
			fmt.Fprintf(log, "%s hostile %s: server exited: %s\n", t.name, a, p.tail())
			errs.add(a + "-server-exited")
		}
		p.stop(stopTimeout)
	}
	merged.Settings["attacks"] = strings.Join(o.hostile.attacks, ",")
	merged.finish(errs)
	return merged
}

// settle waits (boundedly) until the server has closed the sockets of the
// previous scenario, so the next one starts from the same state.
func settle(p *serverProc, baseFDs int) {
	deadline := time.Now().Add(settleBound)
	for time.Now().Before(deadline) && p.alive() {
		if n, err := countFDs(p.pid); err != nil || n <= baseFDs+4 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serverProc is a running server with its stderr watched.
type serverProc struct {
	name, addr, admin string
	pid               int
	cmd               *exec.Cmd
	done              chan struct{}
	mu                sync.Mutex
	lines             []string // the last stderr lines
}

// startServer starts t and waits for its "listening" line(s).
func startServer(t target, timeout time.Duration) (*serverProc, error) {
	p := &serverProc{name: t.name, cmd: exec.Command(t.bin, t.args...), done: make(chan struct{})}
	// The server dies with the bench, whatever happens to the bench.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	p.pid = p.cmd.Process.Pid
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			if strings.Contains(line, "listening") {
				if a := logField(line, "addr"); a != "" {
					p.addr = a
				}
				if a := logField(line, "admin_addr"); a != "" {
					p.admin = a
				}
			}
			if len(p.lines) == 20 {
				p.lines = p.lines[1:]
			}
			p.lines = append(p.lines, line)
			ok := p.addr != "" && (!t.admin || p.admin != "")
			p.mu.Unlock()
			if ok && !signalled {
				close(ready)
				signalled = true
			}
		}
	}()
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	select {
	case <-ready:
		if err := loopbackOnly(p.addr, nil); err != nil {
			p.stop(stopTimeout)
			return nil, err
		}
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before listening: %s", t.name, p.tail())
	case <-time.After(timeout):
		p.stop(stopTimeout)
		return nil, fmt.Errorf("%s not listening after %v: %s", t.name, timeout, p.tail())
	}
}

// logField finds key=value in a logfmt line (the key must start a field).
func logField(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func (p *serverProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *serverProc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, " | ")
}

// stop sends SIGTERM and waits; after timeout it kills.
func (p *serverProc) stop(timeout time.Duration) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// printCompare writes one table: every figure of every scenario for wsd,
// the baseline and wsd/baseline.
func printCompare(w io.Writer, wsd, base []*Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tfigure\twsd\tbaseline\twsd/baseline\tunit\t")
	find := func(rs []*Result, s string) *Result {
		for _, r := range rs {
			if r.Scenario == s {
				return r
			}
		}
		return nil
	}
	for _, s := range scenarios {
		if s == "hostile" {
			continue // printHostile
		}
		a, b := find(wsd, s), find(base, s)
		if a == nil && b == nil {
			continue // not asked for
		}
		var names []string
		units := map[string]string{}
		seen := map[string]bool{}
		for _, r := range []*Result{a, b} {
			if r == nil {
				continue
			}
			for _, f := range r.Figures {
				if !seen[f.Name] {
					seen[f.Name] = true
					names = append(names, f.Name)
					units[f.Name] = f.Unit
				}
			}
		}
		for _, n := range names {
			va, oka := value(a, n)
			vb, okb := value(b, n)
			rat := "-"
			if oka && okb && vb != 0 {
				rat = fmt.Sprintf("%.2f", va/vb)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", s, n, cell(va, oka), cell(vb, okb), rat, units[n])
		}
		fmt.Fprintf(tw, "%s\terrors\t%s\t%s\t\t\t\n", s, errCell(a), errCell(b))
	}
	tw.Flush()
}

func value(r *Result, name string) (float64, bool) {
	if r == nil {
		return 0, false
	}
	return r.get(name)
}

func cell(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	return formatNum(v)
}

func errCell(r *Result) string {
	switch {
	case r == nil:
		return "not run"
	case r.Error != "":
		return "FAILED"
	case len(r.Errors) == 0:
		return "0"
	}
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return formatNum(float64(n))
}

// printDeflate states what permessage-deflate costs wsd: server CPU per
// delivery of fanout-deflate over fanout-text (the bound is 1.3)
// and compressions per broadcast (at most 1).
func printDeflate(w io.Writer, wsd []*Result) {
	var text, z *Result
	for _, r := range wsd {
		switch r.Scenario {
		case "fanout-text":
			text = r
		case "fanout-deflate":
			z = r
		}
	}
	const cpu = "server cpu per 1M deliveries"
	a, ok1 := value(z, cpu)
	b, ok2 := value(text, cpu)
	if !ok1 || !ok2 || b == 0 {
		return
	}
	per, _ := value(z, "server deflate compressions per broadcast")
	saved, _ := value(z, "server deflate bytes saved per frame")
	fmt.Fprintf(w, "deflate: wsd server CPU per delivery, fanout-deflate / fanout-text = %.2f (%s / %s s per 1M); %.2f compressions per broadcast; %.0f bytes saved per frame\n",
		a/b, formatNum(a), formatNum(b), per, saved)
}

// printErrors lists, under the table, every failure by kind and every
// scenario that did not complete.
func printErrors(w io.Writer, results map[string][]*Result) {
	for _, name := range []string{"wsd", "baseline"} {
		for _, r := range results[name] {
			switch {
			case r.Error != "":
				fmt.Fprintf(w, "%s %s did not complete: %s\n", name, r.Scenario, r.Error)
			case len(r.Errors) > 0:
				fmt.Fprintf(w, "%s %s errors:%s\n", name, r.Scenario, (&errCount{m: r.Errors}).String())
			}
		}
	}
}

// printNotes flags figures that the machine, not the server, may have
// set: another process using CPU during a run, or client and server
// together using every core (then throughput is capped by the shared CPU,
// and server CPU per delivery is the figure to compare). Windows under a
// second are skipped: CPU times come in 10 ms ticks.
func printNotes(w io.Writer, results map[string][]*Result, cores int) {
	for _, name := range []string{"wsd", "baseline"} {
		for _, r := range results[name] {
			if win, _ := r.get("cpu window"); win < 1 {
				continue
			}
			other, _ := r.get("other cpu share")
			srv, ok1 := r.get("server cpu share")
			cli, ok2 := r.get("client cpu share")
			if other > 0.2 {
				fmt.Fprintf(w, "note: %s %s: other processes used %.2f cores meanwhile; rerun on a quiet machine\n", name, r.Scenario, other)
			}
			if ok1 && ok2 && srv+cli+other >= 0.9*float64(cores) {
				fmt.Fprintf(w, "note: %s %s: all %d cores busy (server %.2f, client %.2f, other %.2f): throughput is capped by the shared CPU\n",
					name, r.Scenario, cores, srv, cli, other)
			}
		}
	}
}

// printHostile writes the hostile scenario's table: per attack, the
// server's peak RSS, the honest clients' delivery p99, whether they were
// harmed, and what the attackers got, for wsd and the baseline.
func printHostile(w io.Writer, wsd, base []*Result) {
	a, b := findResult(wsd, "hostile"), findResult(base, "hostile")
	if a == nil && b == nil {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "hostile attack\tpeak RSS MiB wsd\tbaseline\thonest p99 ms wsd\tbaseline\thonest harmed wsd\tbaseline\tattackers got wsd\tbaseline\t")
	for _, atk := range attackNames {
		ca, cb := hostileCells(a, atk), hostileCells(b, atk)
		if ca == nil && cb == nil {
			continue
		}
		if ca == nil {
			ca = notRunCells()
		}
		if cb == nil {
			cb = notRunCells()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", atk, ca[0], cb[0], ca[1], cb[1], ca[2], cb[2], ca[3], cb[3])
	}
	tw.Flush()
}

func findResult(rs []*Result, scenario string) *Result {
	for _, r := range rs {
		if r.Scenario == scenario {
			return r
		}
	}
	return nil
}

func notRunCells() []string { return []string{"not run", "-", "-", "-"} }

// hostileCells are one attack's cells for one server: peak RSS, honest
// p99, harmed, attackers' outcomes; nil when the result has nothing of
// that attack.
func hostileCells(r *Result, atk string) []string {
	if r == nil {
		return nil
	}
	if r.Error != "" {
		return []string{"FAILED", "-", "-", "-"}
	}
	get := func(name string) (float64, bool) { return r.get(atk + ": " + name) }
	died, okDied := get("server died")
	if v, _ := get("not run"); v == 1 {
		if died == 1 {
			return []string{"died before", "-", "-", "-"}
		}
		return notRunCells()
	}
	if !okDied {
		return nil
	}
	rss := "-"
	if v, ok := get("server peak rss"); ok {
		rss = fmt.Sprintf("%.0f", v)
	}
	if died == 1 {
		rss = "DIED (peak " + rss + ")"
	}
	if v, _ := get("stopped at -max-rss"); v == 1 {
		rss += " (hit -max-rss)"
	}
	p99 := "-"
	if v, ok := get("honest p99"); ok {
		p99 = formatNum(v)
	}
	harmed := "no"
	if v, _ := get("honest harmed"); v == 1 {
		var why []string
		if n, _ := get("honest closed"); n > 0 {
			why = append(why, fmt.Sprintf("%.0f closed", n))
		}
		if n, _ := get("honest missing"); n > 0 {
			why = append(why, fmt.Sprintf("%.0f missing", n))
		}
		for _, f := range r.Figures {
			if c, ok := strings.CutPrefix(f.Name, atk+": honest "); ok && f.Value == 0 {
				if c, ok = strings.CutSuffix(c, " passed"); ok {
					why = append(why, c+" failed")
				}
			}
		}
		harmed = "YES"
		if len(why) > 0 {
			harmed += " (" + strings.Join(why, ", ") + ")"
		}
	}
	if n, _ := get("members closed"); n > 0 {
		m, _ := get("members")
		harmed += fmt.Sprintf("; %.0f of %.0f members closed", n, m)
	}
	var got []string
	prefix := atk + ": attackers got "
	for _, f := range r.Figures {
		if k, ok := strings.CutPrefix(f.Name, prefix); ok {
			got = append(got, fmt.Sprintf("%s×%.0f", k, f.Value))
		}
	}
	gotCell := "-"
	if len(got) > 0 {
		gotCell = strings.Join(got, " ")
	}
	return []string{rss, p99, harmed, gotCell}
}
