// Package certfile loads and reloads the wss certificate and key for the
// process: the PEM pair named by -tls-cert and -tls-key, checked when it is
// read (it parses, the key matches, it is valid now), and swapped in for new
// handshakes on reload. The TLS engine (package tlswire) only sees the
// tls.Config built here; it never reads a file.
package certfile

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Certificate is the server's certificate and key, loaded from two PEM
// files and re-read by Reload. New handshakes pick up the current pair
// through GetCertificate; established connections are not touched (their
// keys were agreed at the handshake).
type Certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// Load reads and checks certFile and keyFile: both must parse,
// the key must match the certificate, and the certificate must be valid now.
func Load(certFile, keyFile string) (*Certificate, error) {
	c := &Certificate{certFile: certFile, keyFile: keyFile}
	pair, err := loadPair(certFile, keyFile, time.Now())
	if err != nil {
		return nil, err
	}
	c.cur.Store(pair)
	return c, nil
}

// Reload re-reads the files. On any error the certificate in use is kept
// and the error says why the new one was refused.
func (c *Certificate) Reload() error {
	pair, err := loadPair(c.certFile, c.keyFile, time.Now())
	if err != nil {
		return err
	}
	c.cur.Store(pair)
	return nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// Leaf returns the parsed certificate in use (for logs: subject, expiry).
func (c *Certificate) Leaf() *x509.Certificate { return c.cur.Load().Leaf }

// ServerConfig is the TLS configuration for the client listener: Go's
// defaults (cipher suites, curves, session tickets) from TLS 1.2 up, ALPN
// http/1.1 (a WebSocket upgrade is an HTTP/1.1 request), and the
// certificate from c.
func ServerConfig(c *Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
		GetCertificate: c.GetCertificate,
	}
}

func loadPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("both a certificate and a key file are needed")
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		// crypto/tls says what is wrong ("private key does not match public
		// key", "failed to find any PEM data in certificate input").
		return nil, fmt.Errorf("certificate %s, key %s: %w", certFile, keyFile, err)
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("certificate %s: %w", certFile, err)
		}
	}
	leaf := pair.Leaf
	const layout = "2006-01-02 15:04:05 MST"
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("certificate %s expired at %s", certFile, leaf.NotAfter.UTC().Format(layout))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("certificate %s is not valid before %s", certFile, leaf.NotBefore.UTC().Format(layout))
	}
	return &pair, nil
}
