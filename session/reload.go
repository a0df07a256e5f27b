package session

// SetRateLimit changes the per-connection message rate limit while the Hub
// runs, for a configuration reload. Its arguments mean what Config's
// MaxMsgRate and MsgBurst mean: perSecond 0 is DefaultMaxMsgRate and < 0
// unlimited, burst <= 0 is DefaultMsgBurst. Connections keep their place
// in the bucket; the new limit applies from their next message.
func (h *Hub) SetRateLimit(perSecond float64, burst int) {
	c := Config{MaxMsgRate: perSecond, MsgBurst: burst}
	c.setRateDefaults()
	h.rate.set(c.MaxMsgRate, float64(c.MsgBurst))
}
