package server

import (
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// listen opens a non-blocking TCP listening socket that wsd owns outright
// (a net.Listener's fd belongs to the Go runtime's poller) and returns it
// with the address it is bound to.
func listen(addr string, backlog int) (fd int, bound netip.AddrPort, err error) {
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return -1, bound, err
	}
	ap := tcp.AddrPort()
	ip := ap.Addr().Unmap()
	family := unix.AF_INET
	var sa unix.Sockaddr
	if !ip.IsValid() || ip.Is6() {
		family = unix.AF_INET6
		sa6 := &unix.SockaddrInet6{Port: int(ap.Port())}
		if ip.IsValid() {
			sa6.Addr = ip.As16()
		}
		sa = sa6
	} else {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}
	}
	fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, bound, fmt.Errorf("socket: %w", err)
	}
	fail := func(op string, e error) (int, netip.AddrPort, error) {
		unix.Close(fd)
		return -1, bound, fmt.Errorf("%s %s: %w", op, addr, e)
	}
	if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("setsockopt", err)
	}
	if err = unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	if err = unix.Listen(fd, backlog); err != nil {
		return fail("listen", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		bound = netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		bound = netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return fd, bound, nil
}
