package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsd-chat/wsd/internal/natstest"
	"github.com/wsd-chat/wsd/internal/selfsigned"
	"github.com/wsd-chat/wsd/internal/wstest"
)

// readRoom reads c until it has n "message" envelopes and acks acks,
// skipping presence; it fails the test on anything else or a timeout.
func readRoom(t *testing.T, c *wstest.V1, n, acks int) (msgs, got []wstest.Envelope) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for len(msgs) < n || len(got) < acks {
		e, err := c.Read(time.Until(deadline))
		if err != nil {
			t.Fatalf("after %d/%d messages and %d/%d acks: %v", len(msgs), n, len(got), acks, err)
		}
		switch e.Type {
		case "message":
			msgs = append(msgs, e)
		case "ack":
			got = append(got, e)
		case "presence":
		default:
			t.Fatalf("unexpected envelope %s", e.Raw)
		}
	}
	return msgs, got
}

// expectNoMessage fails if c gets anything but presence within d.
func expectNoMessage(t *testing.T, c *wstest.V1, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		e, err := c.Read(time.Until(deadline))
		if err != nil {
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				return
			}
			t.Fatalf("want nothing for %v, got %v", d, err)
		}
		if e.Type != "presence" {
			t.Fatalf("want nothing for %v, got %s", d, e.Raw)
		}
	}
}

// checkRun fails unless msgs are seqs first, first+1 … of epoch, one each.
func checkRun(t *testing.T, who string, msgs []wstest.Envelope, first uint64, epoch string) {
	t.Helper()
	for i, m := range msgs {
		if m.Seq != first+uint64(i) || m.Epoch != epoch {
			t.Fatalf("%s: message %d is seq %d epoch %q, want seq %d epoch %q (%s)", who, i, m.Seq, m.Epoch, first+uint64(i), epoch, m.Raw)
		}
	}
}

