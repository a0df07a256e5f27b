package cluster

import (
	"bytes"
	"testing"

	"github.com/wsd-chat/wsd/codec"
)

func TestWireRoundTrip(t *testing.T) {
	gz := codec.AppendGzipFrame(nil, []byte("héllo"))
	for _, m := range []message{
		{Kind: kindRoom, BoxID: "b", Seq: 7, Target: "lobby", Text: []byte("héllo"), Gzip: gz},
		{Kind: kindRoom, BoxID: "box-1", Seq: 1<<63 + 5, Target: "", Text: []byte("")},
		{Kind: kindRoom, BoxID: "b", Seq: 8, Target: "lobby", From: "alice", ID: []byte("c-17"), Text: []byte("héllo")},
		{Kind: kindRoom, BoxID: "b", Seq: 9, Target: "lobby", From: "seed sender", Text: []byte("x")},
		{Kind: kindRoom, BoxID: "b", Seq: 10, Target: "lobby", ID: []byte("id without key"), Text: []byte("x")},
		{Kind: kindAll, BoxID: "b", Seq: 1, Text: []byte("x")},
		{Kind: kindDirect, BoxID: "b", Seq: 2, Target: "some key/with spaces", Text: []byte("x")},
		{Kind: kindClaim, BoxID: "b", Seq: 3, Stamp: 42, Target: "k"},
		{Kind: kindHold, BoxID: "b", Seq: 4, Stamp: 1, Target: "k"},
		{Kind: kindAnnounce, BoxID: "b", Seq: 5, Stamp: 9, Target: "k"},
	} {
		p := m.Append(nil)
		if len(p) != m.Size() {
			t.Fatalf("%v: size %d, encoded %d", m.Kind, m.Size(), len(p))
		}
		var got message
		if err := decode(p, 1<<20, &got); err != nil {
			t.Fatalf("%v: %v", m.Kind, err)
		}
		if got.Kind != m.Kind || got.BoxID != m.BoxID || got.Seq != m.Seq || got.Stamp != m.Stamp ||
			got.Target != m.Target || !bytes.Equal(got.Text, m.Text) || !bytes.Equal(got.Gzip, m.Gzip) ||
			got.From != m.From || !bytes.Equal(got.ID, m.ID) {
			t.Fatalf("round trip: %+v → %+v", m, got)
		}
	}
}

func TestWireRejects(t *testing.T) {
	cases := map[string]struct {
		m    message
		want error
	}{
		"bad room":           {message{Kind: kindRoom, BoxID: "b", Target: "a b", Text: []byte("x")}, errInvalid},
		"all with target":    {message{Kind: kindAll, BoxID: "b", Target: "r", Text: []byte("x")}, errInvalid},
		"direct without key": {message{Kind: kindDirect, BoxID: "b", Text: []byte("x")}, errInvalid},
		"claim with text":    {message{Kind: kindClaim, BoxID: "b", Stamp: 1, Target: "k", Text: []byte("x")}, errInvalid},
		"claim stamp 0":      {message{Kind: kindClaim, BoxID: "b", Target: "k"}, errInvalid},
		"bad utf-8":          {message{Kind: kindRoom, BoxID: "b", Target: "r", Text: []byte{0xff}}, errInvalid},
		"too large":          {message{Kind: kindRoom, BoxID: "b", Target: "r", Text: make([]byte, 11)}, errTooLarge},
		"no box id":          {message{Kind: kindRoom, Target: "r", Text: []byte("x")}, errMalformed},
	}
	for name, c := range cases {
		var got message
		if err := decode(c.m.Append(nil), 10, &got); err != c.want {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestSubjects(t *testing.T) {
	s := subjects{prefix: "wsd"}
	for room, want := range map[string]string{"": "wsd.room.=", "lobby": "wsd.room.lobby", "a.b.c": "wsd.room.a~b~c", "x:y-_": "wsd.room.x:y-_"} {
		if got := s.room(room); got != want {
			t.Errorf("room %q: %q, want %q", room, got, want)
		}
	}
	if a, b := s.key("alice"), s.key("alice "); a == b || len(a) != len("wsd.key.")+16 {
		t.Errorf("key subjects %q %q", a, b)
	}
	for p, ok := range map[string]bool{"wsd": true, "prod.chat": true, "": false, "a..b": false, "a.*": false, "a b": false, "x.>": false} {
		if validPrefix(p) != ok {
			t.Errorf("ValidPrefix(%q) = %v", p, !ok)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add((&message{Kind: kindRoom, BoxID: "b", Target: "r", Text: []byte("x"), Gzip: codec.AppendGzipFrame(nil, []byte("x"))}).Append(nil))
	f.Add((&message{Kind: kindClaim, BoxID: "b", Stamp: 3, Target: "k"}).Append(nil))
	f.Add((&message{Kind: kindRoom, BoxID: "b", Target: "r", From: "alice", ID: []byte("c-1"), Text: []byte("x")}).Append(nil))
	f.Fuzz(func(t *testing.T, p []byte) {
		var m message
		if decode(p, 1<<16, &m) != nil {
			return
		}
		if len(m.From) > maxFrom || len(m.ID) > maxID {
			t.Fatalf("origin past its bounds: %d-byte key, %d-byte id", len(m.From), len(m.ID))
		}
		var again message
		if err := decode(m.Append(nil), 1<<16, &again); err != nil {
			t.Fatalf("re-encoding a valid message fails: %v", err)
		}
		if again.From != m.From || !bytes.Equal(again.ID, m.ID) || !bytes.Equal(again.Text, m.Text) || again.Target != m.Target {
			t.Fatalf("re-encoding changes the message: %+v → %+v", m, again)
		}
		// The previous release reads every message this one accepts and
		// re-encodes (the origin is skipped there, the text the same).
		var old message1
		if err := decodeRelease1(m.Append(nil), 1<<16, &old); err != nil {
			t.Fatalf("the previous release refuses %+v: %v", m, err)
		}
		if !bytes.Equal(old.Text, m.Text) {
			t.Fatalf("the previous release reads text %q, not %q", old.Text, m.Text)
		}
	})
}
