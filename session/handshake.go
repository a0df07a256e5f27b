package session

import "github.com/wsd-chat/wsd/codec"

// The handshake: a connection in stHandshake accumulates its request head,
// is upgraded (or refused with an HTTP error) and joins the table.

// handshake accumulates the request head and, once it is complete,
// upgrades and joins the table; bytes after the head are frames.
func (c *Conn) handshake(p []byte) {
	head, rest, ok := c.readHead(p)
	if !ok || c.flags.has(flagKill) { // (dropped for a newcomer at the cap: no upgrade)
		return
	}
	welcome, ok := c.upgrade(head)
	if !ok {
		return
	}
	c.join(welcome)
	if len(rest) > 0 {
		c.input(rest)
	}
}

// readHead adds p to the request head read so far and returns the head
// once it is complete, with the bytes after it. A head over the size cap
// is refused with 431.
func (c *Conn) readHead(p []byte) (head, rest []byte, ok bool) {
	end := -1
	if c.in == nil || c.in.hs == nil {
		end = codec.HandshakeEnd(p, 0)
	}
	if end >= 0 {
		head, rest = p[:end], p[end:]
	} else {
		in := c.input1()
		from := len(in.hs)
		in.hs = append(in.hs, p...)
		if !c.chargeInput() {
			c.refuse(errBusy, nil, nil)
			return nil, nil, false
		}
		if end = codec.HandshakeEnd(in.hs, from); end < 0 {
			if len(in.hs) > codec.MaxHeadSize {
				c.refuse(codec.ErrHeadTooLarge, nil, nil)
			}
			return nil, nil, false
		}
		head, rest = in.hs[:end], in.hs[end:]
	}
	if len(head) > codec.MaxHeadSize {
		c.refuse(codec.ErrHeadTooLarge, nil, nil)
		return nil, nil, false
	}
	return head, rest, true
}

// upgrade checks the request and authorizes it. It returns the 101
// response to send, or answers with the refusal itself and reports false.
func (c *Conn) upgrade(head []byte) (*ownFrame, bool) {
	h := c.hub
	up := h.upgraders.Get().(*codec.Upgrader)
	defer h.upgraders.Put(up)
	resp := ownFrames.Get().(*ownFrame)
	req, out, err := up.Upgrade(head, resp.b[:0])
	resp.b = out
	if err == nil {
		if err = h.authorize(req); err == nil && req.V1 && req.HasHistory && req.History > h.cfg.HistorySize {
			err = codec.ErrBadHistory // more than a room keeps: refused, not clamped
		}
		if err != nil {
			// The 101 was not written yet: answer with the refusal instead.
			resp.b = codec.AppendRejection(resp.b[:0], err)
		}
	}
	if err != nil {
		if c.servePage(head, resp) { // Config.Page: the chat page for a plain GET /
			return nil, false
		}
		c.refuse(err, resp, up.Origin())
		return nil, false
	}
	if req.V1 {
		c.v1 = newV1Conn(c, req)
	}
	c.key = string(req.Key)
	c.room = c.hub.table.roomName(c.key, req.Room)
	c.gzip = req.Gzip
	c.deflate = req.Deflate
	if c.in != nil {
		// The head (in in.hs) was copied out by Upgrade; frames after it
		// go to a stream with the negotiated deflate.
		c.in.hs = nil
		c.in.stream.SetDeflate(req.Deflate)
	}
	c.chargeInput()
	return resp, true
}

// join makes c a member of the table. The 101 goes out in the critical
// section that adds c: no broadcast reaches c before it, and none sent
// after the client has read it can miss c. A connection holding the same
// key is replaced.
func (c *Conn) join(welcome *ownFrame) {
	h := c.hub
	c.setState(stOpen)
	h.stats.HandshakesOK.Add(1)
	var old *Conn
	if c.v1 != nil {
		var pending bool
		if old, pending = c.joinFirst(welcome); pending { // v1.go
			return // the join waits for the Log: logread.go calls joinedFirst
		}
	} else {
		old = h.table.join(c, welcome)
		if old == nil || old.v1 != nil || old.room != c.room {
			// Counted through the table from now on (Hub.RosterCount),
			// unless a seed connection of the key was in the room already.
			h.presence.Arrive(c.room, c.key)
		}
	}
	c.joinedFirst(old)
}

// joinedFirst closes what c's first join displaced.
func (c *Conn) joinedFirst(old *Conn) {
	h := c.hub
	if old != nil {
		h.roomsLeft(old, c.room) // the key stays in the room c holds
	}
	if old != nil {
		h.stats.Kicks.Add(1)
		h.log.Info("connection replaced", "key", c.key)
		old.requestClose(errReplaced)
	}
	if h.debugging() {
		h.log.Debug("connected", "key", c.key, "gzip", c.gzip, "room", c.room)
	}
}

// refuse answers a handshake with err's HTTP error response (resp, when the
// upgrader wrote it already), logs it (rate-limited, with the request's
// Origin if known) and half-closes; the fd is closed at the
// peer's EOF or the close deadline.
func (c *Conn) refuse(err error, resp *ownFrame, origin []byte) {
	h := c.hub
	status := codec.StatusOf(err)
	h.stats.countHandshakeFailure(status)
	h.refused(c, status, err.Error(), origin)
	if resp == nil {
		resp = newOwnFrame(func(b []byte) []byte { return codec.AppendRejection(b, err) })
	}
	c.respondAndClose(resp)
}

// respondAndClose sends an HTTP response and half-closes; the fd is closed
// at the peer's EOF or the close deadline.
func (c *Conn) respondAndClose(resp *ownFrame) {
	if c.in != nil {
		c.in.hs = nil
	}
	c.chargeInput()
	c.send(resp)
	c.wmu.Lock()
	c.wclosed = true
	c.flushLocked()
	c.wmu.Unlock()
	c.broken = true
	c.setState(stClosing)
}

func (h *Hub) admit() error {
	if h.draining.Load() {
		return errDraining
	}
	if h.cfg.MaxConns > 0 && h.stats.Open.Load() >= int64(h.cfg.MaxConns) {
		return errOverCapacity
	}
	return nil
}

func (h *Hub) authorize(req *codec.Request) error {
	if h.cfg.Authorize == nil {
		return nil
	}
	return h.cfg.Authorize(req)
}