// Boxes on one JetStream with -history-jetstream: a room has one order
// on every box; a client that moves to another box with since+epoch gets
// exactly what it missed; a send retried with the same id on another box
// is answered as the duplicate it is and not delivered twice; a box
// restarted keeps the room's epoch.
func TestBinaryClusteredHistory(t *testing.T) {
	ns := natstest.StartJetStream(t, nil)
	url := "nats://" + ns.Addr().String()
	start := func(id string) *wstest.Process {
		return wstest.StartBinary(t, "-nats-url", url, "-history-jetstream", "-box-id", id, "-history-size", "1000",
			"-history-store-max", "67108864")
	}
	boxes := []*wstest.Process{start("a"), start("b"), start("c")}
	cs := make([]*wstest.V1, 3)
	for i, p := range boxes {
		cs[i] = wstest.DialV1(t, p.Addr, fmt.Sprintf("specialKey=u%d&room=r", i))
		if j := cs[i].ExpectUntil(t, "joined"); j.Seq != 0 || j.Epoch != "" {
			t.Fatalf("box %d: a room never used is seq 0, no epoch: %s", i, j.Raw)
		}
	}

	// Every client sends at once, on its own box.
	const per = 40
	for j := range per {
		for i, c := range cs {
			if err := c.Send("r", fmt.Sprintf("u%d-%d", i, j), fmt.Sprintf("text %d %d", i, j)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var first [][]wstest.Envelope
	for i, c := range cs {
		msgs, acks := readRoom(t, c, 3*per, per)
		checkRun(t, fmt.Sprintf("box %d", i), msgs, 1, msgs[0].Epoch)
		byID := map[string]wstest.Envelope{}
		for _, m := range msgs {
			byID[m.ID] = m
		}
		for _, a := range acks {
			if m := byID[a.ID]; a.Duplicate || a.Seq != m.Seq || a.Epoch != m.Epoch {
				t.Fatalf("box %d: ack %s, delivered %s", i, a.Raw, m.Raw)
			}
		}
		first = append(first, msgs)
	}
	for i := 1; i < 3; i++ {
		for k := range first[0] {
			if a, b := first[0][k], first[i][k]; a.Seq != b.Seq || a.Epoch != b.Epoch || a.From != b.From || a.ID != b.ID || a.Text != b.Text {
				t.Fatalf("box a and box %d differ at %d: %s, %s", i, k, a.Raw, b.Raw)
			}
		}
	}
	epoch, last := first[0][0].Epoch, uint64(3*per)

	// u0 leaves box a; u1 goes on; u0 comes back on box b.
	cs[0].Conn.Close()
	const missed = 25
	for j := range missed {
		cs[1].Send("r", fmt.Sprintf("u1-m%d", j), "while u0 was away")
	}
	readRoom(t, cs[1], missed, missed)
	readRoom(t, cs[2], missed, 0)
	u0 := wstest.DialV1(t, boxes[1].Addr, fmt.Sprintf("specialKey=u0&room=r&since=%d&epoch=%s", last, epoch))
	j := u0.ExpectUntil(t, "joined")
	if !j.Recovered || j.Epoch != epoch || j.Seq != last+missed {
		t.Fatalf("u0 on box b: %s, want recovered at seq %d epoch %s", j.Raw, last+missed, epoch)
	}
	msgs, _ := readRoom(t, u0, missed, 0)
	checkRun(t, "u0 on box b", msgs, last+1, epoch)
	for k, m := range msgs {
		if m.ID != fmt.Sprintf("u1-m%d", k) {
			t.Fatalf("u0's replay %d: %s", k, m.Raw)
		}
	}
	expectNoMessage(t, u0, 300*time.Millisecond)
	last += missed

	// A send on box b, retried with the same id from box c.
	u0.Send("r", "once", "only once")
	_, acks := readRoom(t, u0, 1, 1)
	orig := acks[0]
	if orig.Duplicate || orig.Seq != last+1 || orig.Epoch != epoch {
		t.Fatalf("first send: %s", orig.Raw)
	}
	last++
	readRoom(t, cs[1], 1, 0)
	readRoom(t, cs[2], 1, 0)
	u0.Conn.Close()
	u0 = wstest.DialV1(t, boxes[2].Addr, fmt.Sprintf("specialKey=u0&room=r&since=%d&epoch=%s", last, epoch))
	if j := u0.ExpectUntil(t, "joined"); !j.Recovered || j.Seq != last {
		t.Fatalf("u0 on box c: %s", j.Raw)
	}
	u0.Send("r", "once", "only once")
	_, acks = readRoom(t, u0, 0, 1)
	if a := acks[0]; !a.Duplicate || a.Seq != orig.Seq || a.Epoch != orig.Epoch {
		t.Fatalf("the retry on another box: %s, want duplicate of %s", a.Raw, orig.Raw)
	}
	// Nothing was delivered for the retry: the next message anyone sees
	// is the one after it.
	cs[2].Send("r", "next", "after the retry")
	for i, c := range []*wstest.V1{cs[1], cs[2], u0} {
		msgs, _ := readRoom(t, c, 1, 0)
		if m := msgs[0]; m.ID != "next" || m.Seq != last+1 {
			t.Fatalf("client %d: after the retry got %s, want id next at seq %d", i, m.Raw, last+1)
		}
	}
	last++

	// Box a restarts: the room keeps its epoch and seq.
	boxes[0].Signal(syscall.SIGTERM)
	if code := boxes[0].Wait(10 * time.Second); code != 0 {
		t.Fatalf("box a exit %d", code)
	}
	boxes[0] = start("a")
	n := wstest.DialV1(t, boxes[0].Addr, fmt.Sprintf("specialKey=n&room=r&since=%d&epoch=%s", last-5, epoch))
	j = n.ExpectUntil(t, "joined")
	if !j.Recovered || j.Epoch != epoch || j.Seq != last {
		t.Fatalf("after box a's restart: %s, want recovered at seq %d epoch %s", j.Raw, last, epoch)
	}
	msgs, _ = readRoom(t, n, 5, 0)
	checkRun(t, "restarted box a", msgs, last-4, epoch)
	n.Send("r", "back", "from the restarted box")
	for i, c := range []*wstest.V1{n, cs[1], cs[2]} {
		msgs, _ := readRoom(t, c, 1, 0)
		if m := msgs[0]; m.ID != "back" || m.Seq != last+1 || m.Epoch != epoch {
			t.Fatalf("client %d: %s, want id back at seq %d", i, m.Raw, last+1)
		}
	}
}

// A -history-dir box killed (SIGKILL) while a client sends at rate:
// restarted on the same directory, the room has the same epoch and every
// message that was acked before the kill, each once, in its acked seq.
func TestBinaryHistoryDirSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-history-dir", dir, "-history-size", "5000"}
	p := wstest.StartBinary(t, args...)
	c := wstest.DialV1(t, p.Addr, "specialKey=k&room=r")
	c.ExpectUntil(t, "joined")

	type stamp struct {
		seq   uint64
		epoch string
	}
	var (
		mu    sync.Mutex
		acked = map[string]stamp{}
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() { // the sender: one message every 500 µs until the kill
		defer wg.Done()
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if c.Send("r", fmt.Sprintf("m%d", i), "at rate") != nil {
				return
			}
		}
	}()
	for {
		e, err := c.Read(10 * time.Second)
		if err != nil {
			break // the kill
		}
		if e.Type != "ack" {
			continue
		}
		mu.Lock()
		acked[e.ID] = stamp{e.Seq, e.Epoch}
		n := len(acked)
		mu.Unlock()
		if n == 400 {
			p.Signal(syscall.SIGKILL)
		}
	}
	close(stop)
	wg.Wait()
	if len(acked) < 400 {
		t.Fatalf("%d acks before the connection ended", len(acked))
	}
	var epoch string
	for _, s := range acked {
		epoch = s.epoch
	}

	p = wstest.StartBinary(t, args...)
	r := wstest.DialV1(t, p.Addr, "specialKey=reader&room=r&history=5000")
	j := r.ExpectUntil(t, "joined")
	if j.Epoch != epoch || j.Seq < uint64(len(acked)) {
		t.Fatalf("after the kill: %s, want epoch %s and at least seq %d", j.Raw, epoch, len(acked))
	}
	msgs, _ := readRoom(t, r, int(j.Seq), 0)
	checkRun(t, "after the kill", msgs, 1, epoch)
	seen := map[string]bool{}
	for _, m := range msgs {
		if seen[m.ID] {
			t.Fatalf("%s twice in the history", m.ID)
		}
		seen[m.ID] = true
		if s, ok := acked[m.ID]; ok && s.seq != m.Seq {
			t.Fatalf("%s acked at seq %d, in the history at %d", m.ID, s.seq, m.Seq)
		}
	}
	for id := range acked {
		if !seen[id] {
			t.Fatalf("%s was acked before the kill and is not in the history (%d acked, %d kept)", id, len(acked), len(msgs))
		}
	}
	t.Logf("%d acked before the kill, %d in the history after it", len(acked), len(msgs))
	// The embedded store reports like the clustered one; this join was
	// a read of the store (the restarted box's memory had nothing).
	if h := adminHistory(t, p); h != "ok" {
		t.Errorf("/healthz history %q", h)
	}
	for name, want := range map[string]float64{"wsd_history_up": 1, "wsd_history_store_connected": 1, "wsd_history_store_consuming": 1,
		`wsd_history_joins_total{from="store"}`: 1} {
		if v := metricValue(t, p.AdminAddr, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
}

// A -history-dir that another wsd holds, or that cannot be written, stops
// the start at once with an error that says so.
func TestBinaryHistoryDirRefused(t *testing.T) {
	dir := t.TempDir()
	wstest.StartBinary(t, "-history-dir", dir)
	file := writeFile(t, filepath.Join(t.TempDir(), "file"), "x")
	for _, tc := range []struct {
		name string
		dir  string
		want string
	}{
		{"in use", dir, "in use by another wsd"},
		{"not a directory", filepath.Join(file, "sub"), "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			code, out := runBinary(t, nil, "-history-dir", tc.dir, "-addr", "127.0.0.1:0", "-admin-addr", "")
			if code != 2 || !strings.Contains(out, "-history-dir "+tc.dir) || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, %q; want exit 2 naming the directory and %q", code, out, tc.want)
			}
			if d := time.Since(t0); d > 10*time.Second {
				t.Fatalf("refused after %v", d)
			}
		})
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := t.TempDir()
		os.Chmod(ro, 0o500)
		code, out := runBinary(t, nil, "-history-dir", ro, "-addr", "127.0.0.1:0", "-admin-addr", "")
		if code != 2 || !strings.Contains(out, "not writable") {
			t.Fatalf("read-only dir: exit %d, %q", code, out)
		}
	}
}

// -history-jetstream refuses to start, quickly and saying why, without
// -nats-url, on a NATS without JetStream and on an unreachable NATS;
// -history-store-max below the default is a working embedded store.
func TestBinaryHistoryJetStreamRefused(t *testing.T) {
	plain := natstest.Start(t, nil)
	js := natstest.StartJetStream(t, nil) // 256 MiB of store
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no nats-url", []string{"-history-jetstream"}, `-history-jetstream "true": needs -nats-url`},
		{"with history-dir", []string{"-history-jetstream", "-nats-url", "nats://" + js.Addr().String(), "-history-dir", t.TempDir()},
			": and -history-jetstream exclude each other"},
		{"replicas alone", []string{"-history-replicas", "3"}, `-history-replicas "3": must be 1 to 5, and more than 1 only with -history-jetstream`},
		{"no readers", []string{"-history-reads", "0"}, `-history-reads "0": must be 1 to 256`},
		{"no read queue", []string{"-history-read-queue", "0"}, `-history-read-queue "0": must be at least 1`},
		{"no read timeout", []string{"-history-read-timeout", "0s"}, `-history-read-timeout "0s": must be more than 0`},
		{"no JetStream", []string{"-history-jetstream", "-nats-url", "nats://" + plain.Addr().String()}, "(JetStream is not enabled on the NATS server, or not for this account)"},
		{"unreachable", []string{"-history-jetstream", "-nats-url", "nats://" + freeAddr(t)}, "-history-jetstream: cannot connect to NATS"},
		{"stream over the server's store", []string{"-history-jetstream", "-nats-url", "nats://" + js.Addr().String()}, "-history-store-max 1073741824 is the stream's cap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			code, out := runBinary(t, nil, append(tc.args, "-addr", "127.0.0.1:0", "-admin-addr", "")...)
			if code != 2 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, %q; want exit 2 and %q", code, out, tc.want)
			}
			if testing.Verbose() {
				t.Log(out)
			}
			if d := time.Since(t0); d > 15*time.Second {
				t.Fatalf("refused after %v", d)
			}
		})
	}
	code, out := runBinary(t, nil, "-t", "-history-dir", t.TempDir(), "-history-store-max", "10485760")
	if code != 0 {
		t.Fatalf("-history-store-max 10 MiB: exit %d, %q", code, out)
	}
	// -t checks the clustered store's settings without connecting: it
	// must not create or change the stream from ExecStartPre.
	unreachable := "nats://" + freeAddr(t)
	if code, out := runBinary(t, nil, "-t", "-history-jetstream", "-nats-url", unreachable); code != 0 {
		t.Fatalf("-t -history-jetstream, NATS unreachable: exit %d, %q", code, out)
	}
	code, out = runBinary(t, nil, "-t", "-history-jetstream", "-nats-url", unreachable, "-history-ttl", "1m")
	if code != 1 || !strings.Contains(out, "-history-jetstream: history: max age 1m0s is under the dedup window 2m0s") {
		t.Fatalf("-t -history-ttl 1m: exit %d, %q", code, out)
	}
}

