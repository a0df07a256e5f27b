package session

import "sync/atomic"

// rateLimit is the per-connection message rate limit (GCRA, the virtual
// scheduling form of a token bucket). The per-connection state is a single
// int64 (rateState), so the limit costs 8 bytes per connection. The limit
// itself sits behind an atomic pointer so a reload can change it while
// connections run (see Hub.SetRateLimit).
type rateLimit struct {
	p *atomic.Pointer[rateParams]
}

type rateParams struct {
	interval int64 // nanos per message; 0 means unlimited
	tol      int64 // how far a connection may run ahead: (burst-1) intervals
}

func newRateLimit(perSecond float64, burst int) rateLimit {
	l := rateLimit{p: new(atomic.Pointer[rateParams])}
	l.set(perSecond, burst)
	return l
}

func (l rateLimit) set(perSecond float64, burst int) {
	p := &rateParams{}
	if perSecond > 0 {
		if burst < 1 {
			burst = 1
		}
		iv := int64(1e9 / perSecond)
		p.interval, p.tol = iv, iv*int64(burst-1)
	}
	l.p.Store(p)
}

// rateState is a connection's theoretical arrival time of its next message.
type rateState int64

// allow reports whether a message arriving at now (unix nanos) is within
// the limit, and books it if so.
func (l rateLimit) allow(s *rateState, now int64) bool {
	p := l.p.Load()
	if p.interval == 0 {
		return true
	}
	tat := int64(*s)
	if tat < now {
		tat = now
	}
	if tat-now > p.tol {
		return false
	}
	*s = rateState(tat + p.interval)
	return true
}
