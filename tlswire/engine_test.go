package tlswire_test

// The engine tests pin what Conn relies on in crypto/tls beyond its
// documented API (see doc.go): that a Temporary transport error leaves a
// partial record buffered and is not sticky, that plaintext a short read
// did not take stays inside tls.Conn, that post-handshake records the read
// side writes (a KeyUpdate reply, an alert) come out through the transport
// ahead of what is sealed after them, and that close_notify reads as
// io.EOF. Both ends are real crypto/tls: the client is a tls.Client on a
// loopback socket, the server a Conn whose ciphertext the test carries by
// hand, so each case controls exactly which bytes the engine sees.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/internal/selfsigned"
	"github.com/wsd-chat/wsd/tlswire"
)

// pair is an established engine Conn and the real client talking to it.
type pair struct {
	srv    *tlswire.Conn
	raw    net.Conn // the server's end of the socket, read and written by the test
	client *tls.Conn
	keys   *keyLog
}

// owner sends the handshake's records on the socket, as session does.
type owner struct {
	srv  *tlswire.Conn
	raw  net.Conn
	done chan error
}

func (o *owner) FlushTLS() {
	if out := o.srv.TakeOutput(nil); len(out) > 0 {
		o.raw.Write(out)
	}
}

func (o *owner) TLSHandshakeDone(err error) { o.done <- err }

// keyLog keeps the client's TLS 1.3 application traffic secret, so a test
// can write a record the Go client itself never sends (a KeyUpdate).
type keyLog struct {
	mu     sync.Mutex
	secret []byte
}

func (k *keyLog) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, line := range strings.Split(string(p), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "CLIENT_TRAFFIC_SECRET_0" {
			k.secret, _ = hex.DecodeString(f[2])
		}
	}
	return len(p), nil
}

func serverConfig(t *testing.T) *tls.Config {
	t.Helper()
	now := time.Now()
	certPEM, keyPEM, err := selfsigned.PEM("engine", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
}

// newPair runs a handshake between a tls.Client and a Conn at version (0:
// crypto/tls's default, TLS 1.3).
func newPair(t *testing.T, version uint16) *pair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialed, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	keys := &keyLog{}
	client := tls.Client(dialed, &tls.Config{
		InsecureSkipVerify: true,
		MinVersion:         version,
		MaxVersion:         version,
		KeyLogWriter:       keys,
	})
	t.Cleanup(func() { client.Close(); raw.Close() })

	o := &owner{raw: raw, done: make(chan error, 1)}
	srv := tlswire.NewConn(serverConfig(t), tlswire.NewPool(1, 1), o)
	o.srv = srv
	t.Cleanup(srv.Close)
	clientErr := make(chan error, 1)
	go func() { clientErr <- client.Handshake() }()

	// The reactor's part: hand the engine what the socket gives until
	// the handshake reports its end.
	buf := make([]byte, 4096)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-o.done:
			if err != nil {
				t.Fatalf("server handshake: %v", err)
			}
			if err := <-clientErr; err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			if !srv.Established() {
				t.Fatal("handshake done but not Established")
			}
			p := &pair{srv: srv, raw: raw, client: client, keys: keys}
			// As the owner must after TLSHandshakeDone: nothing is left.
			if got, err := p.decrypt(nil, 4096); err != nil || len(got) != 0 {
				t.Fatalf("Decrypt(nil) after the handshake = %q, %v", got, err)
			}
			return p
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("handshake did not finish")
		}
		raw.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		n, err := raw.Read(buf)
		if n > 0 {
			if err := srv.Feed(buf[:n]); err != nil {
				t.Fatalf("Feed: %v", err)
			}
		}
		if err != nil && !isTimeout(err) {
			t.Fatalf("socket: %v", err)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// decrypt runs Decrypt with a read buffer of bufSize and returns all the
// plaintext it delivered.
func (p *pair) decrypt(ct []byte, bufSize int) ([]byte, error) {
	var got []byte
	err := p.srv.Decrypt(ct, make([]byte, bufSize), func(b []byte) bool {
		got = append(got, b...)
		return true
	})
	return got, err
}

// record has the client send plaintext and returns the one TLS record it
// makes, as the server's socket receives it.
func (p *pair) record(t *testing.T, plaintext string) []byte {
	t.Helper()
	if _, err := p.client.Write([]byte(plaintext)); err != nil {
		t.Fatal(err)
	}
	return readRecord(t, p.raw)
}

// readRecord reads exactly one TLS record from conn.
func readRecord(t *testing.T, conn net.Conn) []byte {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		t.Fatalf("record header: %v", err)
	}
	rec := make([]byte, 5+int(binary.BigEndian.Uint16(hdr[3:])))
	copy(rec, hdr)
	if _, err := io.ReadFull(conn, rec[5:]); err != nil {
		t.Fatalf("record body: %v", err)
	}
	return rec
}

