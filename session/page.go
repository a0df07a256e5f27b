package session

// servePage answers a request head the upgrader refused with Config.Page's
// response, if there is one for it, instead of the refusal; the connection
// then closes as after any refusal (respondAndClose). It reports whether it
// answered. The request head cap and the handshake timeout have applied
// already: the page is only asked about a complete head within the cap.
func (c *Conn) servePage(head []byte, resp *ownFrame) bool {
	h := c.hub
	if h.cfg.Page == nil {
		return false
	}
	page := h.cfg.Page(head)
	if page == nil {
		return false
	}
	resp.b = append(resp.b[:0], page...)
	h.stats.PageRequests.Add(1)
	h.log.Debug("served the chat page")
	c.respondAndClose(resp)
	return true
}
