package session

// rateLimit is a per-connection rate limit (GCRA, the virtual scheduling
// form of a token bucket) over messages or over bytes. The per-connection
// state is a single int64 (rateState), so a limit costs 8 bytes per
// connection.
type rateLimit struct {
	perUnit float64 // nanos per unit; 0 means unlimited
	tol     int64   // how far a connection may run ahead: the burst, in nanos
}

// newRateLimit allows perSecond units per second with bursts of burst
// units; perSecond < 0 means unlimited.
func newRateLimit(perSecond, burst float64) rateLimit {
	if perSecond <= 0 {
		return rateLimit{}
	}
	burst = max(burst, 1)
	per := 1e9 / perSecond
	return rateLimit{perUnit: per, tol: int64(per * (burst - 1))}
}

// rateState is a connection's theoretical arrival time of its next unit.
type rateState int64

// allow reports whether n units arriving at now (unix nanos) are within
// the limit, and books them if so. A connection within its burst may take
// more than is left of it in one go: the excess is owed, and refused next.
func (l rateLimit) allow(s *rateState, now int64, n int) bool {
	if l.perUnit == 0 {
		return true
	}
	tat := max(int64(*s), now)
	if tat-now > l.tol {
		return false
	}
	*s = rateState(tat + int64(float64(n)*l.perUnit))
	return true
}
