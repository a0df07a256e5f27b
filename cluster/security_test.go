package cluster_test

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/wsd-chat/wsd/cluster"
	"github.com/wsd-chat/wsd/internal/natstest"
	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/session"
)

// selfSignedTLS returns a server TLS config for 127.0.0.1 and the PEM file
// of its certificate, which a client trusts as its CA.
func selfSignedTLS(t *testing.T) (*tls.Config, string) {
	t.Helper()
	certFile, keyFile := wstest.ValidCertFiles(t, t.TempDir(), "nats")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, certFile
}

// TLS to NATS with a CA file and a token: two boxes chat through it; a
// box with the wrong token serves its own clients and counts what it
// could not send.
func TestTLSAndToken(t *testing.T) {
	tc, ca := selfSignedTLS(t)
	ns := natstest.Start(t, &natsserver.Options{TLS: true, TLSConfig: tc, TLSTimeout: 5, Authorization: "s3cret-token"})
	url := fmt.Sprintf("tls://%s", ns.Addr().String())
	secure := func(token string) boxOpt {
		return func(c *cluster.Config, _ *serverConfig) { c.CAFile, c.Token = ca, token }
	}
	a := startBox(t, url, "a", secure("s3cret-token"))
	b := startBox(t, url, "b", secure("s3cret-token"))
	bad := startBox(t, url, "bad", secure("wrong"))
	for _, bx := range []*box{a, b} {
		wstest.Eventually(t, 10*time.Second, "connected over TLS", bx.br.Stats().Connected.Load)
	}
	ca1 := wstest.Dial(t, a.addr(), "specialKey=x")
	cb1 := wstest.Dial(t, b.addr(), "specialKey=y")
	cbad := wstest.Dial(t, bad.addr(), "specialKey=z")
	syncAll(t, []*box{a, b})
	ca1.WriteText("over tls")
	expectText(t, ca1, "over tls", false)
	expectText(t, cb1, "over tls", false)
	expectSilence(t, cbad, 50*time.Millisecond)
	cbad.WriteText("alone")
	expectText(t, cbad, "alone", false)
	if bad.br.Stats().Connected.Load() || bad.br.Stats().Dropped(cluster.DropDisconnected) == 0 {
		t.Errorf("box with the wrong token: connected %v, dropped %d", bad.br.Stats().Connected.Load(),
			bad.br.Stats().Dropped(cluster.DropDisconnected))
	}
	expectSilence(t, ca1, 50*time.Millisecond)
}

// Messages near NATS' max_payload: one that fits crosses (the receiving
// box gzips it), one whose text does not fit stays on its box and is
// counted; POST /publish says so.
func TestMaxPayload(t *testing.T) {
	ns := natstest.Start(t, &natsserver.Options{MaxPayload: 1024})
	a := startBox(t, ns.ClientURL(), "a")
	b := startBox(t, ns.ClientURL(), "b")
	for _, bx := range []*box{a, b} {
		wstest.Eventually(t, 10*time.Second, "connected", bx.br.Stats().Connected.Load)
	}
	sa := wstest.Dial(t, a.addr(), "specialKey=s&support_gzip=1")
	rb := wstest.Dial(t, b.addr(), "specialKey=r&support_gzip=1")
	syncAll(t, []*box{a, b})
	// 900 bytes that do not compress.
	noise := make([]byte, 450)
	rand.Read(noise)
	big := fmt.Sprintf("%x", noise)
	sa.WriteText(big)
	expectText(t, sa, big, true)
	expectText(t, rb, big, true)
	if d := a.hub().Publish("", []byte(big+big)); d.Local != 1 || d.Cluster != session.ClusterFailed || d.Seq == 0 {
		t.Fatalf("1800 bytes: %+v", d)
	}
	expectText(t, sa, big+big, true)
	expectSilence(t, rb, 100*time.Millisecond)
	if d := a.br.Stats().Dropped(cluster.DropTooLarge); d != 1 {
		t.Errorf("too_large drops %d, want 1", d)
	}
	if g := b.hub().Stats().GzipEncodings.Load(); g != 1 {
		t.Errorf("box b built %d gzip frames, want 1", g)
	}
}

// A NATS URL that does not parse must not come back in the error (and so
// in wsd's log) with the password inside it.
func TestConnectErrorHidesCredentials(t *testing.T) {
	for _, u := range []string{"nats://alice:s3cr%et@127.0.0.1:4222", "nats://tok en@127.0.0.1:4222"} {
		b, err := cluster.New(cluster.Config{URL: u})
		if err == nil {
			err = b.Start(nil)
		}
		if err == nil {
			t.Fatalf("%q: no error", u)
		}
		if strings.Contains(err.Error(), "s3cr") || strings.Contains(err.Error(), "tok en") {
			t.Errorf("%q: error shows the credentials: %v", u, err)
		}
	}
}
