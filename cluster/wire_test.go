package cluster

import (
	"bytes"
	"testing"

	"github.com/wsd-chat/wsd/codec"
)

func TestWireRoundTrip(t *testing.T) {
	gz := codec.AppendGzipFrame(nil, []byte("héllo"))
	for _, m := range []Message{
		{Kind: KindRoom, BoxID: "b", Seq: 7, Target: "lobby", Text: []byte("héllo"), Gzip: gz},
		{Kind: KindRoom, BoxID: "box-1", Seq: 1<<63 + 5, Target: "", Text: []byte("")},
		{Kind: KindAll, BoxID: "b", Seq: 1, Text: []byte("x")},
		{Kind: KindDirect, BoxID: "b", Seq: 2, Target: "some key/with spaces", Text: []byte("x")},
		{Kind: KindClaim, BoxID: "b", Seq: 3, Stamp: 42, Target: "k"},
		{Kind: KindHold, BoxID: "b", Seq: 4, Stamp: 1, Target: "k"},
		{Kind: KindAnnounce, BoxID: "b", Seq: 5, Stamp: 9, Target: "k"},
	} {
		p := m.Append(nil)
		if len(p) != m.Size() {
			t.Fatalf("%v: size %d, encoded %d", m.Kind, m.Size(), len(p))
		}
		var got Message
		if err := Decode(p, 1<<20, &got); err != nil {
			t.Fatalf("%v: %v", m.Kind, err)
		}
		if got.Kind != m.Kind || got.BoxID != m.BoxID || got.Seq != m.Seq || got.Stamp != m.Stamp ||
			got.Target != m.Target || !bytes.Equal(got.Text, m.Text) || !bytes.Equal(got.Gzip, m.Gzip) {
			t.Fatalf("round trip: %+v → %+v", m, got)
		}
	}
}

func TestWireRejects(t *testing.T) {
	gz := codec.AppendGzipFrame(nil, []byte("abc"))
	cases := map[string]struct {
		m    Message
		want error
	}{
		"gzip of other text": {Message{Kind: KindRoom, BoxID: "b", Target: "r", Text: []byte("abd"), Gzip: gz}, ErrInvalid},
		"bad room":           {Message{Kind: KindRoom, BoxID: "b", Target: "a b", Text: []byte("x")}, ErrInvalid},
		"all with target":    {Message{Kind: KindAll, BoxID: "b", Target: "r", Text: []byte("x")}, ErrInvalid},
		"direct without key": {Message{Kind: KindDirect, BoxID: "b", Text: []byte("x")}, ErrInvalid},
		"claim with text":    {Message{Kind: KindClaim, BoxID: "b", Stamp: 1, Target: "k", Text: []byte("x")}, ErrInvalid},
		"claim stamp 0":      {Message{Kind: KindClaim, BoxID: "b", Target: "k"}, ErrInvalid},
		"bad utf-8":          {Message{Kind: KindRoom, BoxID: "b", Target: "r", Text: []byte{0xff}}, ErrInvalid},
		"too large":          {Message{Kind: KindRoom, BoxID: "b", Target: "r", Text: make([]byte, 11)}, ErrTooLarge},
		"no box id":          {Message{Kind: KindRoom, Target: "r", Text: []byte("x")}, ErrMalformed},
	}
	for name, c := range cases {
		var got Message
		if err := Decode(c.m.Append(nil), 10, &got); err != c.want {
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
		if ValidPrefix(p) != ok {
			t.Errorf("ValidPrefix(%q) = %v", p, !ok)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add((&Message{Kind: KindRoom, BoxID: "b", Target: "r", Text: []byte("x"), Gzip: codec.AppendGzipFrame(nil, []byte("x"))}).Append(nil))
	f.Add((&Message{Kind: KindClaim, BoxID: "b", Stamp: 3, Target: "k"}).Append(nil))
	f.Fuzz(func(t *testing.T, p []byte) {
		var m Message
		if Decode(p, 1<<16, &m) != nil {
			return
		}
		var again Message
		if err := Decode(m.Append(nil), 1<<16, &again); err != nil {
			t.Fatalf("re-encoding a valid message fails: %v", err)
		}
	})
}
