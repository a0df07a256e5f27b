package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// clientFrame builds a masked client frame byte by byte, so tests can
// build frames a conforming encoder would refuse to.
func clientFrame(b0 byte, payload []byte) []byte {
	return wstest.RawFrame(b0, true, payload)
}

// First header bytes: FIN bit and opcode.
const (
	finText   = 0x81
	finBinary = 0x82
	text      = 0x01
	binary_   = 0x02
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

func (e event) String() string {
	p := e.payload
	if len(p) > 40 {
		p = fmt.Sprintf("%s...(%d bytes)", p[:40], len(p))
	}
	return fmt.Sprintf("%v %q", e.op, p)
}

// errStop is what collector's handler methods return for a control frame
// whose payload is "stop": a handler error must end Feed unchanged.
var errStop = errors.New("handler says stop")

type collector struct{ events []event }

func (c *collector) OnMessage(op OpCode, p []byte) error {
	c.events = append(c.events, event{op, string(p)})
	return nil
}

func (c *collector) OnControl(op OpCode, p []byte) error {
	c.events = append(c.events, event{op, string(p)})
	if string(p) == "stop" {
		return errStop
	}
	return nil
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func rep(c string, n int) []byte { return bytes.Repeat([]byte(c), n) }

// streamCase is one input to Stream.Feed and what it must produce, however
// the input is cut into reads.
type streamCase struct {
	name  string
	input []byte
	max   int64   // message cap; 0 means 1 MiB
	want  []event // every event, including those before an error
	err   error   // a *CloseError, or errStop
	// With err: the index of the input byte whose arrival must fail the
	// stream (fail fast: not one byte later); 0 means the last byte.
	at int
	// With ErrMessageTooBig: what Buffered reports after the failure.
	buffered int
	bench    bool // also a benchmark
}

var (
	frameA   = clientFrame(text, []byte("a")) // 7 bytes, a fragment to start a message
	hdrSmall = 6                              // masked header, payload <= 125
)

// streamCases are shared by the tests, the benchmarks and the fuzz seed corpus.
var streamCases = []streamCase{
	// Messages.
	{name: "text", input: clientFrame(finText, []byte("hello")), want: []event{{OpText, "hello"}}, bench: true},
	{name: "binary", input: clientFrame(finBinary, []byte{0, 1, 2, 0xff}), want: []event{{OpBinary, "\x00\x01\x02\xff"}}},
	{name: "binary not utf8", input: clientFrame(finBinary, []byte("\xff\xfe\xc0")), want: []event{{OpBinary, "\xff\xfe\xc0"}}},
	{name: "empty text", input: clientFrame(finText, nil), want: []event{{OpText, ""}}},
	{name: "empty binary", input: clientFrame(finBinary, nil), want: []event{{OpBinary, ""}}},
	{name: "utf8 text", input: clientFrame(finText, []byte("κόσμε 你好 \U0001F600")), want: []event{{OpText, "κόσμε 你好 \U0001F600"}}},
	{name: "len 125", input: clientFrame(finText, rep("a", 125)), want: []event{{OpText, strings.Repeat("a", 125)}}},
	{name: "len 126", input: clientFrame(finText, rep("b", 126)), want: []event{{OpText, strings.Repeat("b", 126)}}},
	{name: "len 127", input: clientFrame(finText, rep("c", 127)), want: []event{{OpText, strings.Repeat("c", 127)}}},
	{name: "len 65535", input: clientFrame(finBinary, rep("d", 65535)), want: []event{{OpBinary, strings.Repeat("d", 65535)}}},
	{name: "len 65536", input: clientFrame(finText, rep("e", 65536)), want: []event{{OpText, strings.Repeat("e", 65536)}}, bench: true},
	{name: "16-bit length of 5", input: []byte{finText, 0x80 | 126, 0, 5, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'},
		want: []event{{OpText, "hello"}}},
	{name: "64-bit length of 5", input: []byte{finText, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'},
		want: []event{{OpText, "hello"}}},
	{name: "zero mask", input: []byte{finText, 0x80 | 2, 0, 0, 0, 0, 'h', 'i'}, want: []event{{OpText, "hi"}}},
	{name: "two messages", input: cat(clientFrame(finText, []byte("a")), clientFrame(finBinary, []byte("b"))),
		want: []event{{OpText, "a"}, {OpBinary, "b"}}},
	{name: "fragmented", input: cat(clientFrame(text, []byte("Hel")), clientFrame(cont, []byte("lo")), clientFrame(finCont, []byte("!"))),
		want: []event{{OpText, "Hello!"}}, bench: true},
	{name: "fragmented binary", input: cat(clientFrame(binary_, []byte{1}), clientFrame(finCont, []byte{2})),
		want: []event{{OpBinary, "\x01\x02"}}},
	{name: "fragmented with ping, pong and close between", input: cat(
		clientFrame(text, []byte("Hel")), clientFrame(ping, []byte("p")), clientFrame(cont, []byte("lo, ")),
		clientFrame(pong, nil), clientFrame(closeOp, wstest.ClosePayload(1000, "bye")), clientFrame(finCont, []byte("world"))),
		want: []event{{OpPing, "p"}, {OpPong, ""}, {OpClose, "\x03\xe8bye"}, {OpText, "Hello, world"}}, bench: true},
	{name: "fragmented 16-bit fragments", input: cat(clientFrame(text, rep("x", 200)), clientFrame(ping, rep("p", 125)), clientFrame(finCont, rep("y", 300))),
		want: []event{{OpPing, strings.Repeat("p", 125)}, {OpText, strings.Repeat("x", 200) + strings.Repeat("y", 300)}}},
	{name: "fragmented with empty fragments", input: cat(clientFrame(text, nil), clientFrame(cont, []byte("x")), clientFrame(cont, nil), clientFrame(finCont, nil)),
		want: []event{{OpText, "x"}}},
	{name: "fragmented all empty", input: cat(clientFrame(text, nil), clientFrame(finCont, nil)), want: []event{{OpText, ""}}},
	{name: "message after fragmented", input: cat(clientFrame(text, []byte("a")), clientFrame(finCont, []byte("b")), clientFrame(finBinary, []byte("c"))),
		want: []event{{OpText, "ab"}, {OpBinary, "c"}}},
	{name: "ping", input: clientFrame(ping, []byte("are you there")), want: []event{{OpPing, "are you there"}}},
	{name: "ping 125", input: clientFrame(ping, rep("p", 125)), want: []event{{OpPing, strings.Repeat("p", 125)}}},
	{name: "empty ping and pong", input: cat(clientFrame(ping, nil), clientFrame(pong, nil)), want: []event{{OpPing, ""}, {OpPong, ""}}},
	{name: "pong binary payload", input: clientFrame(pong, []byte{0xff, 0}), want: []event{{OpPong, "\xff\x00"}}},
	{name: "close with code", input: clientFrame(closeOp, wstest.ClosePayload(1000, "bye")), want: []event{{OpClose, "\x03\xe8bye"}}},
	{name: "close empty", input: clientFrame(closeOp, nil), want: []event{{OpClose, ""}}},
	{name: "close utf8 reason 123", input: clientFrame(closeOp, wstest.ClosePayload(1001, strings.Repeat("é", 61)+"!")),
		want: []event{{OpClose, "\x03\xe9" + strings.Repeat("é", 61) + "!"}}},
	{name: "utf8 split across fragments", input: cat(clientFrame(text, []byte("\xe4\xbd")), clientFrame(finCont, []byte("\xa0"))),
		want: []event{{OpText, "你"}}},
	{name: "utf8 4-byte split in three", input: cat(clientFrame(text, []byte("\xf0")), clientFrame(cont, []byte("\x9f\x98")), clientFrame(finCont, []byte("\x80"))),
		want: []event{{OpText, "\U0001F600"}}},
	{name: "exactly max", input: clientFrame(finText, []byte("0123456789")), max: 10, want: []event{{OpText, "0123456789"}}},
	{name: "exactly max fragmented", input: cat(clientFrame(text, rep("a", 4)), clientFrame(cont, nil), clientFrame(finCont, rep("b", 6))), max: 10,
		want: []event{{OpText, "aaaabbbbbb"}}},
	{name: "control frames do not count toward max", input: cat(clientFrame(text, rep("a", 10)), clientFrame(ping, rep("p", 20)), clientFrame(finCont, nil)), max: 10,
		want: []event{{OpPing, strings.Repeat("p", 20)}, {OpText, strings.Repeat("a", 10)}}},
	{name: "max applies per message", input: cat(clientFrame(finText, rep("a", 10)), clientFrame(finText, rep("b", 10))), max: 10,
		want: []event{{OpText, strings.Repeat("a", 10)}, {OpText, strings.Repeat("b", 10)}}},
	{name: "handler error", input: cat(clientFrame(ping, []byte("stop")), clientFrame(finText, []byte("never"))),
		want: []event{{OpPing, "stop"}}, err: errStop, at: hdrSmall + 3},

	// Frame header violations fail as the header completes, before payload.
	{name: "unmasked", input: wstest.RawFrame(finText, false, []byte("xyz")), err: ErrUnmasked, at: 1},
	{name: "unmasked empty", input: wstest.RawFrame(finText, false, nil), err: ErrUnmasked, at: 1},
	{name: "unmasked 16-bit", input: wstest.RawFrame(finBinary, false, rep("x", 200)), err: ErrUnmasked, at: 3},
	{name: "unmasked control", input: wstest.RawFrame(ping, false, nil), err: ErrUnmasked, at: 1},
	{name: "unmasked after a message", input: cat(clientFrame(finText, []byte("ok")), wstest.RawFrame(finText, false, []byte("x"))),
		want: []event{{OpText, "ok"}}, err: ErrUnmasked, at: 9},
	{name: "unmasked continuation", input: cat(frameA, wstest.RawFrame(finCont, false, []byte("x"))), err: ErrUnmasked, at: 8},
	{name: "rsv1", input: clientFrame(0xC1, []byte("x")), err: ErrReservedBits, at: 5},
	{name: "rsv2", input: clientFrame(0xA1, []byte("x")), err: ErrReservedBits, at: 5},
	{name: "rsv3", input: clientFrame(0x91, []byte("x")), err: ErrReservedBits, at: 5},
	{name: "rsv all on ping", input: clientFrame(0xF9, nil), err: ErrReservedBits, at: 5},
	{name: "rsv1 on continuation", input: cat(frameA, clientFrame(0xC0, []byte("x"))), err: ErrReservedBits, at: 12},
	{name: "control 126", input: clientFrame(ping, rep("p", 126)), err: ErrControlTooLong, at: 7},
	{name: "pong 126", input: clientFrame(pong, rep("p", 126)), err: ErrControlTooLong, at: 7},
	{name: "close 126", input: clientFrame(closeOp, wstest.ClosePayload(1000, strings.Repeat("r", 124))), err: ErrControlTooLong, at: 7},
	{name: "ping 64-bit length 200", input: []byte{ping, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 200, 1, 2, 3, 4}, err: ErrControlTooLong, at: 13},
	{name: "fragmented ping", input: clientFrame(0x09, []byte("p")), err: ErrControlFragment, at: 5},
	{name: "fragmented pong", input: clientFrame(0x0A, nil), err: ErrControlFragment, at: 5},
	{name: "fragmented close", input: clientFrame(0x08, wstest.ClosePayload(1000, "")), err: ErrControlFragment, at: 5},
	{name: "fragmented ping inside message", input: cat(frameA, clientFrame(0x09, nil)), err: ErrControlFragment, at: 12},
	{name: "continuation first", input: clientFrame(finCont, []byte("x")), err: ErrUnexpectedCont, at: 5},
	{name: "non-fin continuation first", input: clientFrame(cont, []byte("x")), err: ErrUnexpectedCont, at: 5},
	{name: "continuation after complete message", input: cat(clientFrame(finText, []byte("a")), clientFrame(finCont, []byte("b"))),
		want: []event{{OpText, "a"}}, err: ErrUnexpectedCont, at: 12},
	{name: "text inside fragmented", input: cat(frameA, clientFrame(finText, []byte("b"))), err: ErrExpectedCont, at: 12},
	{name: "binary inside fragmented", input: cat(frameA, clientFrame(finBinary, []byte("b"))), err: ErrExpectedCont, at: 12},
	{name: "non-fin text inside fragmented", input: cat(frameA, clientFrame(text, []byte("b"))), err: ErrExpectedCont, at: 12},
	{name: "text inside fragmented after a ping", input: cat(frameA, clientFrame(ping, nil), clientFrame(finText, nil)),
		want: []event{{OpPing, ""}}, err: ErrExpectedCont, at: 18},
	{name: "64-bit length msb", input: []byte{finText, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 'x'}, err: ErrBadLength, at: 13},
	{name: "64-bit length all ones", input: []byte{finBinary, 0x80 | 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}, err: ErrBadLength, at: 13},
	{name: "64-bit length msb on continuation", input: cat(frameA, []byte{finCont, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}), err: ErrBadLength, at: 20},

	// Invalid UTF-8 fails at the offending byte, mid-frame and before the
	// rest of a fragmented message.
	{name: "invalid utf8", input: clientFrame(finText, []byte("a\xffb")), err: ErrInvalidUTF8, at: hdrSmall + 1},
	{name: "invalid utf8 first fragment", input: cat(clientFrame(text, []byte("ok\xc0 and then")), clientFrame(finCont, []byte("more"))),
		err: ErrInvalidUTF8, at: hdrSmall + 2},
	{name: "utf8 out of range prefix", input: cat(clientFrame(text, []byte("\xf4\x90")), clientFrame(finCont, []byte("\x80\x80"))),
		err: ErrInvalidUTF8, at: hdrSmall + 1},
	{name: "utf8 overlong prefix", input: clientFrame(finText, []byte("\xe0\x80\x80")), err: ErrInvalidUTF8, at: hdrSmall + 1},
	{name: "utf8 surrogate", input: clientFrame(finText, []byte("\xed\xa0\x80")), err: ErrInvalidUTF8, at: hdrSmall + 1},
	{name: "utf8 bad continuation in second fragment", input: cat(clientFrame(text, []byte("\xe4\xbd")), clientFrame(finCont, []byte("x"))),
		err: ErrInvalidUTF8, at: 8 + hdrSmall},
	{name: "utf8 bad byte deep in 16-bit frame", input: clientFrame(finText, append(rep("a", 300), 0xff, 'b')), err: ErrInvalidUTF8, at: 8 + 300},
	{name: "utf8 incomplete at end", input: clientFrame(finText, []byte("\xe4\xbd")), err: ErrInvalidUTF8},
	{name: "utf8 incomplete at end of fragments", input: cat(clientFrame(text, []byte("ok\xf0\x9f")), clientFrame(finCont, []byte("\x98"))),
		err: ErrInvalidUTF8},
	{name: "utf8 incomplete before empty final fragment", input: cat(clientFrame(text, []byte("\xc3")), clientFrame(finCont, nil)),
		err: ErrInvalidUTF8},

	// Close payloads are validated once the frame is complete.
	{name: "close 1 byte", input: clientFrame(closeOp, []byte{3}), err: ErrBadClosePayload},
	{name: "close invalid reason", input: clientFrame(closeOp, wstest.ClosePayload(1000, "fine\xff")), err: ErrInvalidUTF8},
	{name: "close truncated reason", input: clientFrame(closeOp, wstest.ClosePayload(1000, "\xe4\xbd")), err: ErrInvalidUTF8},
	{name: "close invalid code inside message", input: cat(frameA, clientFrame(closeOp, wstest.ClosePayload(1005, ""))), err: ErrBadCloseCode},

	// The message cap is enforced from declared lengths, before payload.
	{name: "too big declared", input: clientFrame(finText, make([]byte, 11)), max: 10, err: ErrMessageTooBig, at: 5},
	{name: "too big 65536 over 65535", input: clientFrame(finBinary, make([]byte, 65536)), max: 65535, err: ErrMessageTooBig, at: 13},
	{name: "too big 4 GiB declared", input: []byte{finText, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4, 'x'}, err: ErrMessageTooBig, at: 13},
	{name: "too big over fragments", input: cat(clientFrame(text, rep("a", 6)), clientFrame(finCont, rep("b", 6))), max: 10,
		err: ErrMessageTooBig, at: 12 + 5, buffered: 6},
	{name: "too big over many fragments", input: cat(clientFrame(text, rep("a", 4)), clientFrame(cont, rep("b", 4)), clientFrame(ping, nil),
		clientFrame(cont, rep("c", 3))), max: 10, want: []event{{OpPing, ""}}, err: ErrMessageTooBig, at: 10 + 10 + 6 + 5, buffered: 8},
}

func init() {
	for _, op := range []byte{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		streamCases = append(streamCases,
			streamCase{name: fmt.Sprintf("opcode %#x", op), input: clientFrame(0x80|op, []byte("x")), err: ErrReservedOpcode, at: 5},
			streamCase{name: fmt.Sprintf("non-fin opcode %#x", op), input: clientFrame(op, nil), err: ErrReservedOpcode, at: 5},
			streamCase{name: fmt.Sprintf("opcode %#x inside message", op), input: cat(frameA, clientFrame(0x80|op, nil)), err: ErrReservedOpcode, at: 12},
		)
	}
	for _, code := range []uint16{0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		streamCases = append(streamCases, streamCase{name: fmt.Sprintf("close code %d", code),
			input: clientFrame(closeOp, wstest.ClosePayload(code, "")), err: ErrBadCloseCode})
	}
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		p := wstest.ClosePayload(code, "reason")
		streamCases = append(streamCases, streamCase{name: fmt.Sprintf("close code %d", code),
			input: clientFrame(closeOp, p), want: []event{{OpClose, string(p)}}})
	}
}

func (tc *streamCase) limit() int64 {
	if tc.max == 0 {
		return 1 << 20
	}
	return tc.max
}

// feedResult is everything observable about feeding a stream.
type feedResult struct {
	events   []event
	err      error
	at       int // index of the input byte whose chunk failed, -1 if none
	buffered int // Buffered() at the end
}

// feedChunks feeds a copy of input (Feed unmasks in place) cut at the
// given increasing offsets.
func feedChunks(input []byte, cuts []int, max int64) feedResult {
	return feedDeflate(input, cuts, max, DeflateParams{})
}

// feedDeflate is feedChunks on a stream that negotiated p.
func feedDeflate(input []byte, cuts []int, max int64, p DeflateParams) feedResult {
	var s Stream
	s.SetDeflate(p)
	defer s.Release()
	h := &collector{}
	input = bytes.Clone(input)
	prev := 0
	for _, cut := range append(cuts, len(input)) {
		if err := s.Feed(input[prev:cut:cut], h, max); err != nil {
			return feedResult{h.events, err, cut - 1, s.buffered()}
		}
		prev = cut
	}
	return feedResult{h.events, nil, -1, s.buffered()}
}

func bytewise(n int) []int {
	cuts := make([]int, 0, n)
	for i := 1; i < n; i++ {
		cuts = append(cuts, i)
	}
	return cuts
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

func (tc *streamCase) check(t *testing.T, how string, r feedResult, exactAt bool) {
	t.Helper()
	if !sameEvents(r.events, tc.want) {
		t.Fatalf("%s: events %v, want %v", how, r.events, tc.want)
	}
	if tc.err == nil {
		if r.err != nil {
			t.Fatalf("%s: unexpected error %v", how, r.err)
		}
		if r.buffered != 0 {
			t.Fatalf("%s: Buffered() = %d after complete input", how, r.buffered)
		}
		return
	}
	if r.err != tc.err {
		t.Fatalf("%s: error %v, want %v", how, r.err, tc.err)
	}
	if ce, ok := tc.err.(*CloseError); ok && ce.Code != CloseProtocolError && ce.Code != CloseInvalidPayload && ce.Code != CloseTooBig {
		t.Fatalf("%s: close code %d", how, ce.Code)
	}
	// What a refused frame holds is only defined for the cap: nothing of
	// the refused frame, only the earlier fragments.
	if tc.err == ErrMessageTooBig && r.buffered != tc.buffered {
		t.Fatalf("%s: Buffered() = %d after %v, want %d", how, r.buffered, r.err, tc.buffered)
	}
	if exactAt {
		at := tc.at
		if at == 0 {
			at = len(tc.input) - 1
		}
		if r.at != at {
			t.Fatalf("%s: failed at byte %d, want %d (%v)", how, r.at, at, r.err)
		}
	}
}

func TestStream(t *testing.T) {
	for _, tc := range streamCases {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.limit()
			tc.check(t, "whole", feedChunks(tc.input, nil, max), false)
			// Byte by byte: a reactor read may return any amount. Fed
			// this way, an error must come from the very byte that
			// makes the input invalid.
			tc.check(t, "byte by byte", feedChunks(tc.input, bytewise(len(tc.input)), max), true)
			n := len(tc.input)
			if n > 400 {
				n = 400 // the long cases: every cut through the headers and the start
			}
			for i := 1; i < n; i++ {
				tc.check(t, fmt.Sprintf("cut at %d", i), feedChunks(tc.input, []int{i}, max), false)
			}
			if len(tc.input) <= 48 {
				for i := 1; i < len(tc.input); i++ {
					for j := i + 1; j < len(tc.input); j++ {
						tc.check(t, fmt.Sprintf("cut at %d and %d", i, j), feedChunks(tc.input, []int{i, j}, max), false)
					}
				}
			}
		})
	}
}

// TestStreamTooBigNotBuffered: a frame declaring more than max fails on its
// header alone, before any of its payload arrives or is held.
func TestStreamTooBigNotBuffered(t *testing.T) {
	for _, hdr := range [][]byte{
		{finText, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4},      // 4 GiB
		{finBinary, 0x80 | 127, 0, 0, 0, 0, 0, 0x10, 0, 1, 1, 2, 3, 4}, // 1 MiB + 1
		{binary_, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4},
	} {
		var s Stream
		if err := s.Feed(hdr, &collector{}, 1<<20); err != ErrMessageTooBig {
			t.Fatalf("% x: err %v, want ErrMessageTooBig", hdr, err)
		}
		if s.buffered() != 0 {
			t.Fatalf("Buffered() = %d after refusing the header", s.buffered())
		}
	}
	// A continuation that would pass the cap: only the earlier fragment is held.
	var s Stream
	defer s.Release()
	h := &collector{}
	if err := s.Feed(clientFrame(binary_, make([]byte, 1000)), h, 1500); err != nil {
		t.Fatal(err)
	}
	if s.buffered() != 1000 {
		t.Fatalf("Buffered() = %d, want 1000", s.buffered())
	}
	hdr := clientFrame(finCont, make([]byte, 501))[:8]
	if err := s.Feed(hdr, h, 1500); err != ErrMessageTooBig {
		t.Fatalf("err %v, want ErrMessageTooBig", err)
	}
	if s.buffered() != 1000 {
		t.Fatalf("Buffered() = %d after refusing the continuation, want 1000", s.buffered())
	}
}

// TestStreamUnlimited: max <= 0 means no cap.
func TestStreamUnlimited(t *testing.T) {
	for _, max := range []int64{0, -1} {
		r := feedChunks(clientFrame(finBinary, make([]byte, 70000)), []int{100}, max)
		if r.err != nil || len(r.events) != 1 || len(r.events[0].payload) != 70000 {
			t.Fatalf("max %d: %v, %d events", max, r.err, len(r.events))
		}
	}
}

func TestStreamBufferedAndRelease(t *testing.T) {
	var s Stream
	h := &collector{}
	if s.buffered() != 0 {
		t.Fatal("zero Stream buffers something")
	}
	if err := s.Feed(clientFrame(text, []byte("partial")), h, 1<<20); err != nil {
		t.Fatal(err)
	}
	if s.buffered() != len("partial") {
		t.Fatalf("Buffered() = %d, want %d", s.buffered(), len("partial"))
	}
	// A header cut short is held too.
	if err := s.Feed(clientFrame(ping, []byte("ping!"))[:3], h, 1<<20); err != nil {
		t.Fatal(err)
	}
	if s.buffered() != len("partial")+3 {
		t.Fatalf("Buffered() = %d with 3 header bytes pending", s.buffered())
	}
	// And a control frame cut short, separately from the message.
	if err := s.Feed(clientFrame(ping, []byte("ping!"))[3:8], h, 1<<20); err != nil {
		t.Fatal(err)
	}
	if s.buffered() != len("partial")+2 {
		t.Fatalf("Buffered() = %d with 2 ping bytes pending", s.buffered())
	}
	if err := s.Feed(clientFrame(ping, []byte("ping!"))[8:], h, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := s.Feed(clientFrame(finCont, []byte("!")), h, 1<<20); err != nil {
		t.Fatal(err)
	}
	if s.buffered() != 0 || s.msg != nil || s.ctl != nil {
		t.Fatalf("Buffered() = %d after the message completed", s.buffered())
	}
	if want := []event{{OpPing, "ping!"}, {OpText, "partial!"}}; !sameEvents(h.events, want) {
		t.Fatalf("events %q, want %v", h.events, want)
	}

	// Release mid-message returns the buffers; a later Stream that gets
	// them from the pool sees none of the old bytes.
	s = Stream{}
	if err := s.Feed(clientFrame(text, []byte("secret")), h, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := s.Feed(clientFrame(ping, []byte("pp")), h, 1<<20); err != nil {
		t.Fatal(err)
	}
	f := clientFrame(ping, []byte("half"))
	if err := s.Feed(f[:8], h, 1<<20); err != nil {
		t.Fatal(err)
	}
	s.Release()
	if s.msg != nil || s.ctl != nil || s.buffered() != 0 {
		t.Fatal("Release kept buffers")
	}
	s.Release() // idempotent
	for range 10 {
		r := feedChunks(cat(clientFrame(text, []byte("new")), clientFrame(ping, []byte("xy")), clientFrame(finCont, nil)), []int{9, 14}, 1<<20)
		if want := []event{{OpPing, "xy"}, {OpText, "new"}}; r.err != nil || !sameEvents(r.events, want) {
			t.Fatalf("after Release: %v %v", r.events, r.err)
		}
	}
}

// TestStreamHandlerErrorStops: Feed returns the handler's error as is and
// decodes nothing after it.
func TestStreamHandlerErrorStops(t *testing.T) {
	var s Stream
	h := &collector{}
	err := s.Feed(cat(clientFrame(finText, []byte("a")), clientFrame(ping, []byte("stop")), clientFrame(finText, []byte("b"))), h, 1<<20)
	if err != errStop {
		t.Fatalf("err %v, want the handler's", err)
	}
	if want := []event{{OpText, "a"}, {OpPing, "stop"}}; !sameEvents(h.events, want) {
		t.Fatalf("events %v", h.events)
	}
}

// randomSplits cuts n bytes into reads of random sizes, mostly small.
func randomSplits(rng *rand.Rand, n int) []int {
	var cuts []int
	for i := 0; ; {
		switch rng.IntN(4) {
		case 0:
			i++
		case 1:
			i += 1 + rng.IntN(16)
		default:
			i += 1 + rng.IntN(2000)
		}
		if i >= n {
			return cuts
		}
		cuts = append(cuts, i)
	}
}

// randomText returns n bytes of valid UTF-8 mixing 1- to 4-byte characters.
func randomText(rng *rand.Rand, n int) []byte {
	chars := []string{"a", "Z", " ", "é", "ß", "你", "好", "\U0001F600", "\U0010FFFF", "\u07FF", "\uFFFD"}
	var b []byte
	for len(b) < n {
		b = append(b, chars[rng.IntN(len(chars))]...)
	}
	return b
}

// TestStreamInterop: random conversations written by gobwas/ws's client
// frame encoder (random masks, random fragmentation, control frames in
// between), read in random pieces, come out message for message.
func TestStreamInterop(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		var input []byte
		var want []event
		add := func(op ws.OpCode, fin bool, p []byte) {
			f := ws.MaskFrameWith(ws.NewFrame(op, fin, p), [4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
			input = append(input, ws.MustCompileFrame(f)...)
		}
		control := func() {
			switch rng.IntN(3) {
			case 0:
				p := randomText(rng, rng.IntN(100))
				add(ws.OpPing, true, p)
				want = append(want, event{OpPing, string(p)})
			case 1:
				add(ws.OpPong, true, nil)
				want = append(want, event{OpPong, ""})
			default:
				p := ws.NewCloseFrameBody(ws.StatusCode(1000+rng.IntN(4)), "bye")
				add(ws.OpClose, true, p)
				want = append(want, event{OpClose, string(p)})
			}
		}
		for range 1 + rng.IntN(6) {
			if rng.IntN(4) == 0 {
				control()
			}
			op, wop := ws.OpText, OpText
			size := []int{0, 1, 125, 126, 127, 1000, 65535, 65536, 70000}[rng.IntN(9)]
			var msg []byte
			if rng.IntN(2) == 0 {
				op, wop = ws.OpBinary, OpBinary
				msg = make([]byte, size)
				for i := range msg {
					msg[i] = byte(rng.Uint32())
				}
			} else {
				msg = randomText(rng, size)
			}
			want = append(want, event{}) // the message, after its fragments' control frames
			at := len(want) - 1
			rest, first := msg, true
			for {
				n := len(rest)
				if rng.IntN(2) == 0 && n > 0 {
					n = rng.IntN(n + 1) // may cut a character in half
				}
				fop := op
				if !first {
					fop = ws.OpContinuation
				}
				add(fop, n == len(rest), rest[:n])
				rest, first = rest[n:], false
				if len(rest) == 0 {
					break
				}
				if rng.IntN(3) == 0 {
					control()
				}
			}
			// The message event goes after the control frames that came
			// between its fragments.
			copy(want[at:], want[at+1:])
			want[len(want)-1] = event{wop, string(msg)}
		}
		cuts := randomSplits(rng, len(input))
		r := feedChunks(input, cuts, 1<<20)
		if r.err != nil || !sameEvents(r.events, want) || r.buffered != 0 {
			t.Fatalf("iteration %d: err %v, %d events, want %d", iter, r.err, len(r.events), len(want))
		}
	}
}

type discard struct{}

func (discard) OnMessage(OpCode, []byte) error { return nil }
func (discard) OnControl(OpCode, []byte) error { return nil }

// TestStreamAllocs: a single-frame message delivered in one read costs no
// allocation; neither does one spanning reads once the pool is warm.
func TestStreamAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	for _, size := range []int{0, 128, 16 << 10} {
		frame := clientFrame(finText, rep("a", size))
		buf := make([]byte, len(frame))
		var s Stream
		if n := testing.AllocsPerRun(100, func() {
			copy(buf, frame)
			if err := s.Feed(buf, discard{}, 1<<20); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%d-byte message: %v allocs per Feed", size, n)
		}
		if n := testing.AllocsPerRun(100, func() {
			copy(buf, frame)
			for i := 0; i < len(buf); i += 1000 {
				if err := s.Feed(buf[i:min(i+1000, len(buf))], discard{}, 1<<20); err != nil {
					t.Fatal(err)
				}
			}
		}); n != 0 {
			t.Errorf("%d-byte message in 1000-byte reads: %v allocs", size, n)
		}
	}
}

func BenchmarkStreamFeed(b *testing.B) {
	for _, size := range []int{128, 16 << 10} {
		b.Run(fmt.Sprintf("text-%d", size), func(b *testing.B) {
			frame := clientFrame(finText, rep("a", size))
			buf := make([]byte, len(frame))
			var s Stream
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, frame) // Feed unmasks in place
				if err := s.Feed(buf, discard{}, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, tc := range streamCases {
		if !tc.bench {
			continue
		}
		b.Run("case/"+strings.ReplaceAll(tc.name, " ", "_"), func(b *testing.B) {
			buf := make([]byte, len(tc.input))
			var s Stream
			b.SetBytes(int64(len(tc.input)))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, tc.input)
				if err := s.Feed(buf, discard{}, tc.limit()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzStream: any bytes, fed in any split, never panic, give the same
// events and outcome as fed whole, and fail only with a CloseError or the
// handler's error.
func FuzzStream(f *testing.F) {
	for _, tc := range streamCases {
		if len(tc.input) < 4096 {
			f.Add(tc.input, uint64(len(tc.input)), uint16(tc.limit()))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, max uint16) {
		whole := feedChunks(data, nil, int64(max))
		var cuts []int
		rng := rand.New(rand.NewPCG(seed, 0))
		for i := 0; i < len(data); {
			i += 1 + rng.IntN(8)
			if i < len(data) {
				cuts = append(cuts, i)
			}
		}
		parts := feedChunks(data, cuts, int64(max))
		if whole.err != parts.err || !sameEvents(whole.events, parts.events) {
			t.Fatalf("whole: %v %v; in pieces %v: %v %v", whole.err, whole.events, cuts, parts.err, parts.events)
		}
		if whole.err != nil {
			if _, ok := whole.err.(*CloseError); !ok && whole.err != errStop {
				t.Fatalf("error %v is neither a CloseError nor the handler's", whole.err)
			}
		}
		if parts.err == nil && parts.buffered != whole.buffered {
			t.Fatalf("Buffered() %d whole, %d in pieces", whole.buffered, parts.buffered)
		}
		bw := feedChunks(data, bytewise(len(data)), int64(max))
		if whole.err != bw.err || !sameEvents(whole.events, bw.events) {
			t.Fatalf("whole: %v %v; byte by byte: %v %v", whole.err, whole.events, bw.err, bw.events)
		}
	})
}

// TestStreamTakeFrames: every frame started counts once, whatever its kind
// or size and however the input is cut, and taking the count resets it.
func TestStreamTakeFrames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input []byte
		want  int
	}{
		{"one-frame message", clientFrame(finText, []byte("hi")), 1},
		{"empty message", clientFrame(finText, nil), 1},
		{"fragmented message", cat(clientFrame(text, []byte("a")), clientFrame(cont, nil), clientFrame(cont, nil), clientFrame(finCont, []byte("b"))), 4},
		{"empty pongs", cat(clientFrame(pong, nil), clientFrame(pong, nil), clientFrame(pong, nil)), 3},
		{"ping inside a message", cat(clientFrame(text, []byte("a")), clientFrame(ping, nil), clientFrame(finCont, nil)), 3},
		{"header cut short", clientFrame(finText, []byte("hi"))[:3], 0},
	} {
		for _, step := range []int{1, 3, len(tc.input)} {
			var s Stream
			got := 0
			for i := 0; i < len(tc.input); i += step {
				if err := s.Feed(tc.input[i:min(i+step, len(tc.input))], discard{}, 1<<20); err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				got += s.TakeFrames()
			}
			if got != tc.want {
				t.Errorf("%s in %d-byte reads: %d frames, want %d", tc.name, step, got, tc.want)
			}
			if n := s.TakeFrames(); n != 0 {
				t.Errorf("%s: %d frames after taking them all", tc.name, n)
			}
		}
	}
}
