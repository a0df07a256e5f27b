package main

import (
	"io"
	"testing"

	"github.com/wsd-chat/wsd/session"
)

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
