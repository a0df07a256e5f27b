package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// clientFrame builds a masked client frame byte by byte, so tests can
// build frames a conforming encoder would refuse to.
func clientFrame(b0 byte, payload []byte) []byte {
	return rawFrame(b0, true, payload)
}

func rawFrame(b0 byte, masked bool, payload []byte) []byte {
	var out []byte
	n := len(payload)
	var m byte
	if masked {
		m = 0x80
	}
	switch {
	case n <= 125:
		out = append(out, b0, m|byte(n))
	case n <= 0xFFFF:
		out = append(out, b0, m|126, byte(n>>8), byte(n))
	default:
		out = append(out, b0, m|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !masked {
		return append(out, payload...)
	}
	key := [4]byte{0xA1, 0xB2, 0xC3, 0xD4}
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i%4])
	}
	return out
}

const (
	finText   = 0x81
	finBinary = 0x82
	text      = 0x01
	cont      = 0x00
	finCont   = 0x80
	ping      = 0x89
	pong      = 0x8A
	closeOp   = 0x88
)

// event is what a Handler saw.
type event struct {
	op      OpCode
	payload string
}

type collector struct{ events []event }

func (c *collector) OnMessage(op OpCode, p []byte) error {
	c.events = append(c.events, event{op, string(p)})
	return nil
}

