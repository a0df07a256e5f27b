package session

import (
	"net"
	"net/netip"
	"testing"
)

// peerIP reads a TCP socket's peer, v4 and v6, and allocates nothing (it
// runs for every connection accepted); a socket with no IP peer has none.
func TestPeerIP(t *testing.T) {
	for network, addr := range map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"} {
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Logf("%s: %v", network, err)
			continue
		}
		defer ln.Close()
		c, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		raw, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		want := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		raw.Control(func(fd uintptr) {
			got, ok := peerIP(int(fd))
			if !ok || got != want {
				t.Errorf("%s: peerIP %v %v, want %v", network, got, ok, want)
			}
			if n := testing.AllocsPerRun(100, func() { peerIP(int(fd)) }); n != 0 {
				t.Errorf("%s: peerIP allocates %v times", network, n)
			}
		})
	}
	if got, ok := peerIP(-1); ok || got != (netip.Addr{}) {
		t.Errorf("a bad fd has peer %v", got)
	}
}

// Booking a socket from an address the table holds allocates nothing, and
// the per-address caps still refuse: the accept path runs it every time.
func TestAddrTakeAllocs(t *testing.T) {
	tb := newAddrTable(&Config{MaxConnsPerIP: 3, MaxHandshakesPerIP: 2})
	a := netip.MustParseAddr("127.0.0.7")
	if err := tb.take(a); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := tb.take(a); err != nil {
			t.Fatal(err)
		}
		tb.untake(a)
	}); n != 0 {
		t.Errorf("take allocates %v times", n)
	}
	if err := tb.take(a); err != nil {
		t.Fatal(err)
	}
	if err := tb.take(a); err != errHandshakePerIP {
		t.Errorf("a third handshake: %v, want errHandshakePerIP", err)
	}
	tb.handshakeDone(a)
	tb.handshakeDone(a)
	if err := tb.take(a); err != nil {
		t.Fatal(err)
	}
	if err := tb.take(a); err != errPerIP {
		t.Errorf("a fourth socket: %v, want errPerIP", err)
	}
}