// clientRead reads n bytes of plaintext on the client.
func (p *pair) clientRead(t *testing.T, n int) []byte {
	t.Helper()
	p.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, n)
	if _, err := io.ReadFull(p.client, got); err != nil {
		t.Fatalf("client read: %v", err)
	}
	return got
}

// versions are the protocol versions wsd accepts (ServerConfig's floor is
// TLS 1.2); the record layer differs between them.
var versions = []struct {
	name string
	v    uint16
}{{"TLS1.3", tls.VersionTLS13}, {"TLS1.2", tls.VersionTLS12}}

// The handshake runs on the pool, fed by the reactor: crypto/tls writes
// each flight to the transport before it reads the client's next one, so
// handing the output over before a blocking Read (Owner.FlushTLS) is
// enough for the handshake to make progress, at every version wsd takes.
func TestEngine_HandshakeProgressesThroughFeed(t *testing.T) {
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			p := newPair(t, ver.v)
			if got := p.srv.ConnectionState().Version; got != ver.v {
				t.Fatalf("negotiated version %#x, want %#x", got, ver.v)
			}
			if !p.srv.ConnectionState().HandshakeComplete {
				t.Fatal("ConnectionState says the handshake is not complete")
			}
		})
	}
}

// A record cut short is not an error: crypto/tls keeps it in its rawInput
// when the transport's Read fails with a Temporary error, and the next Read
// completes it. Decrypt depends on that to need no buffer of its own.
func TestEngine_PartialRecordCompletesOnNextRead(t *testing.T) {
	for _, ver := range versions {
		p := newPair(t, ver.v)
		for _, cut := range []struct {
			name string
			at   func(rec []byte) []int
		}{
			{"inside the header", func([]byte) []int { return []int{2} }},
			{"after the header", func([]byte) []int { return []int{5} }},
			{"before the last byte", func(rec []byte) []int { return []int{len(rec) - 1} }},
			{"byte by byte", func(rec []byte) []int {
				at := make([]int, len(rec)-1)
				for i := range at {
					at[i] = i + 1
				}
				return at
			}},
		} {
			t.Run(ver.name+"/"+cut.name, func(t *testing.T) {
				msg := "a record cut " + cut.name
				rec := p.record(t, msg)
				prev := 0
				for _, at := range cut.at(rec) {
					got, err := p.decrypt(rec[prev:at], 4096)
					if err != nil || len(got) != 0 {
						t.Fatalf("bytes %d..%d of %d: Decrypt = %q, %v; want nothing, no error", prev, at, len(rec), got, err)
					}
					prev = at
				}
				got, err := p.decrypt(rec[prev:], 4096)
				if err != nil || string(got) != msg {
					t.Fatalf("rest of the record: Decrypt = %q, %v; want %q", got, err, msg)
				}
			})
		}
	}
}

