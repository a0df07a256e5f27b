package wstest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/selfsigned"
)

// CertFiles writes a self-signed ECDSA P-256 certificate for 127.0.0.1 and
// localhost, valid from notBefore to notAfter, and its key as PEM files in
// dir, named NAME.crt and NAME.key. The subject's common name is name, so
// a test can tell certificates apart after a reload.
func CertFiles(t testing.TB, dir, name string, notBefore, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, err := selfsigned.WriteFiles(dir, name, notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// ValidCertFiles is CertFiles valid from an hour ago for a day.
func ValidCertFiles(t testing.TB, dir, name string) (certFile, keyFile string) {
	return CertFiles(t, dir, name, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
}

// ClientTLS is a client configuration that trusts only the certificate in
// certFile (so a test also checks which certificate the server presents).
func ClientTLS(t testing.TB, certFile string) *tls.Config {
	t.Helper()
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("no certificate in %s", certFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// InsecureTLS accepts any server certificate; tests that check the
// certificate look at ConnectionState themselves.
func InsecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }
