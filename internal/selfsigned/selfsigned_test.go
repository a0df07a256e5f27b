package selfsigned

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWriteFiles: the files load as a key pair whose certificate names
// 127.0.0.1 and localhost, verifies against itself, and is private to the
// owner.
func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	nb, na := time.Now().Add(-time.Hour).Truncate(time.Second), time.Now().Add(time.Hour).Truncate(time.Second)
	certFile, keyFile, err := WriteFiles(dir, "box", nb, na)
	if err != nil {
		t.Fatal(err)
	}
	if certFile != filepath.Join(dir, "box.crt") || keyFile != filepath.Join(dir, "box.key") {
		t.Fatalf("files %s %s", certFile, keyFile)
	}
	for _, f := range []string{certFile, keyFile} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st.Mode(), err)
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "box" || !cert.NotBefore.Equal(nb) || !cert.NotAfter.Equal(na) {
		t.Fatalf("subject %q, valid %v to %v", cert.Subject.CommonName, cert.NotBefore, cert.NotAfter)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: roots}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	other, _, err := PEM("box", nb, na)
	if err != nil {
		t.Fatal(err)
	}
	pemCert, _ := os.ReadFile(certFile)
	if string(other) == string(pemCert) {
		t.Fatal("two certificates are the same")
	}
}
