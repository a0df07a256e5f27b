package codec

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/wsd-chat/wsd/internal/wstest"
)

// First header bytes with RSV1, the Per-Message Compressed bit.
const (
	zText      = text | 0x40
	zFinText   = finText | 0x40
	zFinBinary = finBinary | 0x40
)

var (
	helloZ    = stdDeflate([]byte("Hello, Hello, Hello!"))
	chat64KiB = chatJSON(64 << 10)
	// noContext is what wsd negotiates by default.
	noContext = DeflateParams{Enabled: true, ServerWindowBits: 15}
)

// split cuts p into n nearly equal parts.
func split(p []byte, n int) [][]byte {
	var parts [][]byte
	for i := range n {
		parts = append(parts, p[i*len(p)/n:(i+1)*len(p)/n])
	}
	return parts
}

// deflateStreamCases run on a stream that negotiated permessage-deflate
// without context takeover.
var deflateStreamCases = []streamCase{
	{name: "compressed text", input: clientFrame(zFinText, helloZ), want: []event{{OpText, "Hello, Hello, Hello!"}}},
	{name: "compressed binary", input: clientFrame(zFinBinary, stdDeflate([]byte{0, 1, 0xff, 0, 1, 0xff})), want: []event{{OpBinary, "\x00\x01\xff\x00\x01\xff"}}},
	{name: "uncompressed text still fine", input: clientFrame(finText, []byte("plain")), want: []event{{OpText, "plain"}}},
	{name: "compressed then plain then compressed", input: cat(clientFrame(zFinText, helloZ), clientFrame(finText, []byte("plain")), clientFrame(zFinText, helloZ)),
		want: []event{{OpText, "Hello, Hello, Hello!"}, {OpText, "plain"}, {OpText, "Hello, Hello, Hello!"}}},
	{name: "compressed fragmented", input: func() []byte {
		p := split(stdDeflate(chatJSON(500)), 3)
		return cat(clientFrame(zText, p[0]), clientFrame(cont, p[1]), clientFrame(finCont, p[2]))
	}(), want: []event{{OpText, string(chatJSON(500))}}},
	{name: "compressed fragmented with control frames between", input: func() []byte {
		p := split(stdDeflate(chatJSON(300)), 3)
		return cat(clientFrame(zText, p[0]), clientFrame(ping, []byte("p")), clientFrame(cont, p[1]), clientFrame(pong, nil),
			clientFrame(closeOp, wstest.ClosePayload(1000, "")), clientFrame(finCont, p[2]))
	}(), want: []event{{OpPing, "p"}, {OpPong, ""}, {OpClose, "\x03\xe8"}, {OpText, string(chatJSON(300))}}},
	{name: "compressed fragmented, empty first fragment", input: cat(clientFrame(zText, nil), clientFrame(finCont, helloZ)),
		want: []event{{OpText, "Hello, Hello, Hello!"}}},
	{name: "empty compressed message", input: clientFrame(zFinText, []byte{0x00}), want: []event{{OpText, ""}}},
	{name: "empty compressed payload", input: clientFrame(zFinBinary, nil), want: []event{{OpBinary, ""}}},
	{name: "64 KiB compressed", input: clientFrame(zFinText, stdDeflate(chat64KiB)), want: []event{{OpText, string(chat64KiB)}}},
	{name: "exactly max inflated", input: clientFrame(zFinText, stdDeflate(rep("a", 100))), max: 100, want: []event{{OpText, strings.Repeat("a", 100)}}},
	{name: "utf8 after inflate", input: clientFrame(zFinText, stdDeflate([]byte("κόσμε 你好 \U0001F600"))), want: []event{{OpText, "κόσμε 你好 \U0001F600"}}},

	// Failures come with the last byte of the message: inflating needs all of it.
	{name: "over max inflated", input: clientFrame(zFinText, stdDeflate(rep("a", 101))), max: 100, err: ErrDeflateTooBig},
	{name: "zip bomb", input: clientFrame(zFinBinary, stdDeflate(make([]byte, 4<<20))), max: 64 << 10, err: ErrDeflateTooBig},
	{name: "invalid utf8 after inflate", input: clientFrame(zFinText, stdDeflate([]byte("ok \xff"))), err: ErrInvalidUTF8},
	{name: "truncated utf8 after inflate", input: clientFrame(zFinText, stdDeflate([]byte("\xe4\xbd"))), err: ErrInvalidUTF8},
	{name: "corrupt compressed data", input: clientFrame(zFinText, []byte{0xff, 0xff, 0xff}), err: ErrBadDeflate},
	{name: "messages before a corrupt one", input: cat(clientFrame(zFinText, helloZ), clientFrame(zFinText, []byte{0xff})),
		want: []event{{OpText, "Hello, Hello, Hello!"}}, err: ErrBadDeflate},

	// RSV1 where RFC 7692 6 forbids it fails as the header completes.
	{name: "rsv1 on continuation", input: cat(clientFrame(zText, helloZ[:4]), clientFrame(finCont|0x40, helloZ[4:])),
		err: ErrCompressedFragment, at: 6 + 4 + 5},
	{name: "rsv1 on continuation of a plain message", input: cat(frameA, clientFrame(0xC0, []byte("x"))), err: ErrCompressedFragment, at: 12},
	{name: "rsv1 on ping", input: clientFrame(ping|0x40, nil), err: ErrCompressedFragment, at: 5},
	{name: "rsv1 on pong", input: clientFrame(pong|0x40, nil), err: ErrCompressedFragment, at: 5},
	{name: "rsv1 on close", input: clientFrame(closeOp|0x40, nil), err: ErrCompressedFragment, at: 5},
	{name: "rsv1 on ping inside a compressed message", input: cat(clientFrame(zText, helloZ[:4]), clientFrame(ping|0x40, nil)),
		err: ErrCompressedFragment, at: 6 + 4 + 5},
	{name: "rsv2 still reserved", input: clientFrame(finText|0x20, []byte("x")), err: ErrReservedBits, at: 5},
	{name: "rsv1 and rsv3", input: clientFrame(finText|0x50, []byte("x")), err: ErrReservedBits, at: 5},
	{name: "compressed frame over max declared", input: clientFrame(zFinText, make([]byte, 11)), max: 10, err: ErrMessageTooBig, at: 5},
}

