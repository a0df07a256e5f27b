package session

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/internal/selfsigned"
	"github.com/wsd-chat/wsd/internal/wstest"
)

// wssConfig is a Config whose connections are wss:// with a throwaway
// certificate.
func wssConfig(t *testing.T, cfg Config) Config {
	t.Helper()
	now := time.Now()
	certPEM, keyPEM, err := selfsigned.PEM("session", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	return cfg
}

// wssMember accepts a socketpair end on h and upgrades it over TLS as key;
// sndbuf > 0 shrinks the server's send buffer so frames queue at once. It
// returns the server's Conn and the client's reader of frames.
func wssMember(t *testing.T, h *Hub, key string, sndbuf int) (*Conn, *bufio.Reader, *tls.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sndbuf > 0 {
		_ = unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf)
	}
	f := os.NewFile(uintptr(fds[1]), "client")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	client := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
	t.Cleanup(func() { client.Close() })
	if err := h.Accept(fds[0]); err != nil {
		t.Fatal(err)
	}
	client.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(client, wstest.UpgradeRequest("wsd", "/?specialKey="+key)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(client)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	client.SetDeadline(time.Time{})
	c := h.table.lookup(key)
	if c == nil {
		t.Fatal("upgraded member not in the table")
	}
	return c, br, client
}

// readTextFrame reads one unmasked server frame and returns its payload.
func readTextFrame(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatalf("frame header: %v", err)
	}
	n := int(hdr[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(ext[0])<<8 | int(ext[1])
	case 127:
		t.Fatal("unexpected 64-bit frame length")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatalf("frame payload: %v", err)
	}
	return string(p)
}

// numberedText is frame i's payload: its number, padded to size bytes.
func numberedText(i, size int) string {
	s := fmt.Sprintf("%04d", i)
	return s + strings.Repeat(".", size-len(s))
}

// One delivery past a sealed batch (more frames and more bytes than
// sealBatch takes) to an idle wss member is written in full by deliver
// itself when the socket takes it: the socket never said it was full, so
// nothing but the peer's reading would flush what deliver left queued.
func TestWSSDeliveryPastOneSealedBatch(t *testing.T) {
	h, _ := testHub(t, wssConfig(t, Config{MaxQueue: 64 << 20}))
	c, br, client := wssMember(t, h, "big", 0)
	const n, size = maxIovec + 1, 1 << 10 // 129 frames, 129 KiB: within a socketpair's buffer
	if sealBatch(make([]outItem, n)) >= n || n*size <= sealBudget {
		t.Fatal("the delivery fits one sealed batch; the test proves nothing")
	}
	items := make([]outItem, n)
	for i := range items {
		f := newOwnFrame(func(b []byte) []byte {
			return codec.AppendFrame(b, codec.OpText, []byte(numberedText(i, size)))
		})
		items[i] = outItem{b: f.b, own: f}
	}
	if !c.deliver(items) {
		t.Fatal("deliver refused")
	}
	c.wmu.Lock()
	left := len(c.outq)
	c.wmu.Unlock()
	if left != 0 {
		t.Fatalf("%d items left queued with room in the socket", left)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range n {
		if got := readTextFrame(t, br); got != numberedText(i, size) {
			t.Fatalf("frame %d: got %.8q", i, got)
		}
	}
	if q := c.queued.Load(); q != 0 {
		t.Fatalf("%d bytes still charged to the queue", q)
	}
}

// A wss member that does not read holds its backlog as shared plaintext:
// only the head of its queue is ciphertext (one sealed batch at most), the
// rest are references to the broadcasts, as for a ws:// member.
func TestWSSStalledBacklogStaysShared(t *testing.T) {
	h, _ := testHub(t, wssConfig(t, Config{MaxQueue: 64 << 20}))
	c, _, _ := wssMember(t, h, "stalled", 4096)
	const n, size = 400, 1 << 10
	for i := range n {
		h.Publish("", []byte(numberedText(i, size)))
	}
	waitIdle(t, h)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.outq) < n/2 {
		t.Fatalf("%d frames queued of %d; the socket took more than a stalled peer's share", len(c.outq), n)
	}
	if !c.headStarted || c.outq[0].own == nil || c.outq[0].msg != nil {
		t.Fatal("the head of a stalled wss queue is not its ciphertext")
	}
	if head := len(c.outq[0].b); head > 2*sealBudget {
		t.Fatalf("ciphertext head %d bytes, more than one sealed batch (%d of plaintext)", head, sealBudget)
	}
	for i, it := range c.outq[1:] {
		if it.msg == nil {
			t.Fatalf("queued item %d is a private copy, not the shared broadcast", i+1)
		}
	}
}