func (c *collector) OnControl(op OpCode, p []byte) error {
	c.events = append(c.events, event{op, string(p)})
	return nil
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func closePayload(code uint16, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

// streamCases are shared by the tests and the fuzz seed corpus.
var streamCases = []struct {
	name  string
	input []byte
	max   int64
	want  []event
	err   *CloseError
}{
	{name: "text", input: clientFrame(finText, []byte("hello")), want: []event{{OpText, "hello"}}},
	{name: "binary", input: clientFrame(finBinary, []byte{0, 1, 2}), want: []event{{OpBinary, "\x00\x01\x02"}}},
	{name: "empty text", input: clientFrame(finText, nil), want: []event{{OpText, ""}}},
	{name: "len 125", input: clientFrame(finText, bytes.Repeat([]byte("a"), 125)), want: []event{{OpText, strings.Repeat("a", 125)}}},
	{name: "len 126", input: clientFrame(finText, bytes.Repeat([]byte("b"), 126)), want: []event{{OpText, strings.Repeat("b", 126)}}},
	{name: "len 65535", input: clientFrame(finText, bytes.Repeat([]byte("c"), 65535)), want: []event{{OpText, strings.Repeat("c", 65535)}}},
	{name: "len 65536", input: clientFrame(finText, bytes.Repeat([]byte("d"), 65536)), want: []event{{OpText, strings.Repeat("d", 65536)}}},
	{name: "two messages", input: cat(clientFrame(finText, []byte("a")), clientFrame(finText, []byte("b"))),
		want: []event{{OpText, "a"}, {OpText, "b"}}},
	{name: "fragmented with ping and pong between", input: cat(
		clientFrame(text, []byte("Hel")), clientFrame(ping, []byte("p")), clientFrame(cont, []byte("lo, ")),
		clientFrame(pong, nil), clientFrame(finCont, []byte("world"))),
		want: []event{{OpPing, "p"}, {OpPong, ""}, {OpText, "Hello, world"}}},
	{name: "fragmented with empty fragments", input: cat(clientFrame(text, nil), clientFrame(cont, []byte("x")), clientFrame(finCont, nil)),
		want: []event{{OpText, "x"}}},
	{name: "close with code", input: clientFrame(closeOp, closePayload(1000, "bye")), want: []event{{OpClose, "\x03\xe8bye"}}},
	{name: "close empty", input: clientFrame(closeOp, nil), want: []event{{OpClose, ""}}},
	{name: "utf8 split across fragments", input: cat(clientFrame(text, []byte("\xe4\xbd")), clientFrame(finCont, []byte("\xa0"))),
		want: []event{{OpText, "你"}}},

	{name: "unmasked", input: rawFrame(finText, false, []byte("x")), err: ErrUnmasked},
	{name: "rsv1", input: clientFrame(0xC1, []byte("x")), err: ErrReservedBits},
	{name: "rsv2", input: clientFrame(0xA1, []byte("x")), err: ErrReservedBits},
	{name: "rsv3", input: clientFrame(0x91, []byte("x")), err: ErrReservedBits},
	{name: "opcode 3", input: clientFrame(0x83, nil), err: ErrReservedOpcode},
	{name: "opcode 7", input: clientFrame(0x87, nil), err: ErrReservedOpcode},
	{name: "opcode B", input: clientFrame(0x8B, nil), err: ErrReservedOpcode},
	{name: "opcode F", input: clientFrame(0x8F, nil), err: ErrReservedOpcode},
	{name: "control 126", input: clientFrame(ping, bytes.Repeat([]byte("p"), 126)), err: ErrControlTooLong},
	{name: "fragmented ping", input: clientFrame(0x09, []byte("p")), err: ErrControlFragment},
	{name: "continuation first", input: clientFrame(finCont, []byte("x")), err: ErrUnexpectedCont},
	{name: "text inside fragmented", input: cat(clientFrame(text, []byte("a")), clientFrame(finText, []byte("b"))), err: ErrExpectedCont},
	{name: "64-bit length msb", input: []byte{finText, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, err: ErrBadLength},
	{name: "invalid utf8", input: clientFrame(finText, []byte("a\xffb")), err: ErrInvalidUTF8},
	{name: "utf8 invalid in first fragment", input: clientFrame(text, []byte("ok\xc0")), err: ErrInvalidUTF8},
	{name: "utf8 out of range prefix", input: clientFrame(text, []byte("\xf4\x90")), err: ErrInvalidUTF8},
	{name: "utf8 surrogate", input: clientFrame(finText, []byte("\xed\xa0\x80")), err: ErrInvalidUTF8},
	{name: "utf8 incomplete at end", input: clientFrame(finText, []byte("\xe4\xbd")), err: ErrInvalidUTF8},
	{name: "close 1 byte", input: clientFrame(closeOp, []byte{3}), err: ErrBadClosePayload},
	{name: "close invalid reason", input: clientFrame(closeOp, closePayload(1000, "\xff")), err: ErrInvalidUTF8},
	{name: "too big declared", input: clientFrame(finText, make([]byte, 11)), max: 10, err: ErrMessageTooBig},
	{name: "too big over fragments", input: cat(clientFrame(text, make([]byte, 6)), clientFrame(finCont, make([]byte, 6))), max: 10, err: ErrMessageTooBig},
	{name: "exactly max", input: clientFrame(finText, []byte("0123456789")), max: 10, want: []event{{OpText, "0123456789"}}},
}

func init() {
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535} {
		streamCases = append(streamCases, struct {
			name  string
			input []byte
			max   int64
			want  []event
			err   *CloseError
		}{name: fmt.Sprintf("close code %d", code), input: clientFrame(closeOp, closePayload(code, "")), err: ErrBadCloseCode})
	}
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999} {
		p := closePayload(code, "")
		streamCases = append(streamCases, struct {
			name  string
			input []byte
			max   int64
			want  []event
			err   *CloseError
		}{name: fmt.Sprintf("close code %d", code), input: clientFrame(closeOp, p), want: []event{{OpClose, string(p)}}})
	}
}

func feedAll(chunks [][]byte, max int64) ([]event, error) {
	var s Stream
	defer s.Release()
	h := &collector{}
	for _, c := range chunks {
		if err := s.Feed(append([]byte(nil), c...), h, max); err != nil {
			return h.events, err
		}
	}
	return h.events, nil
}

func sameEvents(a, b []event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestStream(t *testing.T) {
	for _, tc := range streamCases {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = 1 << 20
			}
			check := func(how string, chunks [][]byte) {
				got, err := feedAll(chunks, max)
				if tc.err != nil {
					var ce *CloseError
					if !errors.As(err, &ce) || ce != tc.err {
						t.Fatalf("%s: error %v, want %v", how, err, tc.err)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s: unexpected error %v", how, err)
				}
				if !sameEvents(got, tc.want) {
					t.Fatalf("%s: events %v, want %v", how, got, tc.want)
				}
			}
			check("whole", [][]byte{tc.input})
			// Byte by byte: a reactor read may return any amount.
			var bytewise [][]byte
			for i := range tc.input {
				bytewise = append(bytewise, tc.input[i:i+1])
			}
			check("byte by byte", bytewise)
			if len(tc.input) < 300 {
				for cut := 1; cut < len(tc.input); cut++ {
					check(fmt.Sprintf("split at %d", cut), [][]byte{tc.input[:cut], tc.input[cut:]})
				}
			}
		})
	}
}

