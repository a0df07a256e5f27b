package history

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsd-chat/wsd/chat"
)

func readAll(t testing.TB, l *Log, room string, after uint64, max int) ([]got, chat.Info) {
	t.Helper()
	var out []got
	info, err := l.Read(room, after, max, func(m *chat.Message) {
		out = append(out, got{m.Room, m.Epoch, m.From, string(m.ID), string(m.Text), m.Seq, m.TS})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, info
}

// Closing and reopening the store keeps each room's epoch and seq, and
// Read returns exactly what the room limit retained.
func TestReopenKeepsPosition(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxMsgsPerRoom = 20
	l := openEmbedded(t, cfg)
	epochs := map[string]string{}
	for i := range 30 {
		for _, room := range []string{"big", "small", ""} {
			if room != "big" && i >= 5 {
				continue
			}
			r := submit(t, l, chat.Message{Room: room, From: "k", Text: text(i)})
			if r.err != nil || r.st.Seq != uint64(i+1) {
				t.Fatalf("%q %d: %+v", room, i, r)
			}
			epochs[room] = r.st.Epoch
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openEmbedded(t, cfg)
	for _, tc := range []struct {
		room               string
		after              uint64
		max                int
		seq, first, wantLo uint64
		n                  int
	}{
		{"big", 0, 100, 30, 11, 11, 20},
		{"big", 25, 100, 30, 11, 26, 5},
		{"big", 0, 3, 30, 11, 28, 3},
		{"big", 30, 10, 30, 11, 0, 0},
		{"big", 0, 0, 30, 11, 0, 0},
		{"small", 0, 100, 5, 1, 1, 5},
		{"", 2, 2, 5, 1, 4, 2}, // the last max
	} {
		ms, info := readAll(t, l, tc.room, tc.after, tc.max)
		want := chat.Info{Room: tc.room, Seq: tc.seq, Epoch: epochs[tc.room], First: tc.first, Len: int(tc.seq - tc.first + 1), Bytes: info.Bytes}
		if info != want {
			t.Fatalf("%+v: info %+v, want %+v", tc, info, want)
		}
		if len(ms) != tc.n {
			t.Fatalf("%+v: read %d", tc, len(ms))
		}
		for i, g := range ms {
			if g.Seq != tc.wantLo+uint64(i) || g.Epoch != epochs[tc.room] || g.Text != string(text(int(g.Seq-1))) {
				t.Fatalf("%+v: message %d = %+v", tc, i, g)
			}
		}
	}
	rec := newRecorder()
	if err := l.Start(rec); err != nil {
		t.Fatal(err)
	}
	r := submit(t, l, chat.Message{Room: "big", From: "k", Text: []byte("after")})
	if r.err != nil || r.st.Seq != 31 || r.st.Epoch != epochs["big"] {
		t.Fatalf("after reopen: %+v", r)
	}
	if ms := rec.wait(t, 1); ms[0].Seq != 31 || len(rec.resetList()) != 0 {
		t.Fatalf("delivered %+v resets %v", ms, rec.resetList())
	}
}

// Messages on wsd's subjects that wsd did not write are dropped and
// counted, never delivered nor read.
func TestForeignMessagesDropped(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxText = 1000
	l := openEmbedded(t, cfg)
	rec := newRecorder()
	if err := l.Start(rec); err != nil {
		t.Fatal(err)
	}
	first := submit(t, l, chat.Message{Room: "f", From: "k", Text: []byte("one")})
	if first.err != nil {
		t.Fatal(first.err)
	}
	rec.wait(t, 1)
	body := func(txt string) []byte { return appendBody(nil, &chat.Message{From: "x", Text: []byte(txt)}) }
	hdr := func(kv ...string) nats.Header {
		h := nats.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	ep := first.st.Epoch
	foreign := []struct {
		name string
		subj string
		msg  *nats.Msg
	}{
		{"no headers", "wsd.h.f", &nats.Msg{Data: []byte("hello")}},
		{"wrong version", "wsd.h.f", &nats.Msg{Header: hdr(hdrVersion, "2", hdrSeq, "2", hdrEpoch, ep, hdrTS, "1", hdrPrev, "1"), Data: body("v2")}},
		{"bad seq", "wsd.h.f", &nats.Msg{Header: hdr(hdrVersion, "1", hdrSeq, "x", hdrEpoch, ep, hdrTS, "1", hdrPrev, "1"), Data: body("bad")}},
		{"two seqs", "wsd.h.f", &nats.Msg{Header: hdr(hdrVersion, "1", hdrSeq, "2", hdrSeq, "3", hdrEpoch, ep, hdrTS, "1", hdrPrev, "1"), Data: body("two")}},
		{"huge", "wsd.h.f", &nats.Msg{Header: header(2, ep, 1, 1), Data: body(strings.Repeat("h", 1001))}},
		{"bad body", "wsd.h.f", &nats.Msg{Header: header(2, ep, 1, 1), Data: []byte{0xff, 0xff, 0xff}}},
		{"bad utf8", "wsd.h.f", &nats.Msg{Header: header(2, ep, 1, 1), Data: body("\xff\xfe")}},
		{"forged seq", "wsd.h.f", &nats.Msg{Header: header(7, ep, 1, 1), Data: body("forged")}},
		{"replayed seq", "wsd.h.f", &nats.Msg{Header: header(1, ep, 1, 0), Data: body("replay")}},
		{"epoch change mid-way", "wsd.h.f", &nats.Msg{Header: header(2, "otherep", 1, 1), Data: body("other")}},
		{"bad room token", "wsd.h.f!", &nats.Msg{Header: header(1, "e1", 1, 0), Data: body("room")}},
		{"long room token", "wsd.h." + strings.Repeat("r", 65), &nats.Msg{Header: header(1, "e1", 1, 0), Data: body("room")}},
		{"extra token", "wsd.h.f.g", &nats.Msg{Header: header(1, "e1", 1, 0), Data: body("room")}},
	}
	for _, f := range foreign {
		f.msg.Subject = f.subj
		if _, err := l.js.PublishMsg(t.Context(), f.msg); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
	}
	// The next wsd message: the room's last stored message is foreign, so
	// it starts a new epoch, which is delivered.
	next := submit(t, l, chat.Message{Room: "f", From: "k", Text: []byte("two")})
	if next.err != nil || next.st.Seq != 1 || next.st.Epoch == ep {
		t.Fatalf("after foreign: %+v", next)
	}
	ms := rec.wait(t, 2)
	time.Sleep(50 * time.Millisecond) // nothing else may arrive
	if ms = rec.all(); len(ms) != 2 || ms[0].Text != "one" || ms[1].Text != "two" {
		t.Fatalf("delivered %+v", ms)
	}
	if s := l.Stats(); s.Foreign < uint64(len(foreign)) || s.Delivered != 2 {
		t.Fatalf("foreign %d (want >= %d), delivered %d", s.Foreign, len(foreign), s.Delivered)
	}
	got, info := readAll(t, l, "f", 0, 100)
	if len(got) != 1 || got[0].Text != "two" || info.Seq != 1 || info.Epoch != next.st.Epoch {
		t.Fatalf("read %+v %+v", got, info)
	}
	// A foreign message as the last one: Read gives no position (the next
	// message starts an epoch), and never the foreign one.
	if _, err := l.js.PublishMsg(t.Context(), &nats.Msg{Subject: "wsd.h.f", Header: header(2, next.st.Epoch, 1, 1), Data: body("forged2")}); err != nil {
		t.Fatal(err)
	}
	if got, info := readAll(t, l, "f", 0, 100); len(got) != 0 || info.Seq != 0 {
		t.Fatalf("read after forged last: %+v %+v", got, info)
	}
}

// A message the store cannot take (over its byte limit) fails in done
// and is delivered nowhere.
func TestStoreFull(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBytes, cfg.MaxStore = 8<<10, 8<<10
	l := openEmbedded(t, cfg)
	rec := newRecorder()
	l.Start(rec)
	r := submit(t, l, chat.Message{Room: "r", From: "k", Text: []byte(strings.Repeat("x", 9<<10))})
	if r.err == nil || errors.Is(r.err, chat.ErrUnavailable) {
		t.Fatalf("over the store: %+v", r)
	}
	t.Logf("store full: %v", r.err)
	ok := submit(t, l, chat.Message{Room: "r", From: "k", Text: []byte("small")})
	if ok.err != nil || ok.st.Seq != 1 {
		t.Fatalf("small after: %+v", ok)
	}
	if ms := rec.wait(t, 1); len(ms) != 1 || ms[0].Text != "small" {
		t.Fatalf("delivered %+v", ms)
	}
	if s := l.Stats(); s.Failed != 1 {
		t.Fatalf("failed %d", s.Failed)
	}
}

// With the server gone, Submit fails within the publish timeout with
// ErrUnavailable; Read fails too; Close does not hang.
func TestServerDown(t *testing.T) {
	cfg := testConfig(t)
	cfg.PublishTimeout = 300 * time.Millisecond
	cfg.ReadTimeout = 300 * time.Millisecond
	l := openEmbedded(t, cfg)
	l.Start(newRecorder())
	if r := submit(t, l, chat.Message{Room: "r", Text: []byte("a")}); r.err != nil {
		t.Fatal(r.err)
	}
	l.ns.Shutdown()
	for _, room := range []string{"r", "other"} {
		t0 := time.Now()
		r := submit(t, l, chat.Message{Room: room, Text: []byte("b")})
		if took := time.Since(t0); !errors.Is(r.err, chat.ErrUnavailable) || took > cfg.PublishTimeout+time.Second {
			t.Fatalf("%s: %+v after %v", room, r, took)
		}
	}
	if _, err := l.Read("r", 0, 10, func(*chat.Message) {}); !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("read: %v", err)
	}
	if s := l.Stats(); s.Unavailable != 2 || s.Connected {
		t.Fatalf("stats %+v", s)
	}
	done := make(chan struct{})
	go func() { l.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs")
	}
	if r := submit(t, l, chat.Message{Room: "r", Text: []byte("c")}); !errors.Is(r.err, chat.ErrUnavailable) {
		t.Fatalf("after close: %+v", r)
	}
}

func TestOpenErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	notWritable := t.TempDir()
	if os.Getuid() == 0 {
		notWritable = "/proc" // root writes anywhere chmod allows
	} else {
		os.Chmod(notWritable, 0o500)
		t.Cleanup(func() { os.Chmod(notWritable, 0o700) })
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no dir", Config{}, "needs a directory"},
		{"dir is a file", Config{Dir: filepath.Join(file, "sub")}, "store dir"},
		{"not writable", Config{Dir: notWritable}, "not writable"},
		{"short dedup", Config{Dir: t.TempDir(), Duplicates: time.Minute}, "dedup window"},
		{"bad stream", Config{Dir: t.TempDir(), Stream: "a.b"}, "stream name"},
		{"bad prefix", Config{Dir: t.TempDir(), Prefix: "a.*"}, "prefix"},
		{"store under bytes", Config{Dir: t.TempDir(), MaxBytes: 2 << 20, MaxStore: 1 << 20}, "max store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := OpenEmbedded(tc.cfg)
			if err == nil {
				l.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
		})
	}
}

// A second OpenEmbedded on a directory in use fails with ErrLocked, from
// this process and from another one; the lock goes with its holder.
func TestDirLocked(t *testing.T) {
	cfg := testConfig(t)
	l := openEmbedded(t, cfg)
	if _, err := OpenEmbedded(cfg); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open in process: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOpen$")
	cmd.Env = append(os.Environ(), "WSD_HISTORY_HELPER_DIR="+cfg.Dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "locked:") || !strings.Contains(string(out), ErrLocked.Error()) {
		t.Fatalf("other process: %v: %s", err, out)
	}
	l.Close()
	again := openEmbedded(t, cfg)
	again.Close()
}

// TestHelperOpen is the other process of TestDirLocked.
func TestHelperOpen(t *testing.T) {
	dir := os.Getenv("WSD_HISTORY_HELPER_DIR")
	if dir == "" {
		t.Skip("helper")
	}
	_, err := OpenEmbedded(Config{Dir: dir})
	fmt.Printf("locked: %v\n", err)
}

// A damaged store (garbage in place of the stream's files) makes
// OpenEmbedded fail clearly or come up working, within its start timeout,
// never hang.
func TestCorruptStore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string // relative to the stream's dir
	}{
		{"message block", []string{"msgs/1.blk"}},
		{"index", []string{"msgs/index.db"}},
		{"stream meta", []string{"meta.inf", "meta.sum"}},
		{"everything", []string{"msgs/1.blk", "msgs/index.db", "meta.inf", "meta.sum"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.StartTimeout = 5 * time.Second
			l := openEmbedded(t, cfg)
			for i := range 20 {
				submit(t, l, chat.Message{Room: "r", Text: text(i)})
			}
			l.Close()
			sdir := filepath.Join(cfg.Dir, "jetstream", "$G", "streams", DefaultStream)
			for _, f := range tc.files {
				garbage := []byte(strings.Repeat("\x00garbage\xff", 300))
				if err := os.WriteFile(filepath.Join(sdir, f), garbage, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			t0 := time.Now()
			l, err := OpenEmbedded(cfg)
			t.Logf("reopen after %v: %v", time.Since(t0), err)
			if time.Since(t0) > cfg.StartTimeout+2*time.Second {
				t.Fatal("OpenEmbedded took longer than its start timeout")
			}
			if err != nil {
				return
			}
			defer l.Close()
			l.Start(newRecorder())
			_, info := readAll(t, l, "r", 0, 100)
			r := submit(t, l, chat.Message{Room: "r", Text: []byte("after")})
			if r.err != nil {
				t.Fatalf("submit after degraded start: %v", r.err)
			}
			if info.Seq != 0 && (r.st.Epoch != info.Epoch || r.st.Seq != info.Seq+1) {
				t.Fatalf("read %+v, then stamped %+v", info, r.st)
			}
			t.Logf("degraded: read %+v, next %+v", info, r.st)
		})
	}
}
