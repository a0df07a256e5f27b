package chat

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func decode(t testing.TB, b []byte) map[string]any {
	t.Helper()
	if !json.Valid(b) || !utf8.Valid(b) {
		t.Fatalf("not valid JSON/UTF-8: %q", b)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEnvelopesRoundTrip(t *testing.T) {
	hard := "q\"b\\s/\x00\x1f\x7f\n\r\t é€😀 \u2028\u2029 <&>"
	stamp := Stamp{Seq: 1<<64 - 1, Epoch: "abcdefgh", TS: 1764633600123}
	n := func(s string) json.Number { return json.Number(s) }
	for _, tc := range []struct {
		name string
		got  []byte
		want map[string]any
	}{
		{"message", AppendMessage(nil, &Message{Room: "lobby", Stamp: stamp, From: hard, ID: []byte("c1"), Text: []byte(hard)}),
			map[string]any{"type": "message", "room": "lobby", "seq": n("18446744073709551615"), "epoch": "abcdefgh",
				"ts": n("1764633600123"), "from": hard, "id": "c1", "text": hard}},
		{"message without id, from the admin API", AppendMessage(nil, &Message{Room: "r", Stamp: Stamp{Seq: 1, Epoch: "e"}, Text: []byte("t")}),
			map[string]any{"type": "message", "room": "r", "seq": n("1"), "epoch": "e", "ts": n("0"), "from": "", "text": "t"}},
		{"ack", AppendAck(nil, []byte("c\"1"), &Ack{Room: "r", Stamp: stamp}, false),
			map[string]any{"type": "ack", "id": "c\"1", "room": "r", "seq": n("18446744073709551615"), "epoch": "abcdefgh", "ts": n("1764633600123")}},
		{"ack duplicate", AppendAck(nil, []byte("c"), &Ack{Room: "r", Stamp: Stamp{Seq: 2, Epoch: "e", TS: 5}}, true),
			map[string]any{"type": "ack", "id": "c", "room": "r", "seq": n("2"), "epoch": "e", "ts": n("5"), "duplicate": true}},
		{"joined", AppendJoined(nil, &Joined{ID: []byte("j"), Room: "r", Seq: 7, Epoch: "e", Recovered: true, Count: 3}),
			map[string]any{"type": "joined", "id": "j", "room": "r", "seq": n("7"), "epoch": "e", "recovered": true, "count": n("3")}},
		{"joined first room", AppendJoined(nil, &Joined{Room: "r", Epoch: "e"}),
			map[string]any{"type": "joined", "room": "r", "seq": n("0"), "epoch": "e", "recovered": false, "count": n("0")}},
		{"direct", AppendDirect(nil, 1764633600123, "", []byte(hard)),
			map[string]any{"type": "direct", "ts": n("1764633600123"), "from": "", "text": hard}},
		{"left", AppendLeft(nil, nil, "r"), map[string]any{"type": "left", "room": "r"}},
		{"members", AppendMembers(nil, []byte("m"), "r", 3, []string{"a", hard}),
			map[string]any{"type": "members", "id": "m", "room": "r", "count": n("3"), "members": []any{"a", hard}, "truncated": true}},
		{"members empty", AppendMembers(nil, nil, "r", 0, nil),
			map[string]any{"type": "members", "room": "r", "count": n("0"), "members": []any{}, "truncated": false}},
		{"presence", AppendPresence(nil, &PresenceEvent{Room: "r", Count: 2, Lists: true, Joined: []string{"a", "b"}}),
			map[string]any{"type": "presence", "room": "r", "count": n("2"), "joined": []any{"a", "b"}, "left": []any{}}},
		{"presence counts only", AppendPresence(nil, &PresenceEvent{Room: "r", Count: 5000}),
			map[string]any{"type": "presence", "room": "r", "count": n("5000")}},
		{"error", AppendError(nil, []byte("c"), CodeBadRoom, "room must be valid"),
			map[string]any{"type": "error", "id": "c", "code": n("104"), "reason": "room must be valid"}},
		{"error without id", AppendError(nil, nil, CodeMalformed, "not a JSON object"),
			map[string]any{"type": "error", "code": n("100"), "reason": "not a JSON object"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decode(t, tc.got); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %v\nwant %v\nfrom %s", got, tc.want, tc.got)
			}
			if bytes.Contains(tc.got, []byte("\u2028")) || bytes.Contains(tc.got, []byte("\u2029")) {
				t.Fatalf("raw U+2028/2029 in %q", tc.got)
			}
		})
	}
}

func TestEnvelopeFieldOrder(t *testing.T) {
	got := string(AppendMessage(nil, &Message{Room: "r", Stamp: Stamp{Seq: 3, Epoch: "e", TS: 9}, From: "k", ID: []byte("c"), Text: []byte("hi")}))
	want := `{"type":"message","room":"r","seq":3,"epoch":"e","ts":9,"from":"k","id":"c","text":"hi"}`
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestAppendStringEscapes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{`"\`, `"\"\\"`},
		{"\n\r\t\b\f\x00\x1f", `"\n\r\t\u0008\u000c\u0000\u001f"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"é😀\ufffd", "\"é😀\ufffd\""},
		{"a\xffb", `"a\ufffdb"`},
		{"\xe2\x82", `"\ufffd\ufffd"`},           // cut-off character
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // a surrogate encoded
		{"\xc0\xaf", `"\ufffd\ufffd"`},           // overlong
	} {
		if got := string(appendString(nil, tc.in)); got != tc.want {
			t.Errorf("appendString(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if got := string(appendString(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("appendString([]byte %q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// FuzzAppendString checks the escaper against encoding/json: the output
// is valid JSON and UTF-8 with no raw U+2028/2029, and decodes to what
// encoding/json's own encoding of s decodes to (invalid bytes as U+FFFD).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00\u2028", "é\xff😀", "\xed\xa0\x80", strings.Repeat("\\", 5)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendString([]byte("x"), s)[1:]
		if !json.Valid(got) || !utf8.Valid(got) || bytes.Contains(got, []byte("\u2028")) || bytes.Contains(got, []byte("\u2029")) {
			t.Fatalf("bad output %q for %q", got, s)
		}
		ref, _ := json.Marshal(s)
		var a, b string
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(ref, &b)
		if a != b {
			t.Fatalf("%q decodes to %q, encoding/json's to %q", s, a, b)
		}
		if string(appendString(nil, []byte(s))) != string(got) {
			t.Fatal("string and []byte forms differ")
		}
		if utf8.ValidString(s) && !strings.ContainsAny(s, "\u2028\u2029") && a != s {
			t.Fatalf("valid %q came back as %q", s, a)
		}
	})
}

func BenchmarkAppendMessageEnvelope(b *testing.B) {
	m := Message{Room: "lobby", Stamp: Stamp{Seq: 123456, Epoch: "abcdefgh", TS: 1764633600123}, From: "user-42",
		ID: []byte("8f14e45f-ceea-467f-a0e6"), Text: []byte("hello everyone, the meeting moved to 3pm")}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMessage(buf[:0], &m)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkAppendMessageEnvelopeEscaped(b *testing.B) {
	m := Message{Room: "lobby", Stamp: Stamp{Seq: 123456, Epoch: "abcdefgh", TS: 1764633600123}, From: "user-42",
		Text: []byte("caf\u00e9 \"quoted\"\nnew line 😀 ünïcödé text")}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMessage(buf[:0], &m)
	}
	b.SetBytes(int64(len(buf)))
}
