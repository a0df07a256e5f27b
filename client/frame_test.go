package client

import (
	"strings"
	"testing"

	"github.com/wsd-chat/wsd/chat"
)

func TestDecodeFrame(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Frame
		err  string // a part of the *ProtocolError's reason; "" for none
	}{
		{`{"type":"message","room":"lobby","seq":42,"epoch":"k3q7zt2a","ts":1764650000123,"from":"alice","id":"c-17","text":"hello"}`,
			Frame{Type: "message", Room: "lobby", Seq: 42, Epoch: "k3q7zt2a", TS: 1764650000123, From: "alice", ID: "c-17", Text: "hello"}, ""},
		{`{"type":"ack","id":"c-17","room":"lobby","seq":42,"epoch":"k3q7zt2a","ts":1,"duplicate":true}`,
			Frame{Type: "ack", ID: "c-17", Room: "lobby", Seq: 42, Epoch: "k3q7zt2a", TS: 1, Duplicate: true}, ""},
		{`{"type":"joined","room":"","seq":0,"epoch":"k3q7zt2a","recovered":false,"count":8}`,
			Frame{Type: "joined", Epoch: "k3q7zt2a", Count: 8}, ""},
		{`{"type":"members","id":"m-3","room":"lobby","count":3,"members":["a","b","c"],"truncated":false}`,
			Frame{Type: "members", ID: "m-3", Room: "lobby", Count: 3, Members: []string{"a", "b", "c"}}, ""},
		{`{"type":"presence","room":"lobby","count":4,"joined":["dave"],"left":[]}`,
			Frame{Type: "presence", Room: "lobby", Count: 4, Joined: []string{"dave"}, Left: []string{}}, ""},
		{`{"type":"error","code":112,"reason":"not a member"}`, Frame{Type: "error", Code: chat.CodeNotMember, Reason: "not a member"}, ""},
		{`{"type":"left","room":"x","later":{"a":[1,2,{"b":null}]}}`, Frame{Type: "left", Room: "x"}, ""},
		{` {"type":"future"} `, Frame{Type: "future"}, ""},

		{``, Frame{}, "not a JSON object"},
		{`[1]`, Frame{}, "not a JSON object"},
		{`"text"`, Frame{}, "not a JSON object"},
		{`{"type":"left","room":"x"`, Frame{}, "unterminated"},
		{`{"type":"left","room":"x"}x`, Frame{}, "data after"},
		{`{"type":"left","room":"x"}{}`, Frame{}, "data after"},
		{`{"room":"x"}`, Frame{}, "no type"},
		{`{"type":""}`, Frame{}, "no type"},
		{`{"type":7}`, Frame{}, `"type"`},
		{`{"type":"left"}`, Frame{}, `lacks "room"`},
		{`{"type":"left","room":null}`, Frame{}, "null"},
		{`{"type":"left","room":"x","room":"y"}`, Frame{}, "twice"},
		{`{"type":"left","room":"a b"}`, Frame{}, "bad room"},
		{`{"type":"left","room":"` + strings.Repeat("r", 65) + `"}`, Frame{}, "bad room"},
		{`{"type":"message","room":"l","seq":1.5,"epoch":"e","ts":1,"from":"","text":""}`, Frame{}, `"seq"`},
		{`{"type":"message","room":"l","seq":1e3,"epoch":"e","ts":1,"from":"","text":""}`, Frame{}, `"seq"`},
		{`{"type":"message","room":"l","seq":18446744073709551616,"epoch":"e","ts":1,"from":"","text":""}`, Frame{}, `"seq"`},
		{`{"type":"message","room":"l","seq":0,"epoch":"e","ts":1,"from":"","text":""}`, Frame{}, "seq 0"},
		{`{"type":"message","room":"l","seq":1,"epoch":"","ts":1,"from":"","text":""}`, Frame{}, "epoch"},
		{`{"type":"message","room":"l","seq":1,"epoch":"e","ts":1,"from":"","text":3}`, Frame{}, `"text"`},
		{`{"type":"ack","id":"","room":"l","seq":1,"epoch":"e","ts":1}`, Frame{}, "id of 0"},
		{`{"type":"joined","room":"l","seq":1,"epoch":"e","recovered":"yes","count":1}`, Frame{}, `"recovered"`},
		{`{"type":"presence","room":"l","count":-1}`, Frame{}, "negative"},
		{`{"type":"members","room":"l","count":1,"members":["a","b"]}`, Frame{}, "members lists 2"},
		{`{"type":"error","code":70000,"reason":"x"}`, Frame{}, `"code"`},
		{"{\"type\":\"left\",\"room\":\"\xff\"}", Frame{}, "UTF-8"},
	} {
		f, err := DecodeFrame([]byte(tc.in))
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.in, err)
				continue
			}
			if jsonString(f) != jsonString(tc.want) {
				t.Errorf("%s:\n got %+v\nwant %+v", tc.in, f, tc.want)
			}
			continue
		}
		if !isProtocolError(err) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%.60s: err %v, want a *ProtocolError with %q", tc.in, err, tc.err)
		}
	}
}

