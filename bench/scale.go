// Scenario cluster-scale: the scale proof for several boxes. N connections
// (54,000 by default) over K wsd boxes joined by NATS, past the 20,000
// open files one process may hold here: the bench spreads its own
// connections over client processes ("bench scale-recv", at most 18,000
// each, every one dialing the boxes round-robin from several loopback
// source addresses), then one POST /publish {"room":"*"} on box 0 must
// reach every connection on every box. Reports how many got it, the
// latency, and each box's RSS per connection.

package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"

	"github.com/wsd-chat/wsd/internal/rsswatch"
)

const perClientProc = 18000

func runClusterScale(args []string) error {
	fs := flag.NewFlagSet("cluster-scale", flag.ContinueOnError)
	fs.SetOutput(flagOutput)
	n := fs.Int("n", 54000, "connections in all")
	boxes := fs.Int("boxes", 3, "wsd boxes")
	bin := fs.String("wsd", "", "wsd binary (default: build ./cmd/wsd)")
	src := fs.String("src", "127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6", "loopback source addresses")
	gzipFrac := fs.Float64("gzip-frac", 0.5, "fraction of connections with support_gzip=1")
	timeout := fs.Duration("timeout", 120*time.Second, "bound on each phase")
	jsonOut := fs.String("json", "", "also write the result as JSON to `FILE`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > 8*perClientProc || *boxes < 1 || *boxes > 8 || *timeout <= 0 || *timeout > 10*time.Minute {
		return errors.New("cluster-scale: -n 1..144000, -boxes 1..8, -timeout up to 10m")
	}
	if err := loopbackOnly("127.0.0.1:1", splitList(*src)); err != nil {
		return err
	}
	if *n/(*boxes) > 19000 {
		return fmt.Errorf("-n %d over %d boxes is more than the ~19,000 sockets one wsd may hold here", *n, *boxes)
	}
	wsdBin := *bin
	if wsdBin == "" {
		root, err := moduleRoot()
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "wsd-scale-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		t, err := build(root, dir, "wsd")
		if err != nil {
			return err
		}
		wsdBin = t.bin
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r := &Result{Scenario: "cluster-scale", Settings: map[string]string{}, Started: time.Now()}
	r.Settings["n"] = fmt.Sprint(*n)
	r.Settings["boxes"] = fmt.Sprint(*boxes)

	nats, err := startServer(target{name: "natsd", bin: self, args: []string{"natsd"}}, startTimeout)
	if err != nil {
		return err
	}
	defer nats.stop(stopTimeout)
	var procs []*serverProc
	defer func() {
		for _, p := range procs {
			p.stop(stopTimeout)
		}
	}()
	var addrs []string
	for i := 0; i < *boxes; i++ {
		args := append([]string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-log-level", "info",
			"-shutdown-timeout", "5s", "-nats-url", "nats://" + nats.addr, "-box-id", fmt.Sprintf("box%d", i),
			"-idle-timeout", "10m", "-ping-interval", "5m"}, wsdLoadArgs...)
		p, err := startServer(target{name: fmt.Sprintf("box%d", i), bin: wsdBin, admin: true, args: args}, startTimeout)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		addrs = append(addrs, p.addr)
	}
	rss0 := make([]int64, len(procs))
	for i, p := range procs {
		rss0[i], _ = rsswatch.Read(p.pid)
	}

	// Client processes, each dialing its share round-robin over the boxes.
	type child struct {
		cmd   *exec.Cmd
		in    io.WriteCloser
		out   *bufio.Scanner
		ready int
	}
	var kids []*child
	defer func() {
		for _, k := range kids {
			k.in.Close()
			k.cmd.Process.Kill()
			k.cmd.Wait()
		}
	}()
	start := time.Now()
	for off := 0; off < *n; off += perClientProc {
		cnt := min(perClientProc, *n-off)
		cmd := exec.Command(self, "scale-recv", "-addrs", strings.Join(addrs, ","), "-n", strconv.Itoa(cnt),
			"-offset", strconv.Itoa(off), "-src", *src, "-gzip-frac", fmt.Sprint(*gzipFrac), "-timeout", timeout.String())
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		cmd.Stderr = os.Stderr
		in, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return err
		}
		kids = append(kids, &child{cmd: cmd, in: in, out: bufio.NewScanner(out)})
	}
	open := 0
	for _, k := range kids {
		if !k.out.Scan() {
			return errors.New("a client process died while dialing")
		}
		f := strings.Fields(k.out.Text())
		if len(f) != 2 || f[0] != "ready" {
			return fmt.Errorf("client process: %q", k.out.Text())
		}
		k.ready, _ = strconv.Atoi(f[1])
		open += k.ready
	}
	dialSecs := time.Since(start).Seconds()
	r.add("connections", "", "", float64(open))
	r.add("connect rate", "conn/s", "higher", float64(open)/dialSecs)
	// Let the last joins' subscriptions settle, then read memory.
	time.Sleep(2 * time.Second)
	for i, p := range procs {
		rss, _ := rsswatch.Read(p.pid)
		st, _ := scrape(p.admin)
		conns := st["wsd_connections"]
		r.add(fmt.Sprintf("box%d connections", i), "", "", conns)
		r.add(fmt.Sprintf("box%d RSS", i), "MiB", "", float64(rss)/(1<<20))
		r.add(fmt.Sprintf("box%d RSS per connection", i), "B", "lower", ratio(float64(rss-rss0[i]), conns))
		r.add(fmt.Sprintf("box%d nats subscriptions", i), "", "", st["wsd_cluster_subscriptions"])
	}

	token := strconv.FormatInt(time.Now().UnixNano(), 10)
	body := fmt.Sprintf(`{"room":"*","text":"scale %s"}`, token)
	resp, err := http.Post("http://"+procs[0].admin+"/publish", "application/json", bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Fprintf(os.Stderr, "publish answered %s", answer)
	for _, k := range kids {
		fmt.Fprintln(k.in, token)
	}
	var got int
	h := hdrhistogram.New(1, 600_000_000, 3)
	for _, k := range kids {
		if !k.out.Scan() {
			return errors.New("a client process died while receiving")
		}
		// got N then latencies in microseconds, one per line, ended by "end"
		f := strings.Fields(k.out.Text())
		if len(f) != 2 || f[0] != "got" {
			return fmt.Errorf("client process: %q", k.out.Text())
		}
		g, _ := strconv.Atoi(f[1])
		got += g
		for k.out.Scan() && k.out.Text() != "end" {
			if v, err := strconv.ParseInt(k.out.Text(), 10, 64); err == nil {
				h.RecordValue(max(v, 1))
			}
		}
	}
	r.add("broadcast received", "", "", float64(got))
	r.add("broadcast missing", "", "lower", float64(open-got))
	r.addLatency("latency", h)
	var dropped float64
	for _, p := range procs {
		st, _ := scrape(p.admin)
		dropped += st["wsd_cluster_dropped_total"]
	}
	r.add("cluster dropped", "", "lower", dropped)
	r.Elapsed = time.Since(r.Started).Seconds()
	r.print(os.Stdout)
	return writeJSON(*jsonOut, r)
}

