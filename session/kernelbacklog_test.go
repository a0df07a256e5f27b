package session

import (
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A member shed by its kernel backlog (many tiny frames the socket took,
// nothing left in wsd's queue) still gets its close frame as soon as it
// reads: the socket never refused a write, so no EPOLLOUT edge is coming
// for the queued close, and shedding writes it at once.
func TestKernelBacklogShedWritesClose(t *testing.T) {
	h, r := testHub(t, Config{MaxQueue: 16 << 10})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A small receive window keeps what the peer has not read in wsd's
	// socket, unacknowledged: the backlog SIOCOUTQ reports.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 2048) })
	}}
	peer, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	f, err := srv.(*net.TCPConn).File() // a dup the Conn owns
	srv.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	c := &Conn{hub: h, member: -1, key: "quiet"}
	c.lastSeen.Store(time.Now().Add(time.Hour).UnixNano())
	c.setState(stHandshake)
	if err := r.Add(&c.Desc, fd, c); err != nil {
		t.Fatal(err)
	}
	c.setState(stOpen)
	h.table.join(c, nil)

	// 4,000 empty messages: 8,000 bytes the socket takes at once, each
	// frame counted at itemCost, far past MaxQueue.
	for range 4000 {
		h.Publish("", nil)
	}
	waitIdle(t, h)
	c.wmu.Lock()
	queued := len(c.outq)
	c.wmu.Unlock()
	if queued != 0 {
		t.Fatalf("%d frames in wsd's queue, want all of them in the socket", queued)
	}
	if !c.shedIfKernelBacklog() && c.closeReq.Load() == nil {
		t.Fatal("the member was not shed by its kernel backlog")
	}

	peer.SetReadDeadline(time.Now().Add(3 * time.Second))
	var got []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := peer.Read(buf)
		got = append(got, buf[:n]...)
		if code, ok := closeCodeIn(got); ok {
			if code != 1008 {
				t.Fatalf("close %d, want 1008", code)
			}
			return
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v; want the close frame behind the backlog", len(got), err)
		}
	}
}

// closeCodeIn walks b, unmasked server frames with payloads under 126
// bytes, and returns the code of a complete close frame in it.
func closeCodeIn(b []byte) (int, bool) {
	for len(b) >= 2 {
		n := int(b[1] & 0x7f)
		if len(b) < 2+n {
			return 0, false
		}
		if b[0]&0x0f == 0x8 && n >= 2 {
			return int(b[2])<<8 | int(b[3]), true
		}
		b = b[2+n:]
	}
	return 0, false
}