// adminHistory is the "history" field of GET /healthz.
func adminHistory(t *testing.T, p *wstest.Process) string {
	t.Helper()
	resp, err := http.Get("http://" + p.AdminAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct{ Status, History string }
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %d %v", resp.StatusCode, err)
	}
	return h.History
}

// NATS going away under a -history-jetstream box: /healthz and /metrics
// say so, the box's room goes on under a box-local epoch (acked and
// delivered here), and once NATS is back the room is in the stream's
// epoch again, at the seq after the stream's last.
func TestBinaryClusteredHistoryOutage(t *testing.T) {
	store := t.TempDir()
	ns := natstest.StartJetStream(t, &natsserver.Options{StoreDir: store})
	port := ns.Addr().(*net.TCPAddr).Port
	p := wstest.StartBinary(t, "-nats-url", "nats://"+ns.Addr().String(), "-history-jetstream", "-history-store-max", "67108864")
	c := wstest.DialV1(t, p.Addr, "specialKey=k&room=r")
	c.ExpectUntil(t, "joined")
	send := func(id string) wstest.Envelope {
		t.Helper()
		c.Send("r", id, "text "+id)
		msgs, acks := readRoom(t, c, 1, 1)
		if m, a := msgs[0], acks[0]; m.ID != id || a.ID != id || m.Seq != a.Seq || m.Epoch != a.Epoch {
			t.Fatalf("send %s: message %s, ack %s", id, m.Raw, a.Raw)
		}
		return acks[0]
	}
	first := send("s1")
	if h := adminHistory(t, p); h != "ok" {
		t.Fatalf("/healthz history %q with NATS up", h)
	}
	for name, want := range map[string]float64{"wsd_history_up": 1, "wsd_history_store_connected": 1, "wsd_history_store_consuming": 1, "wsd_history_store_stored_total": 1} {
		if v := metricValue(t, p.AdminAddr, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}

	ns.Shutdown()
	wstest.Eventually(t, 10*time.Second, "/healthz to report the store disconnected", func() bool {
		return adminHistory(t, p) == "disconnected"
	})
	if v := metricValue(t, p.AdminAddr, "wsd_history_up"); v != 0 {
		t.Errorf("wsd_history_up %v with NATS down", v)
	}
	if local := send("s2"); local.Epoch == first.Epoch || local.Epoch == "" {
		t.Fatalf("with NATS down: %s, want a box-local epoch", local.Raw)
	}
	if v := metricValue(t, p.AdminAddr, "wsd_history_writes_failed_total"); v < 1 {
		t.Errorf("wsd_history_writes_failed_total %v", v)
	}

	natstest.StartJetStream(t, &natsserver.Options{Port: port, StoreDir: store})
	wstest.Eventually(t, 20*time.Second, "/healthz to report the store ok again", func() bool {
		return adminHistory(t, p) == "ok"
	})
	back := send("s3")
	if back.Epoch != first.Epoch || back.Seq != first.Seq+1 {
		t.Fatalf("NATS back: %s, want seq %d epoch %s", back.Raw, first.Seq+1, first.Epoch)
	}
}

// historyPermissions is the NATS account of docs/cluster-security.md for
// boxes with -history-jetstream: wsd's own subjects, the JetStream API of
// its one stream, and replies.
const historyPermissions = `
accounts {
  CHAT {
    jetstream: enabled
    users [
      { user: wsd, password: wsd-secret,
        permissions {
          publish { allow: ["wsd.>",
            "$JS.API.STREAM.CREATE.WSD_HISTORY", "$JS.API.STREAM.UPDATE.WSD_HISTORY", "$JS.API.STREAM.INFO.WSD_HISTORY",
            "$JS.API.STREAM.MSG.GET.WSD_HISTORY", "$JS.API.DIRECT.GET.WSD_HISTORY", "$JS.API.DIRECT.GET.WSD_HISTORY.>",
            "$JS.API.CONSUMER.CREATE.WSD_HISTORY.>", "$JS.API.CONSUMER.MSG.NEXT.WSD_HISTORY.>", "$JS.API.CONSUMER.DELETE.WSD_HISTORY.>"] }
          subscribe { allow: ["wsd.>", "_INBOX.>"] } } }
      { user: app, password: app-secret,
        permissions { publish { deny: ["wsd.>", "$JS.API.>"] }, subscribe { deny: ["wsd.>"] } } }
    ]
  }
}
`

// A box with -history-jetstream under the NATS permissions the docs give
// wsd's user: it stores, delivers and, restarted, reads the stream (no
// box-local epoch, no failed write), while another user of the account
// can neither write the stream's subjects nor reach its API.
func TestBinaryClusteredHistoryPermissions(t *testing.T) {
	conf := writeFile(t, filepath.Join(t.TempDir(), "nats.conf"), historyPermissions)
	opts, err := natsserver.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.StartJetStream(t, opts)
	args := []string{"-nats-url", "nats://" + ns.Addr().String(), "-nats-user", "wsd", "-nats-password", "wsd-secret",
		"-history-jetstream", "-history-store-max", "67108864"}
	p := wstest.StartBinary(t, args...)
	c := wstest.DialV1(t, p.Addr, "specialKey=k&room=r")
	c.ExpectUntil(t, "joined")
	for i := range 5 {
		c.Send("r", fmt.Sprintf("m%d", i), "hello")
	}
	msgs, _ := readRoom(t, c, 5, 5)
	epoch := msgs[0].Epoch
	checkRun(t, "under permissions", msgs, 1, epoch)

	c.Conn.Close()
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	p = wstest.StartBinary(t, args...)
	r := wstest.DialV1(t, p.Addr, "specialKey=r&room=r&since=2&epoch="+epoch)
	if j := r.ExpectUntil(t, "joined"); !j.Recovered || j.Epoch != epoch || j.Seq != 5 {
		t.Fatalf("after the restart: %s", j.Raw)
	}
	msgs, _ = readRoom(t, r, 3, 0)
	checkRun(t, "read under permissions", msgs, 3, epoch)
	for _, name := range []string{"wsd_history_writes_failed_total", "wsd_history_read_errors_total", "wsd_history_local_epochs_total"} {
		if v := metricValue(t, p.AdminAddr, name); v != 0 {
			t.Errorf("%s = %v", name, v)
		}
	}

	if testing.Verbose() {
		t.Log(p.Log())
	}
	app, err := nats.Connect("nats://"+ns.Addr().String(), nats.UserInfo("app", "app-secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	js, _ := jetstream.New(app)
	for what, try := range map[string]func(context.Context) error{
		"wrote the history stream's subjects": func(ctx context.Context) error {
			_, err := js.Publish(ctx, "wsd.h.forged", []byte("x"))
			return err
		},
		"reached the history stream's API": func(ctx context.Context) error {
			_, err := js.Stream(ctx, "WSD_HISTORY")
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := try(ctx); err == nil {
			t.Errorf("the app user %s", what)
		}
		cancel()
	}
}

// -history-jetstream over a tls:// NATS: the store's connection verifies
// the server with -nats-ca as the bridge does, two boxes share one
// order, and a box without the CA is refused at start, naming why.
func TestBinaryClusteredHistoryTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key, err := selfsigned.WriteFiles(dir, "nats", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	conf := writeFile(t, filepath.Join(dir, "nats.conf"), fmt.Sprintf("tls { cert_file: %q, key_file: %q }\n", cert, key))
	opts, err := natsserver.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.StartJetStream(t, opts)
	url := "tls://" + ns.Addr().String()
	var cs []*wstest.V1
	for i := range 2 {
		p := wstest.StartBinary(t, "-nats-url", url, "-nats-ca", cert, "-history-jetstream", "-history-store-max", "67108864")
		c := wstest.DialV1(t, p.Addr, fmt.Sprintf("specialKey=u%d&room=r", i))
		c.ExpectUntil(t, "joined")
		cs = append(cs, c)
	}
	cs[0].Send("r", "a", "over tls")
	cs[1].Send("r", "b", "over tls")
	m0, _ := readRoom(t, cs[0], 2, 1)
	m1, _ := readRoom(t, cs[1], 2, 1)
	checkRun(t, "box 0", m0, 1, m0[0].Epoch)
	for k := range m0 {
		if m0[k].ID != m1[k].ID || m0[k].Seq != m1[k].Seq || m0[k].Epoch != m1[k].Epoch {
			t.Fatalf("the boxes differ: %s, %s", m0[k].Raw, m1[k].Raw)
		}
	}
	code, out := runBinary(t, nil, "-nats-url", url, "-history-jetstream", "-history-store-max", "67108864", "-addr", "127.0.0.1:0", "-admin-addr", "")
	if code != 2 || !strings.Contains(out, "-history-jetstream: cannot connect to NATS") || !strings.Contains(out, "certificate") {
		t.Fatalf("without -nats-ca: exit %d, %q", code, out)
	}
}