// runScaleRecv is "bench scale-recv", a client process of cluster-scale:
// dial, say "ready N", wait for a token on stdin, then wait until every
// connection got the broadcast carrying it and report.
func runScaleRecv(args []string) error {
	fs := flag.NewFlagSet("scale-recv", flag.ContinueOnError)
	addrs := fs.String("addrs", "", "boxes")
	n := fs.Int("n", 1, "connections")
	offset := fs.Int("offset", 0, "first connection number")
	src := fs.String("src", "127.0.0.1", "source addresses")
	gzipFrac := fs.Float64("gzip-frac", 0.5, "gzip fraction")
	timeout := fs.Duration("timeout", time.Minute, "bound per phase")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := defaultOptions()
	o.addrs = splitList(*addrs)
	o.addr = o.addrs[0]
	o.n, o.src, o.gzipFrac, o.timeout, o.progress = *n, splitList(*src), *gzipFrac, *timeout, nil
	o.readBuf, o.dialers = 512, 128
	if err := o.check(); err != nil {
		return err
	}
	for _, a := range o.addrs {
		if err := loopbackOnly(a, nil); err != nil {
			return err
		}
	}
	l := &live{}
	// Keys are unique across client processes: the offset is in the prefix.
	d := newDialer(o, fmt.Sprintf("scale%d", *offset))
	gz := gzipFor(o.gzipFrac)
	conns, _ := dialAll(o, d, o.n, gz, l)
	defer closeAll(conns)
	if e := l.errs.String(); e != "" {
		fmt.Fprintf(os.Stderr, "scale-recv %d: dial errors:%s\n", *offset, e)
	}
	fmt.Printf("ready %d\n", l.conns.Load())
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		return err
	}
	token := strings.TrimSpace(line)
	sent, _ := strconv.ParseInt(token, 10, 64)
	want := []byte("scale " + token)
	deadline := time.Now().Add(o.timeout)
	var got atomic.Int64
	lat := make([]int64, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func(i int, c *wsConn) {
			defer wg.Done()
			c.SetReadDeadline(deadline)
			for {
				op, p, err := c.readMessage(nil)
				if err != nil {
					return
				}
				if op == ws.OpBinary {
					s, err := gunzipString(p)
					if err != nil {
						return
					}
					p = []byte(s)
				}
				if bytes.Equal(p, want) {
					lat[i] = (time.Now().UnixNano() - sent) / 1000
					got.Add(1)
					return
				}
			}
		}(i, c)
	}
	wg.Wait()
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "got %d\n", got.Load())
	for _, v := range lat {
		if v > 0 {
			fmt.Fprintln(w, v)
		}
	}
	fmt.Fprintln(w, "end")
	return w.Flush()
}

// gunzipString inflates one short gzip'd message.
func gunzipString(p []byte) (string, error) {
	g := gunzippers.Get().(*gunzipper)
	defer gunzippers.Put(g)
	out, err := g.gunzip(p, 1024)
	return string(out), err
}
