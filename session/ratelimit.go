package session

import "sync/atomic"

// rateLimit is a per-connection rate limit (GCRA, the virtual scheduling
// form of a token bucket) over messages or over bytes. The per-connection
// state is a single int64 (rateState), so a limit costs 8 bytes per
// connection. The limit itself sits behind an atomic pointer so a reload
// can change it while connections run (see Hub.SetRateLimit).
type rateLimit struct {
	p *atomic.Pointer[rateParams]
}

type rateParams struct {
	perUnit float64 // nanos per unit; 0 means unlimited
	tol     int64   // how far a connection may run ahead: the burst, in nanos
}

// newRateLimit allows perSecond units per second with bursts of burst
// units; perSecond <= 0 means unlimited.
func newRateLimit(perSecond, burst float64) rateLimit {
	l := rateLimit{p: new(atomic.Pointer[rateParams])}
	l.set(perSecond, burst)
	return l
}

func (l rateLimit) set(perSecond, burst float64) {
	p := &rateParams{}
	if perSecond > 0 {
		burst = max(burst, 1)
		p.perUnit = 1e9 / perSecond
		p.tol = int64(p.perUnit * (burst - 1))
	}
	l.p.Store(p)
}

// rateState is a connection's theoretical arrival time of its next unit.
type rateState int64

// allow reports whether n units arriving at now (unix nanos) are within
// the limit, and books them if so. A connection within its burst may take
// more than is left of it in one go: the excess is owed, and refused next.
func (l rateLimit) allow(s *rateState, now int64, n int) bool {
	p := l.p.Load()
	if p.perUnit == 0 {
		return true
	}
	tat := max(int64(*s), now)
	if tat-now > p.tol {
		return false
	}
	*s = rateState(tat + int64(float64(n)*p.perUnit))
	return true
}

// The delivery limits (limits.go) cannot know a message's cost before it
// is queued, so they check and book in two steps: ahead before the
// message, charge after it with what it cost.

// ahead reports whether a state at tat has used up the burst at now: the
// next unit would be refused.
func (l rateLimit) ahead(tat, now int64) bool {
	p := l.p.Load()
	return p.perUnit != 0 && tat-now > p.tol
}

// charge books n units at now, within the limit or not.
func (l rateLimit) charge(s *rateState, now int64, n int) {
	if p := l.p.Load(); p.perUnit != 0 && n > 0 {
		*s = rateState(max(int64(*s), now) + int64(float64(n)*p.perUnit))
	}
}

// chargeShared is charge for a state several connections book at once
// (one source address's): a compare-and-swap loop instead of a lock.
func (l rateLimit) chargeShared(s *atomic.Int64, now int64, n int) {
	p := l.p.Load()
	if p.perUnit == 0 || n <= 0 {
		return
	}
	d := int64(float64(n) * p.perUnit)
	for {
		old := s.Load()
		if s.CompareAndSwap(old, max(old, now)+d) {
			return
		}
	}
}
