package admin

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsd-chat/wsd/internal/version"
	"github.com/wsd-chat/wsd/session"
)

// collector exports session.Stats at scrape time: the hot path only bumps
// atomics, and Prometheus reads them when asked.
type collector struct {
	stats        *session.Stats
	acceptErrors func() uint64
	authFailures func(func(reason string, n uint64))
}

// desc describes the metric wsd_NAME.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("wsd_"+name, help, labels, nil)
}

// metricSink is a Collect's channel, with the two kinds of metric wsd
// exports.
type metricSink chan<- prometheus.Metric

func (ch metricSink) gauge(d *prometheus.Desc, v int64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
}

func (ch metricSink) counter(d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

var (
	descConnections      = desc("connections", "Open WebSocket connections (in the session table).")
	descHandshaking      = desc("handshaking_connections", "Accepted sockets whose upgrade is not complete.")
	descClosing          = desc("closing_connections", "Connections in the close handshake.")
	descAccepted         = desc("accepted_total", "TCP connections accepted.")
	descAcceptErrors     = desc("accept_errors_total", "accept(2) failures such as EMFILE.")
	descHandshakesOK     = desc("handshakes_total", "Successful WebSocket upgrades.")
	descHandshakesFailed = desc("handshake_failures_total", "Refused upgrades, by HTTP status.", "status")
	descHandshakeTimeout = desc("handshake_timeouts_total", "Connections closed for not finishing the upgrade in time.")
	descHandshakeEvicted = desc("handshake_evictions_total", "Sockets still in their handshake dropped to admit a newcomer at -max-conns.")
	descMessagesIn       = desc("received_messages_total", "Data messages received from clients.")
	descBytesIn          = desc("received_message_bytes_total", "Payload bytes of data messages received.")
	descPageRequests     = desc("page_requests_total", "Plain GET / (or HEAD) requests answered with the chat page.")
	descTLSHandshakes    = desc("tls_handshakes_total", "TLS handshakes completed (wss://).")
	descTLSFailures      = desc("tls_handshake_failures_total", "TLS handshakes that failed or were abandoned by the client.")
	descBroadcasts       = desc("broadcasts_total", "Messages fanned out to a room.")
	descDirect           = desc("direct_messages_total", "Messages sent to one key.")
	descGzip             = desc("gzip_encodings_total", "Gzip'd frames built; at most one per broadcast.")
	descDeflateConns     = desc("deflate_connections", "Open connections that negotiated permessage-deflate.")
	descDeflate          = desc("deflate_encodings_total", "permessage-deflate frames compressed; at most one per broadcast.")
	descDeflateSaved     = desc("deflate_bytes_saved_total", "Bytes not written to permessage-deflate peers thanks to compression.")
	descInflateErrors    = desc("inflate_errors_total", "Connections closed for a compressed message that did not inflate (1007) or inflated past -max-message (1009).")
	descFramesOut        = desc("sent_frames_total", "Data frames delivered to connections.")
	descBytesOut         = desc("sent_bytes_total", "Bytes written to client sockets.")
	descWrites           = desc("write_syscalls_total", "write/writev system calls on client sockets.")
	descQueued           = desc("queued_bytes", "Outbound bytes waiting in per-connection queues.")
	descSlow             = desc("slow_consumer_closes_total", "Connections closed (1008) for a full outbound queue.")
	descKicks            = desc("kicks_total", "Connections replaced by a newer one with the same specialKey.")
	descPings            = desc("pings_sent_total", "Pings sent to quiet connections.")
	descIdle             = desc("idle_timeouts_total", "Connections closed for silence.")
	descCloseCodes       = desc("close_frames_sent_total", "Close frames sent, by close code.", "code")
	descAuthFailures     = desc("auth_failures_total", "Handshakes refused by the token or Origin checks, by reason.", "reason")
	descBudgetHeld       = desc("budget_held_bytes", "Bytes charged to a memory budget (inbound: partial messages and request heads; outbound: broadcasts and queues).", "budget")
	descBudgetLimit      = desc("budget_limit_bytes", "The memory budgets' limits.", "budget")
	descReadPauses       = desc("budget_read_pauses_total", "Times a connection's input was paused because the outbound budget was spent (resumed once it is back under).")
	descFanoutHolds      = desc("fanout_holds_total", "Times a connection's input was held because a shard's fan-out backlog was full (resumed once it is down to half).")
	descBudgetCloses     = desc("budget_closes_total", "Connections closed to keep memory within its budget, by reason.", "reason")
	descShareRefusals    = desc("inbound_share_refusals_total", "Of the inbound_budget closes: the connection's address held its -inbound-share-per-ip.")
	descBuildInfo        = desc("build_info", "Always 1; the labels say which build runs.", "version", "revision", "goversion")
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descHandshaking, descClosing, descAccepted,
		descAcceptErrors, descHandshakesOK, descHandshakesFailed, descHandshakeTimeout, descHandshakeEvicted, descPageRequests, descMessagesIn,
		descBytesIn, descBroadcasts, descDirect, descGzip, descDeflateConns, descDeflate, descDeflateSaved,
		descInflateErrors, descFramesOut, descBytesOut, descWrites,
		descQueued, descSlow, descKicks, descPings, descIdle, descCloseCodes, descAuthFailures,
		descBudgetHeld, descBudgetLimit, descBudgetCloses, descShareRefusals, descReadPauses, descFanoutHolds, descBuildInfo,
		descTLSHandshakes, descTLSFailures} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats
	gauge, counter := metricSink(ch).gauge, metricSink(ch).counter
	v := version.Get()
	ch <- prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1, v.Version, v.Revision, v.GoVersion)
	gauge(descConnections, s.Open.Load())
	gauge(descHandshaking, s.Handshaking.Load())
	gauge(descClosing, s.Closing.Load())
	gauge(descQueued, s.QueuedBytes.Load())
	gauge(descBudgetHeld, s.InboundHeld.Load(), "inbound")
	gauge(descBudgetHeld, s.OutboundHeld.Load(), "outbound")
	gauge(descBudgetLimit, s.InboundBudget, "inbound")
	gauge(descBudgetLimit, s.OutboundBudget, "outbound")
	counter(descBudgetCloses, s.BudgetRefusals.Load(), "inbound_budget")
	counter(descBudgetCloses, s.BudgetEvictions.Load(), "inbound_biggest")
	counter(descShareRefusals, s.ShareRefusals.Load())
	counter(descBudgetCloses, s.BudgetSheds.Load(), "outbound_budget")
	counter(descReadPauses, s.ReadPauses.Load())
	counter(descFanoutHolds, s.FanoutHolds.Load())
	counter(descBudgetCloses, s.MessageTimeouts.Load(), "message_timeout")
	counter(descAccepted, s.Accepted.Load())
	if c.acceptErrors != nil {
		counter(descAcceptErrors, c.acceptErrors())
	}
	counter(descHandshakesOK, s.HandshakesOK.Load())
	s.HandshakeFailures(func(status int, n uint64) {
		label := "other"
		if status != 0 {
			label = strconv.Itoa(status)
		}
		counter(descHandshakesFailed, n, label)
	})
	counter(descHandshakeTimeout, s.HandshakeTimeouts.Load())
	counter(descHandshakeEvicted, s.HandshakesEvicted.Load())
	counter(descPageRequests, s.PageRequests.Load())
	counter(descTLSHandshakes, s.TLSHandshakes.Load())
	counter(descTLSFailures, s.TLSHandshakeFailures.Load())
	counter(descMessagesIn, s.MessagesIn.Load())
	counter(descBytesIn, s.BytesIn.Load())
	counter(descBroadcasts, s.Broadcasts.Load())
	counter(descDirect, s.Direct.Load())
	counter(descGzip, s.GzipEncodings.Load())
	gauge(descDeflateConns, s.DeflateConns.Load())
	counter(descDeflate, s.DeflateEncodings.Load())
	counter(descDeflateSaved, s.DeflateBytesSaved.Load())
	counter(descInflateErrors, s.InflateErrors.Load())
	counter(descFramesOut, s.FramesOut.Load())
	counter(descBytesOut, s.BytesOut.Load())
	counter(descWrites, s.WriteSyscalls.Load())
	counter(descSlow, s.SlowConsumers.Load())
	counter(descKicks, s.Kicks.Load())
	counter(descPings, s.PingsSent.Load())
	counter(descIdle, s.IdleTimeouts.Load())
	s.CloseCodesSent(func(code uint16, n uint64) {
		label := "other"
		if code != 0 {
			label = strconv.Itoa(int(code))
		}
		counter(descCloseCodes, n, label)
	})
	if c.authFailures != nil {
		c.authFailures(func(reason string, n uint64) { counter(descAuthFailures, n, reason) })
	}
}
