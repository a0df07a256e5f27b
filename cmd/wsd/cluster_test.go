package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/wsd-chat/wsd/internal/natstest"
	"github.com/wsd-chat/wsd/internal/wstest"
)

// Two real wsd processes and an embedded NATS with a password: a room
// spans them, a key moves between them, and the password never shows in
// the logs.
func TestBinaryCluster(t *testing.T) {
	const secret = "s3cret-pa55"
	ns := natstest.Start(t, &natsserver.Options{Username: "wsd", Password: secret})
	addr := ns.Addr().String()
	a := wstest.StartBinary(t, "-nats-url", fmt.Sprintf("nats://wsd:%s@%s", secret, addr), "-box-id", "a")
	b := wstest.StartBinary(t, "-nats-url", "nats://"+addr, "-nats-user", "wsd", "-nats-password", secret, "-box-id", "b")
	bad := wstest.StartBinary(t, "-nats-url", "nats://"+addr, "-nats-user", "wsd", "-nats-password", "wrong", "-box-id", "c")

	ca := wstest.Dial(t, a.Addr, "specialKey=alice&room=r")
	cb := wstest.Dial(t, b.Addr, "specialKey=bob&room=r&support_gzip=1")
	cc := wstest.Dial(t, bad.Addr, "specialKey=carol&room=r")
	// No Sync across processes: retry until the subscriptions are in.
	i := 0
	wstest.Eventually(t, 10*time.Second, "a message to cross from a to b", func() bool {
		i++
		ca.WriteText(fmt.Sprintf("hi %d", i))
		got, _, err := ca.ReadMessage(time.Second)
		if err != nil || got != fmt.Sprintf("hi %d", i) {
			t.Fatalf("echo: %q %v", got, err)
		}
		got, _, err = cb.ReadMessage(200 * time.Millisecond)
		if err == nil && !strings.HasPrefix(got, "hi ") {
			t.Fatalf("bob got %q", got)
		}
		return err == nil
	})
	// The box that could not authenticate serves its own clients.
	cc.WriteText("alone")
	if got, _, err := cc.ReadMessage(time.Second); err != nil || got != "alone" {
		t.Fatalf("local chat on the box without NATS: %q %v", got, err)
	}
	// alice connects again on b: the one on a is replaced.
	wstest.Dial(t, b.Addr, "specialKey=alice&room=r")
	if code := ca.ExpectClose(t, 5*time.Second); code != 4001 {
		t.Fatalf("alice on a closed with %d", code)
	}
	for _, p := range []*wstest.Process{a, b, bad} {
		p.Signal(syscall.SIGTERM)
		if code := p.Wait(10 * time.Second); code != 0 {
			t.Errorf("exit %d", code)
		}
		if strings.Contains(p.Log(), secret) || strings.Contains(p.Log(), "wrong") {
			t.Errorf("a NATS password is in the log:\n%s", p.Log())
		}
	}
	if !strings.Contains(a.Log(), "box_id=a") || !strings.Contains(a.Log(), "redacted") {
		t.Errorf("cluster line missing:\n%s", a.Log())
	}
}

// -nats-bus-key-file: boxes with the key chat, a box without it is warned
// about at start and not heard; a new key in the file, reloaded on one box
// with SIGHUP, parts it from the other until that one reloads too.
func TestBinaryBusKey(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(ns.Shutdown)
	dir := t.TempDir()
	keyA, keyB := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	old, next := strings.Repeat("o", 32), strings.Repeat("n", 32)
	for _, f := range []string{keyA, keyB} {
		if err := os.WriteFile(f, []byte(old+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	url := "nats://" + ns.Addr().String()
	a := wstest.StartBinary(t, "-nats-url", url, "-box-id", "a", "-nats-bus-key-file", keyA)
	b := wstest.StartBinary(t, "-nats-url", url, "-box-id", "b", "-nats-bus-key-file", keyB)
	open := wstest.StartBinary(t, "-nats-url", url, "-box-id", "open")
	// The cluster line (and its warning) follows the listening line that
	// StartBinary waits for.
	wstest.Eventually(t, 5*time.Second, "the missing bus key warned about", func() bool {
		return strings.Contains(open.Log(), "no -nats-bus-key-file")
	})
	for _, p := range []*wstest.Process{a, b} {
		wstest.Eventually(t, 5*time.Second, "the cluster line", func() bool { return strings.Contains(p.Log(), "msg=cluster") })
		if strings.Contains(p.Log(), "no -nats-bus-key-file") {
			t.Errorf("warned about a missing bus key with one:\n%s", p.Log())
		}
	}
	ca := wstest.Dial(t, a.Addr, "specialKey=alice&room=r")
	cb := wstest.Dial(t, b.Addr, "specialKey=bob&room=r")
	co := wstest.Dial(t, open.Addr, "specialKey=olga&room=r")
	// crosses reports whether a text from "from" reaches "to" within a few
	// tries (no Sync across processes).
	n := 0
	crosses := func(from, to *wstest.Client) bool {
		for try := 0; try < 20; try++ {
			n++
			text := fmt.Sprintf("m%d", n)
			from.WriteText(text)
			// The box without the key hears the others (it checks
			// nothing): skip what came before the echo.
			for {
				got, _, err := from.ReadMessage(time.Second)
				if err != nil {
					t.Fatalf("echo of %q: %v", text, err)
				}
				if got == text {
					break
				}
			}
			for {
				got, _, err := to.ReadMessage(200 * time.Millisecond)
				if err != nil {
					break
				}
				if got == text {
					return true
				}
			}
		}
		return false
	}
	if !crosses(ca, cb) {
		t.Fatal("nothing crossed between the boxes with the key")
	}
	if crosses(co, ca) {
		t.Fatal("the box without the key was heard")
	}
	if err := os.WriteFile(keyA, []byte(next+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.Signal(syscall.SIGHUP)
	line := waitLog(t, a, "msg=reloaded")
	if !strings.Contains(line, "-nats-bus-key-file") || strings.Contains(line, next) {
		t.Errorf("reload line %q", line)
	}
	if crosses(ca, cb) {
		t.Fatal("crossed to a box with the old key only")
	}
	if err := os.WriteFile(keyB, []byte(next+"\n"+old+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.Signal(syscall.SIGHUP)
	waitLog(t, b, "msg=reloaded")
	if !crosses(ca, cb) || !crosses(cb, ca) {
		t.Fatal("nothing crossed after both reloads")
	}
	for _, p := range []*wstest.Process{a, b, open} {
		if strings.Contains(p.Log(), old) || strings.Contains(p.Log(), next) {
			t.Errorf("a bus key is in the log:\n%s", p.Log())
		}
	}
}
