package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/wstest"
)

var (
	baselineOnce sync.Once
	baselineBin  string
	baselineErr  error
)

// startBaseline builds the baseline once and starts a fresh process of it
// on a free loopback port, the way compare does.
func startBaseline(t *testing.T) *serverProc {
	t.Helper()
	baselineOnce.Do(func() {
		dir, err := filepathAbs("baseline")
		if err != nil {
			baselineErr = err
			return
		}
		bin := filepath.Join(tempDir, "baseline")
		out, err := exec.Command("go", "build", "-o", bin, dir).CombinedOutput()
		if err != nil {
			baselineErr = err
			t.Logf("%s", out)
		}
		baselineBin = bin
	})
	if baselineErr != nil {
		t.Fatalf("building the baseline: %v", baselineErr)
	}
	p, err := startServer(target{name: "baseline", bin: baselineBin, args: []string{"-addr", "127.0.0.1:0"}}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(5 * time.Second) })
	return p
}

// TestBaselineTLS: the baseline given -tls-cert serves wss:// to the bench client.
func TestBaselineTLS(t *testing.T) {
	startBaseline(t) // builds the binary
	cert, key := wstest.ValidCertFiles(t, t.TempDir(), "bench")
	p, err := startServer(target{name: "baseline", bin: baselineBin,
		args: []string{"-addr", "127.0.0.1:0", "-tls-cert", cert, "-tls-key", key}}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(5 * time.Second) })
	o := tinyOptions(t, p)
	o.tls, o.n, o.messages = true, 20, 5
	fanoutIntact(t, o)
	o = tinyOptions(t, p)
	o.tls, o.duration = true, 200*time.Millisecond
	connectClean(t, o)
}

func filepathAbs(rel string) (string, error) { return filepath.Abs(rel) }

// tinyOptions are small, fast settings against p.
func tinyOptions(t *testing.T, p *serverProc) *options {
	o := defaultOptions()
	o.addr, o.serverPID = p.addr, p.pid
	o.src = []string{"127.0.0.1", "127.0.0.2"}
	o.dialers = 8
	o.timeout = 10 * time.Second
	o.progress = nil
	if testing.Verbose() {
		o.progress = testWriter{t}
	}
	return o
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func must(t *testing.T, r *Result, name string, want float64) {
	t.Helper()
	got, ok := r.get(name)
	if !ok || got != want {
		var b strings.Builder
		r.print(&b)
		t.Fatalf("%s = %v (present %v), want %v\n%s", name, got, ok, want, b.String())
	}
}

func positive(t *testing.T, r *Result, names ...string) {
	t.Helper()
	for _, name := range names {
		if got, ok := r.get(name); !ok || got <= 0 {
			t.Errorf("%s = %v (present %v), want > 0", name, got, ok)
		}
	}
}

func noErrors(t *testing.T, r *Result) {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("%s: errors %v", r.Scenario, r.Errors)
	}
}

// fanoutIntact runs fanout with o and checks that each of its n×messages
// deliveries arrived, intact, without errors.
func fanoutIntact(t *testing.T, o *options) *Result {
	t.Helper()
	r, err := runFanout(o)
	if err != nil {
		t.Fatal(err)
	}
	must(t, r, "deliveries received", float64(o.n*o.messages))
	must(t, r, "deliveries wrong", 0)
	noErrors(t, r)
	return r
}

// stormIntact runs storm with o and checks that every message sent reached
// all n clients, intact, without errors.
func stormIntact(t *testing.T, o *options) *Result {
	t.Helper()
	r, err := runStorm(o)
	if err != nil {
		t.Fatal(err)
	}
	sent, _ := r.get("messages sent")
	must(t, r, "deliveries received", sent*float64(o.n))
	must(t, r, "deliveries wrong", 0)
	noErrors(t, r)
	return r
}

// connectClean runs connect with o and checks that no handshake failed.
func connectClean(t *testing.T, o *options) *Result {
	t.Helper()
	r, err := runConnect(o)
	if err != nil {
		t.Fatal(err)
	}
	must(t, r, "failures", 0)
	noErrors(t, r)
	return r
}