func TestStreamDeflate(t *testing.T) {
	for _, tc := range deflateStreamCases {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.limit()
			tc.check(t, "whole", feedDeflate(tc.input, nil, max, noContext), false)
			tc.check(t, "byte by byte", feedDeflate(tc.input, bytewise(len(tc.input)), max, noContext), true)
			for i := 1; i < min(len(tc.input), 300); i++ {
				tc.check(t, fmt.Sprintf("cut at %d", i), feedDeflate(tc.input, []int{i}, max, noContext), false)
			}
		})
	}
}

// TestStreamDeflateOff: without the extension, RSV1 is a protocol error
// however the message looks.
func TestStreamDeflateOff(t *testing.T) {
	for _, in := range [][]byte{clientFrame(zFinText, helloZ), clientFrame(ping|0x40, nil)} {
		if r := feedChunks(in, nil, 1<<20); r.err != ErrReservedBits {
			t.Fatalf("% x: %v", in[:2], r.err)
		}
	}
	var s Stream
	s.SetDeflate(noContext)
	s.SetDeflate(DeflateParams{})
	if err := s.Feed(clientFrame(zFinText, helloZ), &collector{}, 1<<20); err != ErrReservedBits {
		t.Fatalf("after turning it off: %v", err)
	}
}

// TestStreamDeflateContextTakeover: a client keeping its compressor across
// messages, some of them fragmented, with plain messages between (those do
// not enter its window); the stream holds only the window between them.
func TestStreamDeflateContextTakeover(t *testing.T) {
	for _, bits := range []uint8{9, 12, 15} {
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			var s Stream
			s.SetDeflate(DeflateParams{Enabled: true, ServerWindowBits: 15, ClientWindowBits: bits})
			defer s.Release()
			rng := rand.New(rand.NewPCG(uint64(bits), 1))
			var history []byte
			for i := range 40 {
				m := chatJSON(1 + rng.IntN(3000))
				if i%7 == 3 {
					// A plain message: not in the client's window.
					c := &collector{}
					if err := s.Feed(clientFrame(finText, m), c, 1<<20); err != nil || len(c.events) != 1 {
						t.Fatalf("plain message %d: %v", i, err)
					}
					continue
				}
				var b bytes.Buffer
				w := newStdWriterDict(&b, history[max(0, len(history)-1<<bits):])
				w.Write(m)
				w.Flush()
				payload := b.Bytes()[:b.Len()-4]
				var in []byte
				if i%2 == 0 {
					in = clientFrame(zFinText, payload)
				} else {
					p := split(payload, 2)
					in = cat(clientFrame(zText, p[0]), clientFrame(ping, nil), clientFrame(finCont, p[1]))
				}
				c := &collector{}
				if err := s.Feed(in, c, 1<<20); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if ev := c.events[len(c.events)-1]; ev.op != OpText || ev.payload != string(m) {
					t.Fatalf("message %d: %d bytes back", i, len(ev.payload))
				}
				history = append(history, m...)
				if s.dictLen() != min(len(history), 1<<bits) || s.buffered() != 0 {
					t.Fatalf("message %d: window %d, buffered %d", i, s.dictLen(), s.buffered())
				}
			}
		})
	}
}

