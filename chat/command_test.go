package chat

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wsd-chat/wsd/codec"
)

func parse(t testing.TB, s string, lim Limits) (Command, error) {
	t.Helper()
	var c Command
	err := ParseCommand(&c, []byte(s), lim)
	return c, err
}

func TestParseCommandAccepts(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Command
	}{
		{"send", `{"type":"send","room":"lobby","id":"c1","text":"hi"}`,
			Command{Type: TypeSend, Room: []byte("lobby"), ID: []byte("c1"), Text: []byte("hi")}},
		{"send without id", `{"type":"send","room":"a","text":""}`,
			Command{Type: TypeSend, Room: []byte("a"), Text: []byte{}}},
		{"key order and whitespace", " \r\n\t{ \"text\" : \"x\" , \"room\":\"r.1:_-\",\"type\":\"send\" } \n",
			Command{Type: TypeSend, Room: []byte("r.1:_-"), Text: []byte("x")}},
		{"escapes", `{"type":"send","room":"r","text":"a\"b\\c\/d\b\f\n\r\t\u00e9\u20ac\ud83d\ude00\u0000"}`,
			Command{Type: TypeSend, Room: []byte("r"), Text: []byte("a\"b\\c/d\b\f\n\r\té€😀\x00")}},
		{"escaped key", `{"\u0074ype":"leave","room":"r"}`, Command{Type: TypeLeave, Room: []byte("r")}},
		{"the global room", `{"type":"send","room":"","text":"x"}`, Command{Type: TypeSend, Room: []byte{}, Text: []byte("x")}},
		{"raw utf-8", `{"type":"send","room":"r","text":"héllo 😀"}`,
			Command{Type: TypeSend, Room: []byte("r"), Text: []byte("héllo 😀")}},
		{"join since", `{"type":"join","room":"r","since":18446744073709551615,"epoch":"abcdefgh"}`,
			Command{Type: TypeJoin, Room: []byte("r"), HasSince: true, Since: 1<<64 - 1, Epoch: []byte("abcdefgh")}},
		{"join since 0", `{"type":"join","room":"r","since":0,"epoch":"e"}`,
			Command{Type: TypeJoin, Room: []byte("r"), HasSince: true, Epoch: []byte("e")}},
		{"join history", `{"type":"join","room":"r","history":100,"id":"j"}`,
			Command{Type: TypeJoin, Room: []byte("r"), HasHistory: true, History: 100, ID: []byte("j")}},
		{"join plain", `{"type":"join","room":"r"}`, Command{Type: TypeJoin, Room: []byte("r")}},
		{"members", `{"type":"members","room":"r"}`, Command{Type: TypeMembers, Room: []byte("r")}},
		{"unknown fields ignored", `{"type":"leave","room":"r","x":{"a":[1,-2.5e3,true,false,null,"s",{}],"b":[]},"y":"\u00e9"}`,
			Command{Type: TypeLeave, Room: []byte("r")}},
		{"case-sensitive keys: Type is unknown", `{"type":"leave","Type":"send","room":"r"}`,
			Command{Type: TypeLeave, Room: []byte("r")}},
		{"id at max", `{"type":"leave","room":"r","id":"` + strings.Repeat("i", 64) + `"}`,
			Command{Type: TypeLeave, Room: []byte("r"), ID: []byte(strings.Repeat("i", 64))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse(t, tc.in, Limits{})
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !sameCommand(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func sameCommand(a, b Command) bool {
	return a.Type == b.Type && string(a.Room) == string(b.Room) && string(a.ID) == string(b.ID) &&
		string(a.Text) == string(b.Text) && (a.Text == nil) == (b.Text == nil) && a.HasSince == b.HasSince && a.Since == b.Since &&
		string(a.Epoch) == string(b.Epoch) && a.HasHistory == b.HasHistory && a.History == b.History
}

func TestParseCommandRefuses(t *testing.T) {
	long := strings.Repeat("x", 65)
	for _, tc := range []struct {
		name, in string
		code     Code
		id       string // echoed id
	}{
		{"empty", ``, CodeMalformed, ""},
		{"not an object", `["send"]`, CodeMalformed, ""},
		{"truncated", `{"type":"send","room":"r"`, CodeMalformed, ""},
		{"trailing data", `{"type":"leave","room":"r"}x`, CodeMalformed, ""},
		{"two objects", `{"type":"leave","room":"r"}{}`, CodeMalformed, ""},
		{"trailing comma", `{"type":"leave","room":"r",}`, CodeMalformed, ""},
		{"single quotes", `{'type':'leave'}`, CodeMalformed, ""},
		{"unquoted key", `{type:"leave"}`, CodeMalformed, ""},
		{"raw control char", "{\"type\":\"send\",\"room\":\"r\",\"text\":\"a\nb\"}", CodeMalformed, ""},
		{"bad escape", `{"type":"send","room":"r","text":"\x"}`, CodeMalformed, ""},
		{"short \\u", `{"type":"send","room":"r","text":"\u12"}`, CodeMalformed, ""},
		{"lone high surrogate", `{"type":"send","room":"r","text":"\ud83d"}`, CodeMalformed, ""},
		{"high surrogate then letter", `{"type":"send","room":"r","text":"\ud83dx"}`, CodeMalformed, ""},
		{"high then high", `{"type":"send","room":"r","text":"\ud83d\ud83d"}`, CodeMalformed, ""},
		{"lone low surrogate", `{"type":"send","room":"r","text":"\ude00"}`, CodeMalformed, ""},
		{"invalid utf-8", "{\"type\":\"send\",\"room\":\"r\",\"text\":\"\xff\"}", CodeMalformed, ""},
		{"utf-8 surrogate bytes", "{\"type\":\"send\",\"room\":\"r\",\"text\":\"\xed\xa0\x80\"}", CodeMalformed, ""},
		{"invalid utf-8 in ignored field", "{\"type\":\"leave\",\"room\":\"r\",\"x\":\"\xc3\"}", CodeMalformed, ""},
		{"duplicate key", `{"type":"leave","room":"r","room":"s"}`, CodeMalformed, ""},
		{"duplicate type", `{"type":"leave","type":"leave","room":"r"}`, CodeMalformed, ""},
		{"nesting too deep", `{"type":"leave","room":"r","x":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, CodeMalformed, ""},
		{"bad literal", `{"type":"leave","room":"r","x":nul}`, CodeMalformed, ""},
		{"bad number", `{"type":"join","room":"r","history":01}`, CodeMalformed, ""},
		{"bad number fraction", `{"type":"join","room":"r","history":1.}`, CodeMalformed, ""},
		{"malformed wins over semantics", `{"type":"nope","room":"r",}`, CodeMalformed, ""},
		{"missing type", `{"room":"r"}`, CodeMissingField, ""},
		{"unknown type", `{"type":"publish","room":"r","id":"c"}`, CodeUnknownType, "c"},
		{"type not a string", `{"type":1,"room":"r"}`, CodeBadField, ""},
		{"missing room", `{"type":"send","id":"c","text":"x"}`, CodeMissingField, "c"},
		{"room not a string", `{"type":"leave","room":5}`, CodeBadField, ""},
		{"room null", `{"type":"leave","room":null}`, CodeBadField, ""},
		{"room bad char", `{"type":"leave","room":"a b"}`, CodeBadRoom, ""},
		{"room too long", `{"type":"leave","room":"` + long + `"}`, CodeBadRoom, ""},
		{"missing text", `{"type":"send","room":"r","id":"c"}`, CodeMissingField, "c"},
		{"text too long", `{"type":"send","room":"r","id":"c","text":"12345"}`, CodeTooLong, "c"},
		{"text too long after unescape", `{"type":"send","room":"r","text":"\u00e9\u00e9\u00e9"}`, CodeTooLong, ""},
		{"text not a string", `{"type":"send","room":"r","text":["x"]}`, CodeBadField, ""},
		{"id too long, then malformed", `{"type":"send","room":"r","id":"` + long + `",}`, CodeMalformed, ""},
		{"id read, then malformed", `{"type":"send","id":"c9",}`, CodeMalformed, "c9"},
		{"id too long", `{"type":"send","room":"r","id":"` + long + `","text":"x"}`, CodeTooLong, ""},
		{"empty id", `{"type":"send","room":"r","id":"","text":"x"}`, CodeBadField, ""},
		{"id not a string", `{"type":"send","room":"r","id":7,"text":"x"}`, CodeBadField, ""},
		{"text on join", `{"type":"join","room":"r","text":"x"}`, CodeBadField, ""},
		{"history on send", `{"type":"send","room":"r","text":"x","history":1}`, CodeBadField, ""},
		{"since on leave", `{"type":"leave","room":"r","since":1,"epoch":"e"}`, CodeBadField, ""},
		{"since without epoch", `{"type":"join","room":"r","since":3}`, CodeMissingField, ""},
		{"epoch without since", `{"type":"join","room":"r","epoch":"e"}`, CodeMissingField, ""},
		{"since and history", `{"type":"join","room":"r","since":3,"epoch":"e","history":2}`, CodeBadField, ""},
		{"epoch with history", `{"type":"join","room":"r","history":2,"epoch":"e"}`, CodeBadField, ""},
		{"empty epoch", `{"type":"join","room":"r","since":1,"epoch":""}`, CodeBadField, ""},
		{"epoch too long", `{"type":"join","room":"r","since":1,"epoch":"` + strings.Repeat("e", 33) + `"}`, CodeTooLong, ""},
		{"negative since", `{"type":"join","room":"r","since":-1,"epoch":"e"}`, CodeBadField, ""},
		{"fractional since", `{"type":"join","room":"r","since":1.5,"epoch":"e"}`, CodeBadField, ""},
		{"exponent since", `{"type":"join","room":"r","since":1e3,"epoch":"e"}`, CodeBadField, ""},
		{"since as string", `{"type":"join","room":"r","since":"3","epoch":"e"}`, CodeBadField, ""},
		{"since overflows by one", `{"type":"join","room":"r","since":18446744073709551616,"epoch":"e"}`, CodeBadField, ""},
		{"since overflows", `{"type":"join","room":"r","since":99999999999999999999,"epoch":"e"}`, CodeBadField, ""},
		{"negative history", `{"type":"join","room":"r","history":-5}`, CodeBadField, ""},
		{"history over limit", `{"type":"join","room":"r","history":101}`, CodeBadField, ""},
		{"huge history", `{"type":"join","room":"r","history":99999999999999999999}`, CodeBadField, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse(t, tc.in, Limits{MaxText: 4})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v (%+v), want *Error", err, got)
			}
			if e.Code != tc.code {
				t.Fatalf("code %v (%s), want %v", e.Code, e.Reason, tc.code)
			}
			if e.Reason == "" {
				t.Fatal("no reason")
			}
			if string(got.ID) != tc.id {
				t.Fatalf("id %q, want %q", got.ID, tc.id)
			}
		})
	}
}

func TestParseCommandTextAtMax(t *testing.T) {
	c, err := parse(t, `{"type":"send","room":"r","text":"\u00e9\u00e9"}`, Limits{MaxText: 4})
	if err != nil || string(c.Text) != "éé" {
		t.Fatalf("%q %v", c.Text, err)
	}
}

func TestParseCommandHistoryLimit(t *testing.T) {
	if _, err := parse(t, `{"type":"join","room":"r","history":500}`, Limits{MaxHistory: 500}); err != nil {
		t.Fatal(err)
	}
	if _, err := parse(t, `{"type":"join","room":"r","history":501}`, Limits{MaxHistory: 500}); err == nil {
		t.Fatal("history over MaxHistory accepted")
	}
}

func TestValidRoomMatchesCodec(t *testing.T) {
	for c := 0; c < 256; c++ {
		for _, name := range []string{string(rune(c)), "a" + string([]byte{byte(c)}), strings.Repeat(string([]byte{byte(c)}), 64), strings.Repeat("a", 65)} {
			if ValidRoom(name) != codec.ValidRoom([]byte(name)) {
				t.Fatalf("ValidRoom(%q) disagrees with codec", name)
			}
		}
	}
	if ValidRoom("") || codec.ValidRoom(nil) {
		t.Fatal("empty room valid")
	}
	if MaxRoomLen != codec.MaxRoomLen {
		t.Fatal("MaxRoomLen differs from codec's")
	}
}

// FuzzParseCommand checks ParseCommand against encoding/json: whatever it
// accepts is valid JSON and encoding/json reads the same values from it;
// it never panics and never writes outside the frame.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		`{"type":"send","room":"lobby","id":"c1","text":"hi"}`,
		`{"type":"send","room":"r","text":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00"}`,
		`{"type":"join","room":"r","since":5,"epoch":"abcdefgh"}`,
		`{"type":"join","room":"r","history":10}`,
		`{"type":"leave","room":"r","x":[1,{"a":null}]}`,
		`{"type":"members","room":"r","id":"m"}`,
		`{"type":"send","room":"r","text":"\ud83d"}`,
		"{\"type\":\"send\",\"room\":\"r\",\"text\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p := append([]byte(nil), in...)
		var c Command
		err := ParseCommand(&c, p, Limits{MaxText: 1 << 20, MaxHistory: 1000})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Reason == "" {
				t.Fatalf("refusal %v is not a *Error with a reason", err)
			}
			return
		}
		if !json.Valid(in) {
			t.Fatalf("accepted invalid JSON %q", in)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(in, &m); err != nil {
			t.Fatalf("accepted %q that encoding/json refuses: %v", in, err)
		}
		str := func(key string, got []byte) {
			raw, ok := m[key]
			if !ok {
				if got != nil {
					t.Fatalf("%s: got %q, encoding/json has none", key, got)
				}
				return
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			if s != string(got) || !utf8.ValidString(s) {
				t.Fatalf("%s: got %q, encoding/json %q", key, got, s)
			}
		}
		str("room", c.Room)
		str("id", c.ID)
		str("text", c.Text)
		str("epoch", c.Epoch)
		var typ string
		json.Unmarshal(m["type"], &typ)
		if typ != c.Type.String() {
			t.Fatalf("type %q, encoding/json %q", c.Type, typ)
		}
		if raw, ok := m["since"]; ok {
			var v uint64
			if err := json.Unmarshal(raw, &v); err != nil || v != c.Since || !c.HasSince {
				t.Fatalf("since %d, encoding/json %s", c.Since, raw)
			}
		}
		if raw, ok := m["history"]; ok {
			var v int
			if err := json.Unmarshal(raw, &v); err != nil || v != c.History || !c.HasHistory {
				t.Fatalf("history %d, encoding/json %s", c.History, raw)
			}
		}
	})
}

func BenchmarkParseSend(b *testing.B) {
	frame := []byte(`{"type":"send","room":"lobby","id":"8f14e45f-ceea-467f-a0e6","text":"hello everyone, the meeting moved to 3pm"}`)
	p := make([]byte, len(frame))
	var c Command
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		copy(p, frame)
		if err := ParseCommand(&c, p, Limits{MaxText: 1 << 16}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseJoinSince(b *testing.B) {
	frame := []byte(`{"type":"join","room":"support","since":1844674407370955161,"epoch":"k3q7zt2a","id":"j-1"}`)
	p := make([]byte, len(frame))
	var c Command
	b.ReportAllocs()
	for b.Loop() {
		copy(p, frame)
		if err := ParseCommand(&c, p, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSendEscaped(b *testing.B) {
	frame := []byte(`{"type":"send","room":"lobby","id":"c1","text":"caf\u00e9 \"quoted\"\nnew line \ud83d\ude00"}`)
	p := make([]byte, len(frame))
	var c Command
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		copy(p, frame)
		if err := ParseCommand(&c, p, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseCommandEncoded runs the other way: commands encoding/json
// writes from arbitrary values must be accepted, with the same values,
// whenever the values themselves are acceptable.
func FuzzParseCommandEncoded(f *testing.F) {
	f.Add(uint8(0), "lobby", "c1", "hi\u2028\"", uint64(5), "abcdefgh", false)
	f.Add(uint8(1), "r", "", "", uint64(1<<63), "e", true)
	f.Fuzz(func(t *testing.T, kind uint8, room, id, text string, n uint64, epoch string, withSince bool) {
		m := map[string]any{"room": room}
		if id != "" {
			m["id"] = id
		}
		switch kind % 4 {
		case 0:
			m["type"], m["text"] = "send", text
		case 1:
			m["type"] = "join"
			if withSince {
				m["since"], m["epoch"] = n, epoch
			} else {
				m["history"] = n % 200
			}
		case 2:
			m["type"] = "leave"
		case 3:
			m["type"] = "members"
		}
		in, err := json.Marshal(m)
		if err != nil {
			t.Skip()
		}
		for _, s := range []string{room, id, text, epoch} {
			if !utf8.ValidString(s) {
				t.Skip() // encoding/json would substitute U+FFFD; a different value
			}
		}
		var c Command
		err = ParseCommand(&c, in, Limits{MaxHistory: 100})
		ok := (room == "" || ValidRoom(room)) && len(id) <= MaxIDLen
		if kind%4 == 1 && withSince {
			ok = ok && epoch != "" && len(epoch) <= MaxEpochLen
		}
		if kind%4 == 1 && !withSince {
			ok = ok && n%200 <= 100
		}
		if ok != (err == nil) {
			t.Fatalf("%s: err %v, want ok=%v", in, err, ok)
		}
		if err != nil {
			return
		}
		if string(c.Room) != room || string(c.ID) != id || c.Type.String() != m["type"] {
			t.Fatalf("%s: got %+v", in, c)
		}
		if kind%4 == 0 && string(c.Text) != text {
			t.Fatalf("%s: text %q", in, c.Text)
		}
		if kind%4 == 1 && withSince && (c.Since != n || string(c.Epoch) != epoch) {
			t.Fatalf("%s: since %d epoch %q", in, c.Since, c.Epoch)
		}
	})
}
