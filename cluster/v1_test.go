package cluster_test

import (
	"testing"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// A room message from another box names its sender to v1 members as a
// local one does (the origin extension, wire.go): the key and the client
// id of a v1 send, the key of a seed sender, nothing for the admin API.
// Seed members there get the bare text, byte for byte, gzip'd for gzip
// members. With and without bus keys (the MAC covers the sender).
func TestV1FromAcrossBoxes(t *testing.T) {
	for name, opts := range map[string][]boxOpt{"unsigned": nil, "signed": {withKeys(key1)}} {
		t.Run(name, func(t *testing.T) {
			_, boxes := startCluster(t, 2, opts...)
			a, b := boxes[0], boxes[1]
			alice := wstest.DialV1(t, a.addr(), "specialKey=alice&room=lobby")
			alice.Expect(t, "joined")
			dave := wstest.Dial(t, a.addr(), "specialKey=dave&room=lobby")
			bob := wstest.DialV1(t, b.addr(), "specialKey=bob&room=lobby")
			bob.Expect(t, "joined")
			bobGz := wstest.DialV1With(t, b.addr(), wstest.V1Options{Query: "specialKey=bob-gz&room=lobby", Gzip: true})
			bobGz.Expect(t, "joined")
			carol := wstest.Dial(t, b.addr(), "specialKey=carol&room=lobby")
			carolGz := wstest.Dial(t, b.addr(), "specialKey=carol-gz&room=lobby&support_gzip=1")
			syncAll(t, boxes)

			sends := []struct {
				send     func()
				text     string
				from, id string
			}{
				{func() { alice.Send("lobby", "c-17", "héllo \u2028 \"quoted\"") }, "héllo \u2028 \"quoted\"", "alice", "c-17"},
				{func() { alice.Send("lobby", "", "no id") }, "no id", "alice", ""},
				{func() { dave.WriteText("from a seed client") }, "from a seed client", "dave", ""},
				{func() { a.hub().Publish("lobby", []byte("from the backend")) }, "from the backend", "", ""},
			}
			for _, s := range sends {
				s.send()
				for _, v := range []*wstest.V1{bob, bobGz} {
					m := v.ExpectUntil(t, "message")
					if m.Text != s.text || m.From != s.from || m.ID != s.id || m.Has("id") != (s.id != "") {
						t.Fatalf("%q on box B: %s, want from %q id %q", s.text, m.Raw, s.from, s.id)
					}
					if !m.Has("from") {
						t.Fatalf("%q on box B has no from: %s", s.text, m.Raw)
					}
				}
				expectText(t, carol, s.text, false)
				expectText(t, carolGz, s.text, true)
			}
			expectSilence(t, carol, 20e6)
		})
	}
}
