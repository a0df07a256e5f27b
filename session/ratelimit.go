package session

// rateLimit is the per-connection message rate limit (GCRA, the virtual
// scheduling form of a token bucket). The per-connection state is a single
// int64 (rateState), so the limit costs 8 bytes per connection.
type rateLimit struct {
	interval int64 // nanos per message; 0 means unlimited
	tol      int64 // how far a connection may run ahead: (burst-1) intervals
}

func newRateLimit(perSecond float64, burst int) rateLimit {
	if perSecond <= 0 {
		return rateLimit{}
	}
	if burst < 1 {
		burst = 1
	}
	iv := int64(1e9 / perSecond)
	return rateLimit{interval: iv, tol: iv * int64(burst-1)}
}

// rateState is a connection's theoretical arrival time of its next message.
type rateState int64

// allow reports whether a message arriving at now (unix nanos) is within
// the limit, and books it if so.
func (l rateLimit) allow(s *rateState, now int64) bool {
	if l.interval == 0 {
		return true
	}
	tat := int64(*s)
	if tat < now {
		tat = now
	}
	if tat-now > l.tol {
		return false
	}
	*s = rateState(tat + l.interval)
	return true
}
