package session

// SetRateLimit changes the per-connection message rate limit (messages per
// second, 0 for none, and the burst above it) while the Hub runs, for a
// configuration reload. Connections keep their place in the bucket; the
// new limit applies from their next message.
func (h *Hub) SetRateLimit(perSecond float64, burst int) { h.rate.set(perSecond, float64(burst)) }
