package main

import (
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
