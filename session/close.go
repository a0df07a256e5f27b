package session

import (
	"net/http"

	"github.com/wsd-chat/wsd/codec"
)

// Every close and every upgrade refusal wsd decides on its own account: its
// limits, budgets, timeouts, shutdown and the seed protocol's codes. What
// RFC 6455 and RFC 7692 decide (malformed frames, invalid UTF-8, a message
// over the size limit, bad compressed data) is package codec's, and the
// refusals of an unauthorized upgrade (401, 403) are package auth's.
//
// Each row below is one value: its name, the close code (or, for a refused
// upgrade, the HTTP status) and reason the peer gets, and when wsd sends
// it. Policies lists the rows in this order, for the documentation.

// Close codes of wsd's own (RFC 6455 section 7.4.2 leaves 4000-4999 to
// applications).
const (
	// closeReplaced is sent to a connection displaced by a newer one with
	// the same specialKey, on this box or another.
	closeReplaced uint16 = 4001
	// closeDisconnected is the default close of a connection a backend
	// logged out (Hub.Disconnect, the admin POST /disconnect).
	closeDisconnected uint16 = 4002
)

var (
	// Closes of an open connection.
	errSlowConsumer = closing("slow_consumer", codec.ClosePolicyViolation, "slow consumer",
		"the connection's outbound queue passed -max-queue bytes")
	errOutboundBudget = closing("outbound_budget", codec.ClosePolicyViolation, "slow consumer: outbound memory budget spent",
		"the outbound budget is spent and this connection holds the most of it")
	errRateLimited = closing("rate_limited", codec.ClosePolicyViolation, "message rate limit",
		"messages and pings arrive faster than -max-msg-rate (after a burst of -msg-burst)")
	errByteRateLimited = closing("byte_rate_limited", codec.ClosePolicyViolation, "byte rate limit",
		"message payload bytes (after gunzip) arrive faster than -max-byte-rate")
	errDeliveryRateLimited = closing("delivery_rate_limited", codec.ClosePolicyViolation, "delivery rate limit",
		"the connection's messages cost more deliveries (each message times the members it reaches) per second than -max-delivery-rate")
	errDeliveryRateLimitedIP = closing("delivery_rate_limited_ip", codec.ClosePolicyViolation, "delivery rate limit of this address",
		"the messages of all the connections from the source address cost more deliveries per second than -max-delivery-rate-per-ip")
	errMessageTimeout = closing("message_timeout", codec.ClosePolicyViolation, "message took too long to arrive",
		"a message's first to last byte took longer than -message-timeout")
	errInflateRatio = adopting("inflate_ratio", codec.ErrInflateRatio,
		"a gzip'd binary or permessage-deflate message inflates past 64 KiB and more than -inflate-ratio times its size")
	errInboundBudget = closing("inbound_budget", codec.CloseTryAgainLater, "server busy: inbound memory budget spent",
		"a partial message would take more than the inbound budget has left")
	errIdle = closing("idle", codec.CloseGoingAway, "idle timeout",
		"nothing arrived for -idle-timeout, pings unanswered")
	errShutdown = closing("shutdown", codec.CloseGoingAway, "server shutting down",
		"the server drains: lame-duck mode or shutdown")
	errReplaced = closing("replaced", closeReplaced, "replaced",
		"a newer connection with the same specialKey joined, here or on another box")
	errDisconnected = closing("disconnected", closeDisconnected, "disconnected by the server",
		"a backend asked for it (POST /disconnect); it may choose another 4000-4999 code and reason")
	errInternal = closing("internal", codec.CloseInternalError, "internal error",
		"reading the connection failed in a way that is no protocol error")

	// Refused upgrades, answered with an HTTP status.
	errOverCapacity = refusing("over_capacity", http.StatusServiceUnavailable, "server at connection limit",
		"-max-conns connections are open (or, past it by 64 sockets, at accept)")
	errDraining = refusing("draining", http.StatusServiceUnavailable, "server shutting down",
		"the server drains; a 503 of its own so a client and a log can tell it from a full server")
	errBusy = refusing("busy", http.StatusServiceUnavailable, "server busy: try again later",
		"the request head would take more than the inbound budget has left")
	errHistoryUnavailable = refusing("history_unavailable", http.StatusServiceUnavailable, "history store did not answer: try again later",
		"a v1 connection's first room needs the history store (since/history older than memory holds) and the store did not answer within its timeout, with nothing of the room in memory")
	errPerIP = refusing("per_ip", http.StatusTooManyRequests, "too many connections from this address",
		"the source address holds -max-conns-per-ip sockets already")
	errHandshakePerIP = refusing("handshake_per_ip", http.StatusTooManyRequests, "too many handshakes from this address",
		"the source address holds -max-handshakes-per-ip sockets that have not upgraded yet")
)

// Policy is one close or refusal wsd decides.
type Policy struct {
	Name    string // stable identifier, for the documentation
	Code    int    // the close code, or the HTTP status of a refused upgrade
	Upgrade bool   // a refused upgrade (Code is an HTTP status), not a close
	Reason  string // the close frame's reason, or the refusal's body line
	When    string // what makes wsd send it
}

// policies is the table, in declaration order.
var policies []Policy

// Policies returns every close and refusal wsd decides, in the order of
// the table above.
func Policies() []Policy { return append([]Policy(nil), policies...) }

// closing adds a close to the table. The values are shared so a close
// allocates nothing; they are compared by identity.
func closing(name string, code uint16, reason, when string) *codec.CloseError {
	policies = append(policies, Policy{Name: name, Code: int(code), Reason: reason, When: when})
	return &codec.CloseError{Code: code, Reason: reason}
}

// adopting adds to the table a close that codec enforces on the session's
// behalf (a bound the session sets through a codec interface), keeping
// codec's value so both compare equal.
func adopting(name string, e *codec.CloseError, when string) *codec.CloseError {
	policies = append(policies, Policy{Name: name, Code: int(e.Code), Reason: e.Reason, When: when})
	return e
}

// refusing adds a refused upgrade to the table.
func refusing(name string, status int, reason, when string) error {
	policies = append(policies, Policy{Name: name, Code: status, Upgrade: true, Reason: reason, When: when})
	return codec.Reject(status, reason)
}