// TestTooBigNotBuffered: a frame declaring more than max fails on its
// header, before any payload is held.
func TestTooBigNotBuffered(t *testing.T) {
	var s Stream
	hdr := []byte{finText, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4} // 4 GiB
	if err := s.Feed(hdr, &collector{}, 1<<20); err != ErrMessageTooBig {
		t.Fatalf("err %v, want ErrMessageTooBig", err)
	}
	if s.Buffered() != 0 {
		t.Fatalf("Buffered() = %d after refusing the header", s.Buffered())
	}
}

// TestFailFastUTF8: an invalid byte fails when it arrives, mid-frame and
// before the rest of a fragmented message.
func TestFailFastUTF8(t *testing.T) {
	var s Stream
	frame := clientFrame(finText, []byte("valid text then \xff and more text after"))
	for n := 1; n <= len(frame); n++ {
		s = Stream{}
		err := s.Feed(append([]byte(nil), frame[:n]...), &collector{}, 1<<20)
		payloadBytes := n - 6
		if payloadBytes > 16 { // the 0xff is the 17th payload byte
			if err != ErrInvalidUTF8 {
				t.Fatalf("prefix of %d payload bytes: err %v, want ErrInvalidUTF8", payloadBytes, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("prefix of %d payload bytes: early error %v", payloadBytes, err)
		}
	}
}

func TestBufferedAndRelease(t *testing.T) {
	var s Stream
	h := &collector{}
	if err := s.Feed(clientFrame(text, []byte("partial")), h, 1<<20); err != nil {
		t.Fatal(err)
	}
	if s.Buffered() != len("partial") {
		t.Fatalf("Buffered() = %d, want %d", s.Buffered(), len("partial"))
	}
	if err := s.Feed(clientFrame(finText, nil)[:1], h, 1<<20); err != nil {
		t.Fatal(err)
	}
	if s.Buffered() != len("partial")+1 {
		t.Fatalf("Buffered() = %d with a header byte pending", s.Buffered())
	}
	s.Release()
	if s.msg != nil || s.ctl != nil {
		t.Fatal("Release kept buffers")
	}
}

type failing struct{ err error }

func (f failing) OnMessage(OpCode, []byte) error { return f.err }
func (f failing) OnControl(OpCode, []byte) error { return f.err }

func TestHandlerErrorStopsFeed(t *testing.T) {
	var s Stream
	want := errors.New("stop")
	err := s.Feed(cat(clientFrame(finText, []byte("a")), clientFrame(finText, []byte("b"))), failing{want}, 1<<20)
	if err != want {
		t.Fatalf("err %v, want the handler's", err)
	}
}

type discard struct{}

func (discard) OnMessage(OpCode, []byte) error { return nil }
func (discard) OnControl(OpCode, []byte) error { return nil }

func BenchmarkStreamFeed(b *testing.B) {
	for _, size := range []int{128, 16 << 10} {
		b.Run(fmt.Sprintf("text-%d", size), func(b *testing.B) {
			frame := clientFrame(finText, bytes.Repeat([]byte("a"), size))
			buf := make([]byte, len(frame))
			var s Stream
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				copy(buf, frame) // Feed unmasks in place
				if err := s.Feed(buf, discard{}, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzStream: any bytes, fed in any split, never panic, give the same
// outcome as fed whole, and fail only with a CloseError.
func FuzzStream(f *testing.F) {
	for _, tc := range streamCases {
		if len(tc.input) < 4096 {
			f.Add(tc.input, uint16(3))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		whole, errWhole := feedAll([][]byte{data}, 4096)
		step := int(split%64) + 1
		var chunks [][]byte
		for i := 0; i < len(data); i += step {
			chunks = append(chunks, data[i:min(i+step, len(data))])
		}
		parts, errParts := feedAll(chunks, 4096)
		if (errWhole == nil) != (errParts == nil) || (errWhole != nil && errWhole != errParts) {
			t.Fatalf("whole: %v, in %d-byte chunks: %v", errWhole, step, errParts)
		}
		if errWhole == nil && !sameEvents(whole, parts) {
			t.Fatalf("events differ: %v vs %v", whole, parts)
		}
		if errWhole != nil {
			var ce *CloseError
			if !errors.As(errWhole, &ce) {
				t.Fatalf("error %v is not a CloseError", errWhole)
			}
		}
	})
}
