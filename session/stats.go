package session

import (
	"sync/atomic"

	"github.com/wsd-chat/wsd/codec"
)

// Stats are the Hub's counters. They are plain atomics so the hot path pays
// one atomic add per event; package admin exports them to Prometheus.
type Stats struct {
	Open        atomic.Int64 // connections in the session table
	Handshaking atomic.Int64 // accepted sockets not yet upgraded
	Closing     atomic.Int64 // connections in the close handshake

	Accepted          atomic.Uint64
	HandshakesOK      atomic.Uint64
	HandshakesFailed  atomic.Uint64
	HandshakeTimeouts atomic.Uint64
	HandshakesEvicted atomic.Uint64              // sockets dropped in their handshake to admit a newcomer at MaxConns
	PageRequests      atomic.Uint64              // plain GET / (or HEAD) answered with Config.Page
	handshakeStatus   [statusSlots]atomic.Uint64 // failures by HTTP status

	TLSHandshakes        atomic.Uint64 // TLS handshakes completed (wss)
	TLSHandshakeFailures atomic.Uint64 // TLS handshakes failed or abandoned by the client

	MessagesIn    atomic.Uint64 // data messages received
	BytesIn       atomic.Uint64 // data message payload bytes received
	Broadcasts    atomic.Uint64 // messages fanned out to a room
	Direct        atomic.Uint64 // messages sent to one key
	GzipEncodings atomic.Uint64 // gzip'd frames built (at most one per message)
	// Chat protocol v1.
	PresenceFrames atomic.Uint64 // presence frames built, one per room per event, shared by its v1 members
	// The room order kept outside the process (Config.Log, log.go).
	LogDelivered    atomic.Uint64 // room messages the Log delivered to this box
	LogStale        atomic.Uint64 // of them, already delivered (the Log delivering again): dropped
	LogRingHits     atomic.Uint64 // joins answered from the hot Ring
	LogReads        atomic.Uint64 // Reads of the Log for a join (a cold room, or older than the Ring)
	LogReadErrors   atomic.Uint64 // of them, failed: answered from the Ring alone
	LogReadTimeouts atomic.Uint64 // cold joins whose Read did not answer within LogReadTimeout: answered from the Ring alone
	LogReadsShed    atomic.Uint64 // cold joins past LogReadQueue: answered from the Ring alone, not read
	LogReadsWaiting atomic.Int64  // cold joins queued or reading now
	LogSeeded       atomic.Uint64 // messages a Read put in the Ring (the room's latest), for the next joins
	LogWritesFailed atomic.Uint64 // Submits the Log failed: delivered here under a box-local epoch
	LogLocalEpochs  atomic.Uint64 // times a room went over to a box-local epoch
	LogDuplicates   atomic.Uint64 // Submits the Log answered as duplicates (same sender and id)
	LogResets       atomic.Uint64 // the Log's Resets: the Ring's copy dropped
	LogAcksDropped  atomic.Uint64 // acks not sent: the sender closed or was replaced before the Log answered
	LogBusDropped   atomic.Uint64 // room messages from the cluster bus dropped: with a Log rooms travel through it
	// permessage-deflate (RFC 7692).
	DeflateConns      atomic.Int64  // open connections that negotiated it
	DeflateEncodings  atomic.Uint64 // compressed frames built (at most one per message)
	DeflateBytesSaved atomic.Uint64 // bytes deflate peers were not sent: text frame − compressed frame, per delivery
	InflateErrors     atomic.Uint64 // connections failed for a message that did not inflate (1007) or inflated past -max-message (1009)
	FramesOut         atomic.Uint64 // data frames handed to peers (written or queued)
	BytesOut          atomic.Uint64 // bytes written to sockets
	WriteSyscalls     atomic.Uint64 // write/writev calls
	QueuedBytes       atomic.Int64  // bytes waiting in per-connection queues
	SlowConsumers     atomic.Uint64 // connections closed for a full queue
	Kicks             atomic.Uint64 // connections replaced by a newer one with the same key
	PingsSent         atomic.Uint64
	IdleTimeouts      atomic.Uint64

	// The memory budgets: what is charged to each, and the limits (set
	// once by NewHub).
	InboundHeld    atomic.Int64
	OutboundHeld   atomic.Int64
	InboundBudget  int64
	OutboundBudget int64

	MessageTimeouts atomic.Uint64             // connections closed for a message arriving too slowly
	BudgetRefusals  atomic.Uint64             // connections closed because the inbound budget was spent
	BudgetEvictions atomic.Uint64             // bigger holders closed to make room in the inbound budget
	ShareRefusals   atomic.Uint64             // of BudgetRefusals: the address held its share (InboundSharePerIP)
	BudgetSheds     atomic.Uint64             // consumers closed because the outbound budget was spent
	ReadPauses      atomic.Uint64             // inputs paused because the outbound budget was spent
	FanoutHolds     atomic.Uint64             // inputs held because a shard's fan-out backlog was full (fanout.go)
	closeSent       [closeSlots]atomic.Uint64 // close frames sent, by code
}

// Close codes and handshake statuses are counted in small fixed tables.
var closeCodes = []uint16{
	codec.CloseNormal, codec.CloseGoingAway, codec.CloseProtocolError,
	codec.CloseUnsupportedData, codec.CloseInvalidPayload, codec.ClosePolicyViolation,
	codec.CloseTooBig, codec.CloseInternalError, codec.CloseTryAgainLater, closeReplaced,
}

var handshakeStatuses = []int{400, 401, 403, 404, 405, 426, 429, 431, 503, 505}

const (
	closeSlots  = 11 // len(closeCodes) + "other"
	statusSlots = 11 // len(handshakeStatuses) + "other"
)

func (s *Stats) countClose(code uint16) {
	for i, c := range closeCodes {
		if c == code {
			s.closeSent[i].Add(1)
			return
		}
	}
	s.closeSent[closeSlots-1].Add(1)
}

func (s *Stats) countHandshakeFailure(status int) {
	s.HandshakesFailed.Add(1)
	for i, c := range handshakeStatuses {
		if c == status {
			s.handshakeStatus[i].Add(1)
			return
		}
	}
	s.handshakeStatus[statusSlots-1].Add(1)
}

// CloseCodesSent calls f with each close code and how many close frames
// carried it (code 0 stands for any other code).
func (s *Stats) CloseCodesSent(f func(code uint16, n uint64)) {
	for i, c := range closeCodes {
		f(c, s.closeSent[i].Load())
	}
	f(0, s.closeSent[closeSlots-1].Load())
}

// HandshakeFailures calls f with each HTTP status and how many handshakes
// were refused with it (status 0 stands for any other status).
func (s *Stats) HandshakeFailures(f func(status int, n uint64)) {
	for i, c := range handshakeStatuses {
		f(c, s.handshakeStatus[i].Load())
	}
	f(0, s.handshakeStatus[statusSlots-1].Load())
}

// gauge returns the gauge counting connections in state st, if any.
func (s *Stats) gauge(st uint32) *atomic.Int64 {
	switch st {
	case stHandshake:
		return &s.Handshaking
	case stOpen:
		return &s.Open
	case stClosing:
		return &s.Closing
	}
	return nil
}