// The envelopes wsd builds (chat's Append*) decode: the client reads
// exactly what the server writes.
func TestDecodeServerEnvelopes(t *testing.T) {
	for _, p := range serverEnvelopes() {
		if _, err := DecodeFrame(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// FuzzDecodeFrame: whatever the bytes, DecodeFrame returns a Frame or a
// *ProtocolError, never panics, and a frame it accepts re-encodes to one
// it accepts the same way.
func FuzzDecodeFrame(f *testing.F) {
	for _, p := range serverEnvelopes() {
		f.Add(p)
	}
	f.Add([]byte(`{"type":"left","room":"x","room":"y"}`))
	f.Add([]byte(`{"type":"message","room":"l","seq":1e3}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		fr, err := DecodeFrame(p)
		if err != nil {
			if !isProtocolError(err) {
				t.Fatalf("%T %v", err, err)
			}
			return
		}
		if fr.Type == "" {
			t.Fatal("accepted a frame without a type")
		}
		if fr.Room != "" && !chat.ValidRoom(fr.Room) {
			t.Fatalf("accepted room %q", fr.Room)
		}
	})
}

// serverEnvelopes are frames built by wsd's own encoders.
func serverEnvelopes() [][]byte {
	st := chat.Stamp{Seq: 42, Epoch: "k3q7zt2a", TS: 1764650000123}
	return [][]byte{
		chat.AppendMessage(nil, &chat.Message{Room: "lobby", Stamp: st, From: "al\"ice", ID: []byte("c-1"), Text: []byte("hé\n\u2028llo")}),
		chat.AppendMessage(nil, &chat.Message{Room: "", Stamp: st, Text: []byte("")}),
		chat.AppendAck(nil, []byte("c-1"), &chat.Ack{Room: "lobby", Stamp: st}, true),
		chat.AppendJoined(nil, &chat.Joined{ID: []byte("j-1"), Room: "support", Seq: 57, Epoch: "k3q7zt2a", Recovered: true, Count: 12}),
		chat.AppendJoined(nil, &chat.Joined{Room: "", Epoch: "k3q7zt2a"}),
		chat.AppendLeft(nil, []byte("l-2"), "support"),
		chat.AppendMembers(nil, []byte("m-3"), "lobby", 3, []string{"alice", "bob", "carol"}),
		chat.AppendMembers(nil, nil, "lobby", 300, []string{"alice"}),
		chat.AppendPresence(nil, &chat.PresenceEvent{Room: "lobby", Count: 4, Lists: true, Joined: []string{"dave"}}),
		chat.AppendPresence(nil, &chat.PresenceEvent{Room: "town-square", Count: 10214}),
		chat.AppendError(nil, []byte("c-18"), chat.CodeTooLong, "text is longer than 65536 bytes"),
		chat.AppendError(nil, nil, chat.CodeMalformed, "bad JSON"),
	}
}

// A room a history store has never had a message in answers joined with
// no epoch yet; anywhere else an empty epoch is a protocol error.
func TestDecodeFrameEmptyEpoch(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"type":"joined","room":"a","seq":0,"epoch":"","recovered":false,"count":1}`, true},
		{`{"type":"joined","room":"a","seq":3,"epoch":"","recovered":false,"count":1}`, false},
		{`{"type":"message","room":"a","seq":1,"epoch":"","ts":1,"from":"k","text":"x"}`, false},
	} {
		_, err := DecodeFrame([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}
