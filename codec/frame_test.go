package codec

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// headerCases: payload lengths around every encoding boundary.
var headerCases = []int{0, 1, 124, 125, 126, 127, 1000, 65534, 65535, 65536, 65537, 1 << 20, 1<<31 - 1, 1 << 32}

func TestHeaderRoundTrip(t *testing.T) {
	for _, n := range headerCases {
		for _, op := range []OpCode{OpText, OpBinary, OpContinuation, OpClose, OpPing, OpPong} {
			for _, fin := range []bool{true, false} {
				hdr := appendHeader([]byte("prefix"), fin, op, n)[len("prefix"):]
				if len(hdr) != headerSize(n, false) {
					t.Fatalf("n=%d: header %d bytes, headerSize says %d", n, len(hdr), headerSize(n, false))
				}
				wantSize := 2
				if n > 65535 {
					wantSize = 10
				} else if n > 125 {
					wantSize = 4
				}
				if len(hdr) != wantSize {
					t.Fatalf("n=%d: %d-byte header, want the minimal %d", n, len(hdr), wantSize)
				}
				h, size := parseHeader(hdr)
				if size != len(hdr) || h.Fin != fin || h.Op != op || h.Masked || h.Length != int64(n) || h.Rsv != 0 {
					t.Fatalf("n=%d op=%v: parsed %+v size %d", n, op, h, size)
				}
				// An independent decoder agrees.
				g, err := ws.ReadHeader(bytes.NewReader(hdr))
				if err != nil || g.Fin != fin || byte(g.OpCode) != byte(op) || g.Masked || g.Length != int64(n) || g.Rsv != 0 {
					t.Fatalf("n=%d op=%v: gobwas reads %+v, %v", n, op, g, err)
				}
				// Every strict prefix is incomplete.
				for i := 0; i < len(hdr); i++ {
					if _, size := parseHeader(hdr[:i]); size != 0 {
						t.Fatalf("n=%d: prefix of %d bytes parsed as complete", n, i)
					}
				}
			}
		}
	}
}

// TestParseHeaderMatchesGobwas: masked client headers written by gobwas/ws
// parse the same, with their mask, and every prefix is incomplete.
func TestParseHeaderMatchesGobwas(t *testing.T) {
	for _, n := range headerCases {
		for _, rsv := range []byte{0, 1, 4, 7} {
			want := ws.Header{Fin: rsv != 1, Rsv: rsv, OpCode: ws.OpBinary, Masked: true, Mask: [4]byte{9, 8, 7, 6}, Length: int64(n)}
			var b bytes.Buffer
			if err := ws.WriteHeader(&b, want); err != nil {
				t.Fatal(err)
			}
			p := append(b.Bytes(), "payload"...)
			h, size := parseHeader(p)
			if size != b.Len() || size != headerSize(n, true) || h.Fin != want.Fin || h.Rsv != rsv || h.Op != OpBinary ||
				!h.Masked || h.Mask != want.Mask || h.Length != int64(n) {
				t.Fatalf("n=%d rsv=%d: %+v size %d", n, rsv, h, size)
			}
			for i := 0; i < size; i++ {
				if _, s := parseHeader(p[:i]); s != 0 {
					t.Fatalf("n=%d: %d-byte prefix complete", n, i)
				}
			}
		}
	}
	// A 64-bit length with the top bit set parses as negative; Stream
	// rejects it (see the stream cases).
	h, size := parseHeader([]byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0})
	if size != 10 || h.Length >= 0 {
		t.Fatalf("msb length: %+v", h)
	}
}

func TestAppendFrame(t *testing.T) {
	for _, n := range []int{0, 3, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte("p"), n)
		for _, op := range []OpCode{OpText, OpBinary, OpPing, OpPong} {
			got := AppendFrame([]byte("dst"), op, payload)
			if !bytes.HasPrefix(got, []byte("dst")) {
				t.Fatal("dst clobbered")
			}
			f, err := ws.ReadFrame(bytes.NewReader(got[3:]))
			if err != nil || !f.Header.Fin || byte(f.Header.OpCode) != byte(op) || f.Header.Masked || !bytes.Equal(f.Payload, payload) {
				t.Fatalf("n=%d op=%v: gobwas reads %+v, %v", n, op, f.Header, err)
			}
			if len(got) != 3+headerSize(n, false)+n {
				t.Fatalf("n=%d: %d bytes", n, len(got))
			}
		}
	}
	if got := AppendFrame(nil, OpText, []byte("abc")); !bytes.Equal(got, []byte{0x81, 3, 'a', 'b', 'c'}) {
		t.Fatalf("AppendFrame: % x", got)
	}
}

func TestAppendClose(t *testing.T) {
	if got := AppendClose(nil, 1001, "bye"); !bytes.Equal(got, []byte{0x88, 5, 0x03, 0xE9, 'b', 'y', 'e'}) {
		t.Fatalf("AppendClose: % x", got)
	}
	if got := AppendClose([]byte{1}, 0, "ignored"); !bytes.Equal(got, []byte{1, 0x88, 0}) {
		t.Fatalf("empty close: % x", got)
	}
	for _, reason := range []string{"", "x", strings.Repeat("x", 123), strings.Repeat("x", 124), strings.Repeat("x", 200),
		strings.Repeat("é", 70), "x" + strings.Repeat("é", 70), strings.Repeat("你", 50), "x" + strings.Repeat("你", 50),
		"xx" + strings.Repeat("你", 50), strings.Repeat("\U0001F600", 40), "x" + strings.Repeat("\U0001F600", 40),
		"xx" + strings.Repeat("\U0001F600", 40), "xxx" + strings.Repeat("\U0001F600", 40)} {
		for _, code := range []uint16{1000, 1002, 4001} {
			frame := AppendClose(nil, code, reason)
			h, size := parseHeader(frame)
			if size != 2 || !h.Fin || h.Op != OpClose || h.Length > MaxControlPayload || int(h.Length) != len(frame)-2 {
				t.Fatalf("reason of %d bytes: header %+v", len(reason), h)
			}
			// What wsd sends must pass its own (and any peer's) checks.
			gotCode, gotReason, err := ParseClose(frame[2:])
			if err != nil || gotCode != code {
				t.Fatalf("reason of %d bytes: ParseClose: %d, %v", len(reason), gotCode, err)
			}
			if !strings.HasPrefix(reason, string(gotReason)) || !utf8.Valid(gotReason) {
				t.Fatalf("reason %q sent as %q", reason, gotReason)
			}
			// Cut only as much as needed: at most one character short.
			if len(reason) <= 123 && len(gotReason) != len(reason) || len(reason) > 123 && len(gotReason) < 123-3 {
				t.Fatalf("reason of %d bytes cut to %d", len(reason), len(gotReason))
			}
		}
	}
}

func TestOpCode(t *testing.T) {
	for op, want := range map[OpCode]string{OpContinuation: "continuation", OpText: "text", OpBinary: "binary",
		OpClose: "close", OpPing: "ping", OpPong: "pong", 3: "reserved(0x3)", 0xB: "reserved(0xb)"} {
		if op.String() != want {
			t.Errorf("%#x: %q, want %q", byte(op), op.String(), want)
		}
	}
	for op := range OpCode(16) {
		if op.IsControl() != (op >= 8) {
			t.Errorf("%v: IsControl %v", op, op.IsControl())
		}
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	for _, n := range []int{128, 16 << 10} {
		payload := bytes.Repeat([]byte("a"), n)
		buf := make([]byte, 0, n+16)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendFrame(buf[:0], OpText, payload)
			}
		})
	}
}
