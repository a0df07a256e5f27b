package session

import "time"

// The sweeper: one goroutine per Hub checks every connection's deadlines,
// idle time and slow messages, instead of a timer per connection, and
// serves the outbound budget's requests to shed and resume.

// sweepEvery is how often deadlines and idle connections are checked: a
// single goroutine walks the table instead of a timer per connection.
func (h *Hub) sweepEvery() time.Duration {
	d := min(h.cfg.PingInterval, h.cfg.HandshakeTimeout, h.cfg.CloseTimeout) / 4
	return max(20*time.Millisecond, min(d, time.Second))
}

func (h *Hub) sweep() {
	defer close(h.stopped)
	t := time.NewTicker(h.sweepEvery())
	defer t.Stop()
	var members []*Conn
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			members = h.sweepOnce(now.UnixNano(), members[:0])
		case <-h.squeezeReq:
			h.shedLargest()
			h.resumeReaders()
		}
	}
}

func (h *Hub) sweepOnce(now int64, scratch []*Conn) []*Conn {
	ping, idle := int64(h.cfg.PingInterval), int64(h.cfg.IdleTimeout)
	msgTimeout := int64(h.cfg.MessageTimeout)
	var slow []*Conn
	for _, s := range h.table.shards {
		s.mu.RLock()
		for c := range s.byKey.all() {
			{
				quiet := now - c.lastSeen.Load()
				started := c.timer.Load() // open: a message's start
				switch {
				case quiet > idle:
					scratch = append(scratch, c)
				case started != 0 && now-started > msgTimeout && !c.flags.has(flagPaused):
					// (A paused reader is not slow: wsd stopped reading it.)
					slow = append(slow, c)
				case quiet > ping && now-c.pingedAt.Load() > ping:
					c.pingedAt.Store(now)
					if c.deliver([]outItem{{b: pingFrame}}) {
						h.stats.PingsSent.Add(1)
					}
				default:
					c.shedIfKernelBacklog() // write.go
				}
			}
		}
		s.mu.RUnlock()
		s.limboMu.Lock()
		for c := range s.limbo {
			if d := c.timer.Load(); d != 0 && now > d {
				if c.state.Load() == stHandshake {
					h.stats.HandshakeTimeouts.Add(1)
				}
				c.timer.Store(0)
				c.abort()
			}
		}
		s.limboMu.Unlock()
	}
	for i, c := range scratch {
		h.stats.IdleTimeouts.Add(1)
		c.requestClose(errIdle)
		scratch[i] = nil
	}
	for _, c := range slow {
		h.stats.MessageTimeouts.Add(1)
		c.requestClose(errMessageTimeout)
	}
	if h.out.over() {
		h.shedLargest()
	}
	h.resumeReaders()
	return scratch
}
