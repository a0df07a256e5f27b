package chat_test

import (
	"fmt"
	"time"

	"github.com/wsd-chat/wsd/chat"
)

func ExampleParseCommand() {
	frame := []byte(`{"type":"send","room":"lobby","id":"c-17","text":"caf\u00e9"}`)
	var cmd chat.Command
	if err := chat.ParseCommand(&cmd, frame, chat.Limits{MaxText: 1 << 16}); err != nil {
		panic(err)
	}
	fmt.Printf("%s %s %s %s\n", cmd.Type, cmd.Room, cmd.ID, cmd.Text)

	bad := []byte(`{"type":"send","room":"no spaces","id":"c-18","text":"x"}`)
	err := chat.ParseCommand(&cmd, bad, chat.Limits{})
	e := err.(*chat.Error)
	fmt.Printf("%s\n", chat.AppendError(nil, cmd.ID, e.Code, e.Reason))
	// Output:
	// send lobby c-17 café
	// {"type":"error","id":"c-18","code":104,"reason":"room must be empty (the global room) or 1-64 bytes of A-Z a-z 0-9 _ - . :"}
}

type printer struct{}

func (printer) Publish(room string, s chat.Stamp, env []byte) { fmt.Printf("live %s\n", env) }

type join struct{ since uint64 }

func (j join) Attach(i chat.Info) {
	fmt.Printf("joined seq=%d recovered=%v\n", i.Seq, chat.Recoverable(i, j.since, i.Epoch))
}
func (join) Replay(e chat.Entry) { fmt.Printf("replay %s\n", e.Frame) }

func ExampleRing_Since() {
	ring := chat.NewRing(chat.RingConfig{
		NewEpoch: func() string { return "k3q7zt2a" },
		Now:      func() time.Time { return time.UnixMilli(1764650000123) },
	})
	for _, text := range []string{"one", "two", "three"} {
		ring.Append(chat.Message{Room: "lobby", From: "alice", Text: []byte(text)}, nil)
	}
	// A client that has seq 1 comes back.
	ring.Since("lobby", 1, "k3q7zt2a", join{since: 1})
	// Live traffic after the join.
	st, _ := ring.Append(chat.Message{Room: "lobby", From: "bob", ID: []byte("b-1"), Text: []byte("four")}, printer{})
	fmt.Println("ack seq", st.Seq)
	// Output:
	// joined seq=3 recovered=true
	// replay {"type":"message","room":"lobby","seq":2,"epoch":"k3q7zt2a","ts":1764650000123,"from":"alice","text":"two"}
	// replay {"type":"message","room":"lobby","seq":3,"epoch":"k3q7zt2a","ts":1764650000123,"from":"alice","text":"three"}
	// live {"type":"message","room":"lobby","seq":4,"epoch":"k3q7zt2a","ts":1764650000123,"from":"bob","id":"b-1","text":"four"}
	// ack seq 4
}
