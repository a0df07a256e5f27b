package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/natstest"
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
}
