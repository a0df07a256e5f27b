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
		msg, bytes         float64
		wantMsg, wantBytes float64
	}{
		{0, 0, -1, -1},
		{5, 0, 5, -1},
		{0, 1024, -1, 1024},
		{session.DefaultMaxMsgRate, session.DefaultMaxByteRate, session.DefaultMaxMsgRate, session.DefaultMaxByteRate},
	} {
		var c server.Config
		c.Session.MaxMsgRate, c.Session.MaxByteRate = tc.msg, tc.bytes
		got := sessionLimits(c).Session
		if got.MaxMsgRate != tc.wantMsg || got.MaxByteRate != tc.wantBytes {
			t.Errorf("sessionLimits(%v, %v) = %v, %v; want %v, %v", tc.msg, tc.bytes, got.MaxMsgRate, got.MaxByteRate, tc.wantMsg, tc.wantBytes)
		}
	}
}