// FuzzStreamDeflate: FuzzStream's properties with permessage-deflate on.
func FuzzStreamDeflate(f *testing.F) {
	for _, tc := range deflateStreamCases {
		if len(tc.input) < 4096 {
			f.Add(tc.input, uint64(len(tc.input)), uint16(tc.limit()))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, max uint16) {
		whole := feedDeflate(data, nil, int64(max), noContext)
		var cuts []int
		rng := rand.New(rand.NewPCG(seed, 0))
		for i := 0; i < len(data); {
			i += 1 + rng.IntN(8)
			if i < len(data) {
				cuts = append(cuts, i)
			}
		}
		parts := feedDeflate(data, cuts, int64(max), noContext)
		if whole.err != parts.err || !sameEvents(whole.events, parts.events) {
			t.Fatalf("whole: %v %v; in pieces %v: %v %v", whole.err, whole.events, cuts, parts.err, parts.events)
		}
		if whole.err != nil {
			if _, ok := whole.err.(*CloseError); !ok && whole.err != errStop {
				t.Fatalf("error %v is neither a CloseError nor the handler's", whole.err)
			}
		}
		for _, ev := range whole.events {
			if max > 0 && !ev.op.IsControl() && len(ev.payload) > int(max) {
				t.Fatalf("%d-byte message over max %d", len(ev.payload), max)
			}
		}
	})
}

// ratioHandler is a Handler that is also an InflateLimiter: a compressed
// payload of n bytes may inflate to ratio*n.
type ratioHandler struct {
	collector
	ratio int
}

func (h *ratioHandler) InflateLimit(n int) int { return h.ratio * n }

// TestStreamInflateLimiter: a Handler's InflateLimit bounds a compressed
// message below max and its failure is ErrInflateRatio; past max it is
// still ErrDeflateTooBig; a limit above max changes nothing.
func TestStreamInflateLimiter(t *testing.T) {
	bomb := stdDeflate(rep("a", 10000)) // a few dozen bytes
	for _, tc := range []struct {
		name  string
		ratio int
		max   int64
		err   error
	}{
		{"within the ratio", 1000, 1 << 20, nil},
		{"past the ratio", 10, 1 << 20, ErrInflateRatio},
		{"past max, ratio higher", 1000, 5000, ErrDeflateTooBig},
	} {
		var s Stream
		s.SetDeflate(noContext)
		h := &ratioHandler{ratio: tc.ratio}
		err := s.Feed(clientFrame(zFinText, bomb), h, tc.max)
		if err != tc.err {
			t.Errorf("%s (%d bytes compressed): %v, want %v", tc.name, len(bomb), err, tc.err)
		}
		if tc.err == nil && (len(h.events) != 1 || len(h.events[0].payload) != 10000) {
			t.Errorf("%s: events %v", tc.name, h.events)
		}
		s.Release()
	}
}
