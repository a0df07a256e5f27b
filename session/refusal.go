package session

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Refused handshakes are logged at info, at most one line per second per
// reason, each with the count of refusals of that reason not logged since
// the previous line: a flood of bad handshakes costs a map lookup each,
// not a log line each.

// refusalLogEvery is the least time between two lines of one reason.
const refusalLogEvery = time.Second

// refusalNow is the refusal log's clock; tests replace it to step time
// instead of sleeping through refusalLogEvery.
var refusalNow = time.Now

// maxRefusalReasons bounds the reasons tracked; the rest share one entry.
const maxRefusalReasons = 64

type refusalLog struct {
	mu      sync.Mutex
	reasons map[string]*refusalCount
}

type refusalCount struct {
	last       time.Time
	suppressed int
}

// refused logs a refused handshake on c (rate-limited per reason) with its
// HTTP status, reason, remote address and Origin header.
func (h *Hub) refused(c *Conn, status int, reason string, origin []byte) {
	now := refusalNow()
	l := &h.refusals
	l.mu.Lock()
	if l.reasons == nil {
		l.reasons = make(map[string]*refusalCount)
	}
	rc := l.reasons[reason]
	if rc == nil {
		if len(l.reasons) >= maxRefusalReasons {
			reason = "other"
			rc = l.reasons[reason]
		}
		if rc == nil {
			rc = &refusalCount{}
			l.reasons[reason] = rc
		}
	}
	if now.Sub(rc.last) < refusalLogEvery {
		rc.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := rc.suppressed
	rc.last, rc.suppressed = now, 0
	l.mu.Unlock()
	h.log.Info("handshake refused", "status", status, "reason", reason,
		"remote", peerAddr(c.fd()), "origin", string(origin), "suppressed", suppressed)
}

// peerAddr returns the remote address of a socket, "" if unknown.
func peerAddr(fd int) string {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return ""
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)).String()
	}
	return ""
}
