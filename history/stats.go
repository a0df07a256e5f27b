package history

import (
	"sync/atomic"
	"time"
)

// Stats are a Log's counters (since Open) and gauges (now), for /metrics
// and /healthz.
type Stats struct {
	Connected bool // the NATS connection is up
	Consuming bool // Start's consumer is running

	Submitted   uint64 // Submit calls
	Stored      uint64 // done with a new stamp
	Duplicates  uint64 // done with dup true
	DupGone     uint64 // of which the original was no longer retained (zero stamp)
	Conflicts   uint64 // publishes refused because the room moved on (each one retried)
	Unavailable uint64 // done with ErrUnavailable (timeout, no JetStream, closed, queue full)
	Failed      uint64 // done with another error (a limit, invalid, too many conflicts)
	Pending     int    // Submits queued or in flight now

	Delivered      uint64 // messages handed to Deliver
	Foreign        uint64 // stored messages refused as not wsd's (malformed, wrong version, too big, forged seq)
	Gaps           uint64 // deliveries that skipped seqs of their room (Reset(room) before)
	Resets         uint64 // Reset("") calls
	ConsumerResets uint64 // consumer interruptions (missed heartbeats, consumer lost)
	Verifies       uint64 // direct gets to check a delivery's prev
	// Lag is the newest stream seq this Log knows was stored (its own
	// acks) minus the last one it delivered: what its consumer has yet to
	// hand over, as far as this box can tell without asking.
	Lag uint64

	Reads        uint64        // Read calls
	ReadErrors   uint64        // Reads that returned an error
	ReadSkipped  uint64        // retained messages a Read skipped as invalid
	ReadGets     uint64        // direct gets Reads made
	ReadDuration time.Duration // total time in Read; / Reads for the mean
	ReadMax      time.Duration // the slowest Read
}

type counters struct {
	submitted, stored, duplicates, dupGone, conflicts, unavailable, failed atomic.Uint64
	delivered, foreign, gaps, resets, consumerResets, verifies             atomic.Uint64
	reads, readErrors, readSkipped, readGets, readNanos, readMax           atomic.Uint64
	maxStored, lastDelivered                                               atomic.Uint64
	consuming                                                              atomic.Bool
}

func (c *counters) noteStored(seq uint64) {
	for {
		old := c.maxStored.Load()
		if seq <= old || c.maxStored.CompareAndSwap(old, seq) {
			return
		}
	}
}

func (c *counters) noteRead(d time.Duration) {
	c.reads.Add(1)
	c.readNanos.Add(uint64(d))
	for {
		old := c.readMax.Load()
		if uint64(d) <= old || c.readMax.CompareAndSwap(old, uint64(d)) {
			return
		}
	}
}

// Stats returns the Log's counters now. It does not touch the network.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	pending := l.pending
	l.mu.Unlock()
	c := &l.st
	s := Stats{
		Connected:      l.nc.IsConnected(),
		Consuming:      c.consuming.Load(),
		Submitted:      c.submitted.Load(),
		Stored:         c.stored.Load(),
		Duplicates:     c.duplicates.Load(),
		DupGone:        c.dupGone.Load(),
		Conflicts:      c.conflicts.Load(),
		Unavailable:    c.unavailable.Load(),
		Failed:         c.failed.Load(),
		Pending:        pending,
		Delivered:      c.delivered.Load(),
		Foreign:        c.foreign.Load(),
		Gaps:           c.gaps.Load(),
		Resets:         c.resets.Load(),
		ConsumerResets: c.consumerResets.Load(),
		Verifies:       c.verifies.Load(),
		Reads:          c.reads.Load(),
		ReadErrors:     c.readErrors.Load(),
		ReadSkipped:    c.readSkipped.Load(),
		ReadGets:       c.readGets.Load(),
		ReadDuration:   time.Duration(c.readNanos.Load()),
		ReadMax:        time.Duration(c.readMax.Load()),
	}
	if m, d := c.maxStored.Load(), c.lastDelivered.Load(); c.consuming.Load() && m > d {
		s.Lag = m - d
	}
	return s
}
