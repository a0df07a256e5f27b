package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// The seed contract, kick, rooms, publish, reload and drain over wss://,
// with the real binary and gorilla clients.

func startWSS(t *testing.T, args ...string) (p *wstest.Process, certFile, keyFile, dir string) {
	t.Helper()
	dir = t.TempDir()
	certFile, keyFile = wstest.ValidCertFiles(t, dir, "first")
	p = wstest.StartBinary(t, append([]string{"-tls-cert", certFile, "-tls-key", keyFile}, args...)...)
	return p, certFile, keyFile, dir
}

// servedCN dials and reports the common name of the certificate presented.
func servedCN(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, wstest.InsecureTLS())
	if err != nil {
		t.Fatalf("tls dial: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestWSSSeedContract(t *testing.T) {
	p, certFile, _, _ := startWSS(t)
	tc := wstest.ClientTLS(t, certFile)
	plain := wstest.WSSDial(t, p.Addr, "specialKey=alice", tc)
	zipped := wstest.WSSDial(t, p.Addr, "specialKey=bob&support_gzip=1", tc)
	checkSeedChat(t, plain, zipped)

	// Same key: the first connection is replaced with 4001.
	second := wstest.WSSDial(t, p.Addr, "specialKey=alice", tc)
	plain.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ce *websocket.CloseError
	for {
		_, _, err := plain.ReadMessage()
		if err != nil {
			if !errors.As(err, &ce) || ce.Code != 4001 || ce.Text != "replaced" {
				t.Fatalf("replaced connection: %v, want close 4001 replaced", err)
			}
			break
		}
	}
	if err := second.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if got, _ := wstest.SeedRead(t, second); got != "still here" {
		t.Errorf("second connection got %q", got)
	}

	// A plain ws:// client on the wss:// port gets nowhere, and wsd lives on.
	if _, _, err := websocket.DefaultDialer.Dial("ws://"+p.Addr+"/?specialKey=x", nil); err == nil {
		t.Error("a ws:// upgrade succeeded on the wss:// listener")
	}
	second.WriteMessage(websocket.TextMessage, []byte("after"))
	if got, _ := wstest.SeedRead(t, second); got != "after" {
		t.Errorf("got %q", got)
	}
}

func TestWSSRoomsAndPublish(t *testing.T) {
	const token = "admin-secret"
	p, _, _, _ := startWSS(t, "-admin-token", token)
	a1 := wstest.WSSDial(t, p.Addr, "specialKey=a1&room=a", nil)
	a2 := wstest.WSSDial(t, p.Addr, "specialKey=a2&room=a&support_gzip=1", nil)
	b1 := wstest.WSSDial(t, p.Addr, "specialKey=b1&room=b", nil)
	g1 := wstest.WSSDial(t, p.Addr, "specialKey=g1", nil)

	a1.WriteMessage(websocket.TextMessage, []byte("in a"))
	for _, c := range []*websocket.Conn{a1, a2} {
		if got, _ := wstest.SeedRead(t, c); got != "in a" {
			t.Fatalf("room a member got %q", got)
		}
	}
	for body, want := range map[string]int{
		`{"room":"b","text":"to room b"}`: 1,
		`{"key":"a2","text":"to a2"}`:     1,
	} {
		if status, out := post(t, p, token, body); status != 200 || out["delivered"] != float64(want) {
			t.Fatalf("publish %s: %d %v", body, status, out)
		}
	}
	if got, _ := wstest.SeedRead(t, b1); got != "to room b" {
		t.Fatalf("b1 got %q", got)
	}
	if got, _ := wstest.SeedRead(t, a2); got != "to a2" {
		t.Fatalf("a2 got %q", got)
	}
	if status, out := post(t, p, token, `{"room":"*","text":"to everyone"}`); status != 200 || out["delivered"] != float64(4) {
		t.Fatalf("publish to everyone: %d %v", status, out)
	}
	for _, c := range []*websocket.Conn{a1, a2, b1, g1} {
		if got, _ := wstest.SeedRead(t, c); got != "to everyone" {
			t.Fatalf("got %q, want the publish to everyone (room isolation broken?)", got)
		}
	}
	m := wstest.Scrape(t, p.AdminAddr)
	if m.Get("wsd_tls_handshakes_total") != 4 {
		t.Errorf("wsd_tls_handshakes_total = %v, want 4", m.Get("wsd_tls_handshakes_total"))
	}
}

func TestWSSReloadOnSIGHUP(t *testing.T) {
	p, certFile, keyFile, dir := startWSS(t)
	old := wstest.WSSDial(t, p.Addr, "specialKey=old", nil)
	if cn := servedCN(t, p.Addr); cn != "first" {
		t.Fatalf("serving %q", cn)
	}

	// A good pair: new handshakes see it, the old connection keeps working.
	nc, nk := wstest.ValidCertFiles(t, dir, "second")
	os.Rename(nc, certFile)
	os.Rename(nk, keyFile)
	p.Signal(syscall.SIGHUP)
	wstest.Eventually(t, 5*time.Second, "the new certificate", func() bool { return servedCN(t, p.Addr) == "second" })
	if !strings.Contains(p.Log(), "tls certificate reloaded") {
		t.Error("no reload logged")
	}
	old.WriteMessage(websocket.TextMessage, []byte("still up"))
	if got, _ := wstest.SeedRead(t, old); got != "still up" {
		t.Fatalf("old connection got %q", got)
	}

	// Mismatched files: logged, and the second pair stays.
	_, otherKey := wstest.ValidCertFiles(t, dir, "third")
	os.Rename(otherKey, keyFile)
	p.Signal(syscall.SIGHUP)
	wstest.Eventually(t, 5*time.Second, "the failed reload logged", func() bool {
		return strings.Contains(p.Log(), "tls reload failed")
	})
	if !strings.Contains(p.Log(), "private key does not match public key") {
		t.Errorf("the failed reload does not say why:\n%s", p.Log())
	}
	if cn := servedCN(t, p.Addr); cn != "second" {
		t.Fatalf("after a failed reload serving %q", cn)
	}
	wstest.WSSDial(t, p.Addr, "specialKey=new", nil)
}

func TestWSSDrainOnSIGTERM(t *testing.T) {
	p, _, _, _ := startWSS(t, "-shutdown-timeout", "5s")
	a := wstest.WSSDial(t, p.Addr, "specialKey=a", nil)
	b := wstest.WSSDial(t, p.Addr, "specialKey=b&support_gzip=1", nil)
	checkSIGTERMDrain(t, p, a, b)
}

func TestWSSBadCertificateFailsAtStart(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	goodCert, goodKey := wstest.ValidCertFiles(t, dir, "good")
	_, otherKey := wstest.ValidCertFiles(t, dir, "other")
	expCert, expKey := wstest.CertFiles(t, dir, "expired", now.Add(-48*time.Hour), now.Add(-time.Hour))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"expired", []string{"-tls-cert", expCert, "-tls-key", expKey}, "expired at"},
		{"mismatched", []string{"-tls-cert", goodCert, "-tls-key", otherKey}, "private key does not match public key"},
		{"missing", []string{"-tls-cert", dir + "/nope.crt", "-tls-key", goodKey}, "no such file"},
		{"cert without key", []string{"-tls-cert", goodCert}, "and -tls-key must be given together"},
	} {
		var stderr bytes.Buffer
		args := append(tc.args, "-addr", "127.0.0.1:0", "-admin-addr", "")
		if code := run(args, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tc.name, code, stderr.String(), tc.want)
		}
	}
}
