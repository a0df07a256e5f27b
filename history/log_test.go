package history

import (
	"fmt"
	"slices"
	"testing"

	"github.com/wsd-chat/wsd/chat"
)

func TestSubmitDeliverRead(t *testing.T) {
	l := openEmbedded(t, testConfig(t))
	rec := newRecorder()
	if err := l.Start(rec); err != nil {
		t.Fatal(err)
	}
	var stamps []chat.Stamp
	for i := range 5 {
		r := submit(t, l, chat.Message{Room: "a.b", From: "k", ID: fmt.Appendf(nil, "id%d", i), Text: text(i)})
		if r.err != nil || r.dup {
			t.Fatalf("submit %d: %+v", i, r)
		}
		stamps = append(stamps, r.st)
	}
	msgs := rec.wait(t, 5)
	checkRoomOrder(t, msgs)
	for i, g := range msgs {
		if g.Seq != stamps[i].Seq || g.Epoch != stamps[i].Epoch || g.TS != stamps[i].TS || g.Text != string(text(i)) || g.From != "k" || g.Room != "a.b" {
			t.Fatalf("delivery %d = %+v, stamp %+v", i, g, stamps[i])
		}
	}
	var read []got
	info, err := l.Read("a.b", 2, 10, func(m *chat.Message) {
		read = append(read, got{m.Room, m.Epoch, m.From, string(m.ID), string(m.Text), m.Seq, m.TS})
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (chat.Info{Room: "a.b", Seq: 5, Epoch: stamps[0].Epoch, First: 1, Len: 5, Bytes: info.Bytes}); info != want {
		t.Fatalf("info %+v, want %+v", info, want)
	}
	if len(read) != 3 || !slices.Equal(read, msgs[2:]) {
		t.Fatalf("read %+v, want %+v", read, msgs[2:])
	}
	// An unknown room has no position.
	info, err = l.Read("none", 0, 10, func(*chat.Message) { t.Fatal("read from an empty room") })
	if err != nil || info != (chat.Info{Room: "none", First: 1}) {
		t.Fatalf("empty room: %+v %v", info, err)
	}
}