func TestEndToEndAgainstBaseline(t *testing.T) {
	p := startBaseline(t)

	t.Run("idle", func(t *testing.T) {
		o := tinyOptions(t, p)
		o.n, o.hold = 60, 200*time.Millisecond
		r, err := runIdle(o)
		if err != nil {
			t.Fatal(err)
		}
		must(t, r, "connections", 60)
		must(t, r, "open after hold", 60)
		must(t, r, "lost during hold", 0)
		positive(t, r, "connect rate", "server rss after")
		noErrors(t, r)
	})
	t.Run("fanout", func(t *testing.T) {
		o := tinyOptions(t, p)
		o.n, o.messages, o.size = 40, 7, 300
		r := fanoutIntact(t, o)
		must(t, r, "deliveries expected", 280)
		must(t, r, "deliveries missing", 0)
		positive(t, r, "deliveries/s", "latency p50", "latency max")
	})
	t.Run("fanout without memo", func(t *testing.T) {
		o := tinyOptions(t, p)
		o.n, o.messages, o.gzipFrac, o.memoGzip = 10, 3, 1, false
		fanoutIntact(t, o)
	})
	t.Run("storm", func(t *testing.T) {
		o := tinyOptions(t, p)
		o.n, o.senders, o.duration = 20, 3, 300*time.Millisecond
		r, err := runStorm(o)
		if err != nil {
			t.Fatal(err)
		}
		sent, _ := r.get("messages sent")
		must(t, r, "deliveries expected", sent*20)
		must(t, r, "deliveries wrong", 0)
		positive(t, r, "messages sent", "deliveries/s", "latency p99")
		if lost, _ := r.get("connections lost"); lost > 0 {
			// The baseline drops a peer whose 256-frame channel fills (the
			// original design's slow-consumer rule), which a starved writer
			// goroutine on a loaded box can hit: then what it missed is
			// counted as missing, and nothing else is checked.
			t.Logf("the baseline dropped %v peers as slow under this load", lost)
			return
		}
		must(t, r, "deliveries received", sent*20)
		must(t, r, "deliveries missing", 0)
		noErrors(t, r)
	})
	for _, rst := range []bool{true, false} {
		t.Run(fmt.Sprintf("connect rst=%v", rst), func(t *testing.T) {
			o := tinyOptions(t, p)
			o.duration, o.rst = 300*time.Millisecond, rst
			r := connectClean(t, o)
			positive(t, r, "handshakes", "handshakes/s", "handshake p50")
		})
	}
	t.Run("scenario against nothing fails cleanly", func(t *testing.T) {
		o := tinyOptions(t, p)
		o.addr = "127.0.0.1:1" // nothing listens there
		o.n = 3
		if _, err := runFanout(o); err == nil || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("got %v, want connection refused", err)
		}
	})
}

// TestMeasure runs compare's per-server loop, tiny, against the baseline.
func TestMeasure(t *testing.T) {
	startBaseline(t) // builds the binary
	o := func() *options {
		o := defaultOptions()
		o.src, o.dialers, o.timeout, o.progress = []string{"127.0.0.1"}, 4, 10*time.Second, nil
		return o
	}
	sets := map[string]*options{"idle": o(), "fanout": o(), "fanout-text": o(), "fanout-deflate": o(), "storm": o(), "connect": o(), "hostile": o()}
	sets["idle"].n, sets["idle"].hold = 20, 50*time.Millisecond
	sets["fanout"].n, sets["fanout"].messages = 10, 3
	sets["fanout-text"].n, sets["fanout-text"].messages, sets["fanout-text"].gzipFrac = 10, 3, 0
	sets["fanout-deflate"].n, sets["fanout-deflate"].messages, sets["fanout-deflate"].gzipFrac = 10, 3, 0
	sets["fanout-deflate"].deflate = true // the baseline declines: plain text
	sets["storm"].n, sets["storm"].senders, sets["storm"].duration = 10, 2, 200*time.Millisecond
	sets["connect"].duration = 200 * time.Millisecond
	tinyHostile(sets["hostile"])
	sets["hostile"].hostile.attacks = []string{"ping", "bomb"} // each against a fresh process
	var log strings.Builder
	rs := measure(target{name: "baseline", bin: baselineBin, args: []string{"-addr", "127.0.0.1:0"}}, scenarios, sets, &log)
	if len(rs) != len(scenarios) {
		t.Fatalf("%d results:\n%s", len(rs), log.String())
	}
	for i, r := range rs {
		if r.Scenario != scenarios[i] || r.Error != "" || r.Server != "baseline" {
			t.Errorf("result %d: %s %q %q", i, r.Scenario, r.Server, r.Error)
		}
	}
	var b strings.Builder
	printCompare(&b, nil, rs)
	if !strings.Contains(b.String(), "deliveries missing") {
		t.Errorf("table:\n%s", b.String())
	}
	h := rs[len(rs)-1]
	for _, a := range []string{"ping", "bomb"} {
		must(t, h, a+": server died", 0)
		positive(t, h, a+": server peak rss", a+": honest received")
	}
	b.Reset()
	printHostile(&b, nil, rs)
	if !strings.Contains(b.String(), "bomb") || strings.Contains(b.String(), "partial") {
		t.Errorf("hostile table:\n%s", b.String())
	}
}

// TestStartServerFailures: a server that exits or never says it listens
// is reported, within the bound.
func TestStartServerFailures(t *testing.T) {
	if _, err := startServer(target{name: "false", bin: "/bin/false"}, 5*time.Second); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("exiting server: %v", err)
	}
	start := time.Now()
	_, err := startServer(target{name: "sleep", bin: "/bin/sleep", args: []string{"30"}}, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not listening") || time.Since(start) > 10*time.Second {
		t.Errorf("silent server: %v after %v", err, time.Since(start))
	}
}

func TestCaughtUpSkipsDeadReceivers(t *testing.T) {
	s := &swarm{}
	a, b := &receiver{}, &receiver{}
	s.recv = []*receiver{a, b}
	a.ok.Store(5)
	if s.caughtUp(5) {
		t.Fatal("b has nothing yet")
	}
	b.dead.Store(true)
	if !s.caughtUp(5) || s.caughtUp(6) {
		t.Fatal("a dead receiver must not be waited for, a live one must")
	}
}