// "Would block" is not sticky: after Reads that found no ciphertext, the
// connection still reads the next record (crypto/tls does not record a
// Temporary error as the connection's read error).
func TestEngine_WouldBlockIsNotSticky(t *testing.T) {
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			p := newPair(t, ver.v)
			for i := range 3 {
				if got, err := p.decrypt(nil, 4096); err != nil || len(got) != 0 {
					t.Fatalf("empty Decrypt %d = %q, %v", i, got, err)
				}
			}
			rec := p.record(t, "after nothing")
			if got, err := p.decrypt(rec, 4096); err != nil || string(got) != "after nothing" {
				t.Fatalf("Decrypt = %q, %v", got, err)
			}
		})
	}
}

// Plaintext a Read had no room for stays inside tls.Conn and comes out of
// the next Read without new ciphertext: Decrypt reads with a fixed buffer,
// and its caller may stop it between pieces and resume with Decrypt(nil).
func TestEngine_UnreadPlaintextStaysForNextRead(t *testing.T) {
	p := newPair(t, 0)
	msg := strings.Repeat("0123456789", 10)
	rec := p.record(t, msg)
	var pieces []string
	err := p.srv.Decrypt(rec, make([]byte, 16), func(b []byte) bool {
		pieces = append(pieces, string(b))
		return false // stop after the first piece
	})
	if err != nil || len(pieces) != 1 || pieces[0] != msg[:16] {
		t.Fatalf("stopped Decrypt = %q, %v; want one piece %q", pieces, err, msg[:16])
	}
	rest, err := p.decrypt(nil, 16)
	if err != nil || string(rest) != msg[16:] {
		t.Fatalf("Decrypt(nil) = %q, %v; want the rest of the record %q", rest, err, msg[16:])
	}
}

// A client's KeyUpdate asking for one back is answered from inside Read:
// crypto/tls writes the reply to the transport and switches its write key
// there. Seal must put that reply ahead of the records it seals, else the
// client would read them under the old key. The Go client never sends a
// KeyUpdate, so the test writes it under the client's traffic secret (from
// its key log) as the first record after the handshake.
func TestEngine_KeyUpdateAnsweredInOrder(t *testing.T) {
	p := newPair(t, tls.VersionTLS13)
	p.keys.mu.Lock()
	secret := p.keys.secret
	p.keys.mu.Unlock()
	if secret == nil {
		t.Fatal("no CLIENT_TRAFFIC_SECRET_0 in the client's key log")
	}
	suite := p.client.ConnectionState().CipherSuite
	var h func() hash.Hash
	var keyLen int
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		h, keyLen = sha256.New, 16
	case tls.TLS_AES_256_GCM_SHA384:
		h, keyLen = sha512.New384, 32
	default:
		t.Skipf("cipher suite %s: this test writes AES-GCM records only", tls.CipherSuiteName(suite))
	}
	// KeyUpdate (type 24), update_requested.
	keyUpdate := []byte{24, 0, 0, 1, 1}
	rec := sealTLS13(t, h, keyLen, secret, 0, 22, keyUpdate)
	if got, err := p.decrypt(rec, 4096); err != nil || len(got) != 0 {
		t.Fatalf("Decrypt(KeyUpdate) = %q, %v; want nothing, no error", got, err)
	}
	if !p.srv.HasOutput() {
		t.Fatal("no reply to a KeyUpdate with update_requested waits in the Conn")
	}
	const msg = "sealed after the key update"
	out, err := p.srv.Seal(nil, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if p.srv.HasOutput() {
		t.Fatal("Seal left the KeyUpdate reply behind")
	}
	if _, err := p.raw.Write(out); err != nil {
		t.Fatal(err)
	}
	if got := p.clientRead(t, len(msg)); string(got) != msg {
		t.Fatalf("client read %q, want %q", got, msg)
	}
}

