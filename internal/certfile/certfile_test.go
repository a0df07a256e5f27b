package certfile_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/certfile"
	"github.com/wsd-chat/wsd/internal/wstest"
)

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	goodCert, goodKey := wstest.ValidCertFiles(t, dir, "good")
	_, otherKey := wstest.ValidCertFiles(t, dir, "other")
	expCert, expKey := wstest.CertFiles(t, dir, "expired", now.Add(-48*time.Hour), now.Add(-time.Hour))
	futCert, futKey := wstest.CertFiles(t, dir, "future", now.Add(time.Hour), now.Add(48*time.Hour))
	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, nil, 0o600)

	if _, err := certfile.Load(goodCert, goodKey); err != nil {
		t.Fatalf("valid pair refused: %v", err)
	}
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"mismatched key", goodCert, otherKey, "private key does not match public key"},
		{"expired", expCert, expKey, "expired at"},
		{"not yet valid", futCert, futKey, "not valid before"},
		{"missing file", filepath.Join(dir, "nope.crt"), goodKey, "no such file"},
		{"empty certificate", empty, goodKey, "PEM data"},
		{"key as certificate", goodKey, goodKey, "certificate"},
		{"no key", goodCert, "", "both a certificate and a key"},
	} {
		_, err := certfile.Load(tc.cert, tc.key)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func TestReloadKeepsOldOnFailure(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := wstest.ValidCertFiles(t, dir, "live")
	c, err := certfile.Load(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cn := func() string {
		got, _ := c.GetCertificate(&tls.ClientHelloInfo{})
		return got.Leaf.Subject.CommonName
	}
	if cn() != "live" {
		t.Fatalf("serving %q", cn())
	}

	// A broken key file: the reload fails and the old pair stays.
	os.WriteFile(keyFile, []byte("garbage"), 0o600)
	if err := c.Reload(); err == nil {
		t.Fatal("reload of a garbage key succeeded")
	}
	if cn() != "live" {
		t.Fatalf("after a failed reload serving %q", cn())
	}

	// An expired replacement is refused too.
	now := time.Now()
	ec, ek := wstest.CertFiles(t, dir, "expired", now.Add(-48*time.Hour), now.Add(-time.Hour))
	os.Rename(ec, certFile)
	os.Rename(ek, keyFile)
	if err := c.Reload(); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("reload of an expired pair: %v", err)
	}
	if cn() != "live" {
		t.Fatalf("after refusing an expired pair serving %q", cn())
	}

	// A good replacement is picked up.
	nc, nk := wstest.ValidCertFiles(t, dir, "renewed")
	os.Rename(nc, certFile)
	os.Rename(nk, keyFile)
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	if cn() != "renewed" || c.Leaf().Subject.CommonName != "renewed" {
		t.Fatalf("after reload serving %q", cn())
	}
}
