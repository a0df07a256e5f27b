package main

import (
	"testing"
)

func TestJSONValue(t *testing.T) {
	env := `{"type":"message","room":"r","seq":42,"epoch":"k3q7zt2a","ts":1,"from":"a\"b","members":["x","y}"],"nested":{"text":"no"},"recovered":true,"text":"B hi"}`
	for _, tc := range []struct{ key, want string }{
		{"type", "message"},
		{"seq", "42"},
		{"from", `a\"b`},
		{"members", `["x","y}"]`},
		{"recovered", "true"},
		{"text", "B hi"}, // the top-level one, not the nested object's
		{"nope", ""},
	} {
		if got := string(jsonValue([]byte(env), tc.key)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.key, got, tc.want)
		}
	}
	for _, bad := range []string{``, `[]`, `{"type"`, `{"type":}`, `{"a":"unterminated`, `{"a":1 "type":"x"}`} {
		if v := jsonValue([]byte(bad), "type"); v != nil {
			t.Errorf("%q: got %q from a malformed object", bad, v)
		}
	}
	if n, ok := jsonUint([]byte(env), "seq"); !ok || n != 42 {
		t.Errorf("seq %d %v", n, ok)
	}
	if _, ok := jsonUint([]byte(`{"seq":-1}`), "seq"); ok {
		t.Error("negative seq read")
	}
}

// parseV1 takes a message's text as a payload of the run and anything
// else as a control frame; errors and payloads of another run are wrong.
func TestParseV1(t *testing.T) {
	p := make([]byte, 64)
	fillPayload(p, 7, 0, 3, 99)
	msg := `{"type":"message","room":"r","seq":12,"epoch":"e","ts":1,"from":"k","text":"` + string(p) + `"}`
	d := parseV1([]byte(msg), 7, 64)
	if !d.ok || d.kind != kindMessage || d.envSeq != 12 || d.seq != 3 || d.ts != 99 {
		t.Fatalf("message: %+v", d)
	}
	if d := parseV1([]byte(msg), 8, 64); d.ok {
		t.Error("another run's payload accepted")
	}
	if d := parseV1([]byte(`{"type":"joined","room":"r","seq":5,"epoch":"e","recovered":false,"count":1}`), 7, 64); !d.ok || d.kind != kindJoined || d.envSeq != 5 || d.sender != ctrlSender {
		t.Errorf("joined: %+v", d)
	}
	if d := parseV1([]byte(`{"type":"presence","room":"r","count":3}`), 7, 64); !d.ok || d.kind != kindOther {
		t.Errorf("presence: %+v", d)
	}
	if d := parseV1([]byte(`{"type":"error","code":112,"reason":"x"}`), 7, 64); d.ok {
		t.Error("error envelope accepted")
	}
}

func TestAppendCommands(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{string(appendSend(nil, "lobby", []byte("hi"))), `{"type":"send","room":"lobby","text":"hi"}`},
		{string(appendJoin(nil, "lobby", 0, "")), `{"type":"join","room":"lobby"}`},
		{string(appendJoin(nil, "lobby", 41, "k3q7zt2a")), `{"type":"join","room":"lobby","since":41,"epoch":"k3q7zt2a"}`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}