// sealTLS13 makes one TLS 1.3 record of content type typ, encrypted with
// AES-GCM under the traffic secret at sequence number seq (RFC 8446 5.2,
// 5.3, 7.3).
func sealTLS13(t *testing.T, h func() hash.Hash, keyLen int, secret []byte, seq uint64, typ byte, content []byte) []byte {
	t.Helper()
	key := expandLabel(t, h, secret, "key", keyLen)
	iv := expandLabel(t, h, secret, "iv", 12)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Clone(iv)
	for i := range 8 {
		nonce[len(nonce)-1-i] ^= byte(seq >> (8 * i))
	}
	inner := append(bytes.Clone(content), typ)
	hdr := []byte{23, 3, 3, 0, 0}
	binary.BigEndian.PutUint16(hdr[3:], uint16(len(inner)+aead.Overhead()))
	return aead.Seal(hdr, nonce, inner, hdr)
}

// expandLabel is HKDF-Expand-Label with an empty context.
func expandLabel(t *testing.T, h func() hash.Hash, secret []byte, label string, n int) []byte {
	t.Helper()
	full := "tls13 " + label
	info := []byte{byte(n >> 8), byte(n), byte(len(full))}
	info = append(info, full...)
	info = append(info, 0)
	out, err := hkdf.Expand(h, secret, string(info), n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The client's close_notify makes Read return io.EOF, which Decrypt passes
// on and session reads as the peer being done.
func TestEngine_CloseNotifyIsEOF(t *testing.T) {
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			p := newPair(t, ver.v)
			if err := p.client.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			rec := readRecord(t, p.raw)
			if _, err := p.decrypt(rec, 4096); !errors.Is(err, io.EOF) {
				t.Fatalf("Decrypt(close_notify) error = %v, want io.EOF", err)
			}
		})
	}
}

// A record that fails authentication is an error (not "would block"), and
// crypto/tls writes its alert to the transport from inside Read, where
// only HasOutput shows it.
func TestEngine_BadRecordIsErrorWithAlert(t *testing.T) {
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			p := newPair(t, ver.v)
			rec := p.record(t, "tampered with")
			rec[len(rec)-1] ^= 0xff
			got, err := p.decrypt(rec, 4096)
			if err == nil || errors.Is(err, io.EOF) || len(got) != 0 {
				t.Fatalf("Decrypt(bad record) = %q, %v; want a TLS error", got, err)
			}
			if !p.srv.HasOutput() {
				t.Fatal("no alert waits in the Conn after a bad record")
			}
		})
	}
}

// Seal takes more plaintext than one record holds (session seals up to a
// budget of frames at once) and returns every record it made in order.
func TestEngine_SealSpansRecords(t *testing.T) {
	for _, ver := range versions {
		t.Run(ver.name, func(t *testing.T) {
			p := newPair(t, ver.v)
			msg := bytes.Repeat([]byte("wss frames "), 100<<10/11)
			out, err := p.srv.Seal(nil, msg)
			if err != nil {
				t.Fatal(err)
			}
			go p.raw.Write(out)
			if got := p.clientRead(t, len(msg)); !bytes.Equal(got, msg) {
				t.Fatal("the client read something other than what was sealed")
			}
		})
	}
}

// Reader and writer run at once on a wss connection (the worker decrypts
// while a fan-out seals); crypto/tls keeps its read and write halves apart,
// and the transport must too. Run with -race.
func TestEngine_DecryptAndSealConcurrently(t *testing.T) {
	p := newPair(t, 0)
	const n = 50
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = p.record(t, "from the client")
	}
	sealed := make(chan []byte, 1)
	go func() {
		var all []byte
		for range n {
			out, err := p.srv.Seal(nil, []byte("to the client"))
			if err != nil {
				break
			}
			all = append(all, out...)
		}
		sealed <- all
	}()
	for i, rec := range recs {
		if got, err := p.decrypt(rec, 4096); err != nil || string(got) != "from the client" {
			t.Fatalf("record %d: Decrypt = %q, %v", i, got, err)
		}
	}
	all := <-sealed
	go p.raw.Write(all)
	want := strings.Repeat("to the client", n)
	if got := p.clientRead(t, len(want)); string(got) != want {
		t.Fatalf("client read %q", got)
	}
}
