package history

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/wsd-chat/wsd/chat"
)

// encodeHeader is a record's header block as it travels (NATS/1.0 ...).
func encodeHeader(t testing.TB, h nats.Header) []byte {
	var buf bytes.Buffer
	buf.WriteString("NATS/1.0\r\n")
	for k, vs := range h {
		for _, v := range vs {
			buf.WriteString(k + ": " + v + "\r\n")
		}
	}
	buf.WriteString("\r\n")
	return buf.Bytes()
}

func TestParseRecord(t *testing.T) {
	good := header(3, "abcdefgh", 1700000000000, 42)
	body := appendBody(nil, &chat.Message{From: "alice", ID: []byte("c1"), Text: []byte("héllo")})
	with := func(k, v string) nats.Header {
		h := nats.Header{}
		for kk, vv := range good {
			h[kk] = vv
		}
		if v == "" {
			delete(h, k)
		} else {
			h[k] = []string{v}
		}
		return h
	}
	for _, tc := range []struct {
		name string
		h    nats.Header
		body []byte
		want error
	}{
		{"good", good, body, nil},
		{"no version", with(hdrVersion, ""), body, errVersion},
		{"version 2", with(hdrVersion, "2"), body, errVersion},
		{"seq 0", with(hdrSeq, "0"), body, errHeader},
		{"seq negative", with(hdrSeq, "-1"), body, errHeader},
		{"seq overflow", with(hdrSeq, "18446744073709551616"), body, errHeader},
		{"no epoch", with(hdrEpoch, ""), body, errHeader},
		{"epoch with space", with(hdrEpoch, "a b"), body, errHeader},
		{"epoch too long", with(hdrEpoch, strings.Repeat("e", 65)), body, errHeader},
		{"ts negative", with(hdrTS, "-5"), body, errHeader},
		{"prev not a number", with(hdrPrev, "x"), body, errHeader},
		{"no prev", with(hdrPrev, ""), body, errHeader},
		{"empty body", good, nil, errBody},
		{"from past the end", good, []byte{10, 'a'}, errBody},
		{"from too long", good, appendBody(nil, &chat.Message{From: strings.Repeat("k", MaxFromLen+1)}), errSize},
		{"id too long", good, appendBody(nil, &chat.Message{ID: bytes.Repeat([]byte("i"), chat.MaxIDLen+1)}), errSize},
		{"text too long", good, appendBody(nil, &chat.Message{Text: bytes.Repeat([]byte("t"), 101)}), errSize},
		{"text not utf-8", good, appendBody(nil, &chat.Message{Text: []byte("\xc3")}), errBody},
		{"varint overlong", good, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, errBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseRecord(tc.h, tc.body, 100)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if err == nil && (r.seq != 3 || r.epoch != "abcdefgh" || r.ts != 1700000000000 || r.prev != 42 ||
				string(r.from) != "alice" || string(r.id) != "c1" || string(r.text) != "héllo") {
				t.Fatalf("parsed %+v", r)
			}
		})
	}
	// A repeated header is not wsd's.
	h := with(hdrSeq, "3")
	h.Add(hdrSeq, "4")
	if _, err := parseRecord(h, body, 100); !errors.Is(err, errHeader) {
		t.Fatalf("two seqs: %v", err)
	}
}

func TestMsgID(t *testing.T) {
	a, b := msgID("k", []byte("id")), msgID("k", []byte("id"))
	if a != b || len(a) != 5+32 {
		t.Fatalf("%q %q", a, b)
	}
	// The key's length is hashed, so ("ab","c") and ("a","bc") differ.
	if msgID("ab", []byte("c")) == msgID("a", []byte("bc")) || msgID("k", []byte("id")) == msgID("k2", []byte("id")) {
		t.Fatal("collision")
	}
}

// FuzzParseRecord feeds arbitrary header blocks and bodies to the
// parser a box runs on everything stored on its subjects.
func FuzzParseRecord(f *testing.F) {
	f.Add(encodeHeader(f, header(1, "abcdefgh", 1, 0)), appendBody(nil, &chat.Message{From: "k", ID: []byte("i"), Text: []byte("t")}))
	f.Add([]byte("NATS/1.0\r\nWsd-V: 1\r\nWsd-Seq: 9\r\n\r\n"), []byte{0})
	f.Add([]byte("NATS/1.0 503\r\n\r\n"), []byte(nil))
	f.Fuzz(func(t *testing.T, hdr, body []byte) {
		h, err := nats.DecodeHeadersMsg(hdr)
		if err != nil {
			return
		}
		const maxText = 256
		r, err := parseRecord(h, body, maxText)
		if err != nil {
			return
		}
		if r.seq == 0 || !validEpoch(r.epoch) || len(r.text) > maxText || len(r.from) > MaxFromLen ||
			len(r.id) > chat.MaxIDLen || !utf8.Valid(r.text) {
			t.Fatalf("accepted %+v", r)
		}
		// What it accepts, wsd writes the same way back.
		again, err := parseRecord(header(r.seq, r.epoch, r.ts, r.prev),
			appendBody(nil, &chat.Message{From: string(r.from), ID: r.id, Text: r.text}), maxText)
		if err != nil || again.seq != r.seq || again.epoch != r.epoch || again.ts != r.ts || again.prev != r.prev ||
			!bytes.Equal(again.from, r.from) || !bytes.Equal(again.id, r.id) || !bytes.Equal(again.text, r.text) {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}
