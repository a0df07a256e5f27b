package main

import (
	"io"
	"testing"

	"github.com/wsd-chat/wsd/server"
	"github.com/wsd-chat/wsd/session"
)

// TestSessionLimits: the command line's 0 for a rate is unlimited, which
// session.Config spells < 0 (its 0 is the default); other values pass as
// they are. Start and reload both go through this.
func TestSessionLimits(t *testing.T) {
	for _, tc := range []struct {
		msg, bytes, deliveries             float64
		wantMsg, wantBytes, wantDeliveries float64
	}{
		{0, 0, 0, -1, -1, -1},
		{5, 0, 0, 5, -1, -1},
		{0, 1024, 0, -1, 1024, -1},
		{0, 0, 7, -1, -1, 7},
		{session.DefaultMaxMsgRate, session.DefaultMaxByteRate, session.DefaultMaxDeliveryRate,
			session.DefaultMaxMsgRate, session.DefaultMaxByteRate, session.DefaultMaxDeliveryRate},
	} {
		var c server.Config
		c.Session.MaxMsgRate, c.Session.MaxByteRate, c.Session.MaxDeliveryRate = tc.msg, tc.bytes, tc.deliveries
		got := sessionLimits(c).Session
		if got.MaxMsgRate != tc.wantMsg || got.MaxByteRate != tc.wantBytes || got.MaxDeliveryRate != tc.wantDeliveries {
			t.Errorf("sessionLimits(%v, %v, %v) = %v, %v, %v; want %v, %v, %v", tc.msg, tc.bytes, tc.deliveries,
				got.MaxMsgRate, got.MaxByteRate, got.MaxDeliveryRate, tc.wantMsg, tc.wantBytes, tc.wantDeliveries)
		}
	}
}

// TestPerAddressFlags: -inbound-share-per-ip takes a fraction or a
// percentage; 0 on either per-address flag turns it off, which the
// session package spells as a negative value.
func TestPerAddressFlags(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		share      float64 // after sessionLimits
		handshakes int
	}{
		{nil, session.DefaultInboundSharePerIP, session.DefaultMaxHandshakesPerIP},
		{[]string{"-inbound-share-per-ip", "10%"}, 0.10, session.DefaultMaxHandshakesPerIP},
		{[]string{"-inbound-share-per-ip", "0.5"}, 0.5, session.DefaultMaxHandshakesPerIP},
		{[]string{"-inbound-share-per-ip", "0", "-max-handshakes-per-ip", "0"}, -1, -1},
		{[]string{"-max-handshakes-per-ip", "500"}, session.DefaultInboundSharePerIP, 500},
	} {
		o, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		sc := sessionLimits(o.server).Session
		if sc.InboundSharePerIP != tc.share || sc.MaxHandshakesPerIP != tc.handshakes {
			t.Errorf("%q: share %v, handshakes %d; want %v and %d", tc.args, sc.InboundSharePerIP, sc.MaxHandshakesPerIP, tc.share, tc.handshakes)
		}
	}
}
