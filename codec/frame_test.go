package codec

import (
	"bytes"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20} {
		for _, op := range []OpCode{OpText, OpBinary, OpClose, OpPing, OpPong} {
			hdr := AppendHeader(nil, true, op, n)
			if len(hdr) != HeaderSize(n, false) {
				t.Fatalf("n=%d: header %d bytes, HeaderSize says %d", n, len(hdr), HeaderSize(n, false))
			}
			h, size := ParseHeader(hdr)
			if size != len(hdr) || !h.Fin || h.Op != op || h.Masked || h.Length != int64(n) || h.Rsv != 0 {
				t.Fatalf("n=%d op=%v: parsed %+v size %d", n, op, h, size)
			}
			// Every strict prefix is incomplete.
			for i := 0; i < len(hdr); i++ {
				if _, size := ParseHeader(hdr[:i]); size != 0 {
					t.Fatalf("n=%d: prefix of %d bytes parsed as complete", n, i)
				}
			}
		}
	}
}

func TestParseMaskedHeader(t *testing.T) {
	f := clientFrame(0x81, []byte("hi"))
	h, size := ParseHeader(f)
	if size != 6 || !h.Masked || h.Mask != [4]byte{0xA1, 0xB2, 0xC3, 0xD4} || h.Length != 2 {
		t.Fatalf("parsed %+v size %d", h, size)
	}
	if HeaderSize(2, true) != 6 {
		t.Fatal("HeaderSize masked")
	}
}

func TestAppendFrameAndClose(t *testing.T) {
	if got := AppendFrame(nil, OpText, []byte("abc")); !bytes.Equal(got, []byte{0x81, 3, 'a', 'b', 'c'}) {
		t.Fatalf("AppendFrame: % x", got)
	}
	if got := AppendClose(nil, 1001, "bye"); !bytes.Equal(got, []byte{0x88, 5, 0x03, 0xE9, 'b', 'y', 'e'}) {
		t.Fatalf("AppendClose: % x", got)
	}
	if got := AppendClose(nil, 0, "ignored"); !bytes.Equal(got, []byte{0x88, 0}) {
		t.Fatalf("empty close: % x", got)
	}
	long := AppendClose(nil, 1000, string(bytes.Repeat([]byte("x"), 200)))
	if len(long) != 2+MaxControlPayload {
		t.Fatalf("long reason not cut: %d bytes", len(long))
	}
}

func TestUnmaskAnyOffset(t *testing.T) {
	mask := [4]byte{1, 2, 3, 4}
	plain := []byte("the quick brown fox jumps over the lazy dog")
	masked := make([]byte, len(plain))
	for i := range plain {
		masked[i] = plain[i] ^ mask[i%4]
	}
	for cut := 0; cut <= len(masked); cut++ {
		p := append([]byte(nil), masked...)
		pos := unmask(p[:cut], mask, 0)
		unmask(p[cut:], mask, pos)
		if !bytes.Equal(p, plain) {
			t.Fatalf("cut %d: %q", cut, p)
		}
	}
}

func TestOpCodeString(t *testing.T) {
	if OpText.String() != "text" || OpCode(3).String() != "reserved(0x3)" || !OpPing.IsControl() || OpBinary.IsControl() {
		t.Fatal("OpCode helpers")
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	payload := bytes.Repeat([]byte("a"), 128)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = AppendFrame(buf[:0], OpText, payload)
	}
}
