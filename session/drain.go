package session

import (
	"context"
	"math/rand/v2"
	"time"
)

// drainMinBatch is the smallest batch CloseGradually closes at once: a box
// with fewer connections than this closes them together, and a large one
// never spreads its closes thinner than this per step.
const drainMinBatch = 100

// drainMinStep is the shortest time between two batches.
const drainMinStep = 10 * time.Millisecond

// CloseGradually is lame-duck mode: it closes every open connection with
// 1001 ("server shutting down") in batches spread evenly over spread, in
// random order and with jitter, so the clients reconnect to other boxes
// gradually instead of all in the same instant. Connections keep chatting
// until their batch comes. The caller stops accepting first; connections
// that join during the spread are left to Shutdown. It returns how many
// closes it requested, when the last batch is out or ctx ends.
func (h *Hub) CloseGradually(ctx context.Context, spread time.Duration) int {
	var open []*Conn
	h.table.eachMember(func(c *Conn) { open = append(open, c) })
	n := len(open)
	if n == 0 {
		return 0
	}
	batches := 1
	if spread > 0 && n > drainMinBatch {
		batches = min((n+drainMinBatch-1)/drainMinBatch, int(spread/drainMinStep))
		batches = max(batches, 1)
	}
	if batches == 1 {
		h.closeBatch(open)
		return n
	}
	// A random order spreads every room and shard over the whole drain.
	rand.Shuffle(n, func(i, j int) { open[i], open[j] = open[j], open[i] })
	step := spread / time.Duration(batches)
	start := time.Now()
	h.log.Info("closing connections in batches", "connections", n, "batches", batches,
		"every", step, "spread", spread)
	done := 0
	for i := 0; i < batches; i++ {
		// Batch i goes out somewhere in the first half of its step: the
		// steps keep their order, the jitter breaks any rhythm clients
		// could synchronise on.
		at := start.Add(time.Duration(i)*step + rand.N(step/2+1))
		if err := sleepUntil(ctx, at); err != nil {
			return done
		}
		hi := (i + 1) * n / batches
		h.closeBatch(open[done:hi])
		done = hi
	}
	return done
}

// closeBatch closes conns with 1001 behind what their shards' fan-out
// still holds for them: a broadcast accepted before the close reaches the
// member before its 1001, however far that shard's fan-out lags behind
// the others (a direct requestClose would queue the 1001 first and the
// lagging broadcasts would be dropped behind it).
func (h *Hub) closeBatch(conns []*Conn) {
	for i, c := range conns {
		h.closeAfterFanout(c, errShutdown)
		conns[i] = nil
	}
}

func sleepUntil(ctx context.Context, at time.Time) error {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// fanoutIdle reports whether no broadcast waits for a shard.
func (h *Hub) fanoutIdle() bool {
	for _, s := range h.table.shards {
		if !s.fan.idle() {
			return false
		}
	}
	return true
}

// Shutdown drains the Hub: new upgrades and new broadcasts are refused,
// broadcasts already accepted reach their rooms, then every connection gets
// 1001 after what is queued for it and is closed once the peer answers. When ctx ends first,
// the remaining sockets are closed at once and ctx's error is returned.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.draining.Store(true)
	err := waitUntil(ctx, func() bool { return h.inflight.Load() == 0 && h.fanoutIdle() })
	var open []*Conn
	h.table.eachMember(func(c *Conn) { open = append(open, c) })
	for _, c := range open {
		c.requestClose(errShutdown)
	}
	for _, s := range h.table.shards {
		s.limboMu.Lock()
		for c := range s.limbo {
			if c.state.Load() == stHandshake {
				c.abort()
			}
		}
		s.limboMu.Unlock()
	}
	if err == nil {
		err = waitUntil(ctx, func() bool { return h.live.Load() == 0 })
	}
	if err != nil {
		h.killAll()
		grace, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = waitUntil(grace, func() bool { return h.live.Load() == 0 })
		cancel()
	}
	h.Close()
	return err
}

// killAll closes every socket without ceremony.
func (h *Hub) killAll() {
	h.table.eachMember((*Conn).abort)
	for _, s := range h.table.shards {
		s.limboMu.Lock()
		for c := range s.limbo {
			c.abort()
		}
		s.limboMu.Unlock()
	}
}

// Close stops the Hub's sweeper. Shutdown calls it.
func (h *Hub) Close() {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.stopped
}

func waitUntil(ctx context.Context, done func() bool) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
