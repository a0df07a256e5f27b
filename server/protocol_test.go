package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsd-chat/wsd/internal/wstest"
	"github.com/wsd-chat/wsd/session"
)

// frame is shorthand for a masked client frame.
func frame(b0 byte, payload string) []byte { return wstest.RawFrame(b0, true, []byte(payload)) }

func closeFrame(code uint16, reason string) []byte {
	return wstest.RawFrame(0x88, true, wstest.ClosePayload(code, reason))
}

// header is a masked frame header declaring n payload bytes, without them.
func header(b0 byte, n int) []byte {
	f := wstest.RawFrame(b0, true, make([]byte, n))
	return f[:len(f)-n]
}

// event renders a frame from the server for comparison.
func event(f wstest.Frame) string {
	switch f.Op {
	case ws.OpText:
		return "text:" + string(f.Payload)
	case ws.OpBinary:
		s, err := wstest.Gunzip(f.Payload)
		if err != nil {
			return fmt.Sprintf("binary (not gzip: %v)", err)
		}
		return "gzip:" + s
	case ws.OpPong:
		return "pong:" + string(f.Payload)
	case ws.OpPing:
		return "ping:" + string(f.Payload)
	case ws.OpClose:
		return fmt.Sprintf("close:%d", f.CloseCode())
	}
	return fmt.Sprintf("op %d: %q", f.Op, f.Payload)
}

const protoMaxMessage = 1024

// protocolCases send raw bytes (each element one write) and expect exactly
// the listed frames back; a case whose last frame is a close also expects
// the server to close TCP right after it.
var protocolCases = []struct {
	name string
	send [][]byte
	want []string
}{
	// Framing (RFC 6455 5.2, 5.3).
	{"unmasked text", [][]byte{wstest.RawFrame(0x81, false, []byte("hi"))}, []string{"close:1002"}},
	{"unmasked ping", [][]byte{wstest.RawFrame(0x89, false, nil)}, []string{"close:1002"}},
	{"RSV1", [][]byte{frame(0xC1, "hi")}, []string{"close:1002"}},
	{"RSV2", [][]byte{frame(0xA1, "hi")}, []string{"close:1002"}},
	{"RSV3", [][]byte{frame(0x91, "hi")}, []string{"close:1002"}},
	{"RSV on a ping", [][]byte{frame(0xC9, "")}, []string{"close:1002"}},
	{"reserved data opcode 3", [][]byte{frame(0x83, "")}, []string{"close:1002"}},
	{"reserved data opcode 7", [][]byte{frame(0x87, "x")}, []string{"close:1002"}},
	{"reserved control opcode 0xB", [][]byte{frame(0x8B, "")}, []string{"close:1002"}},
	{"reserved control opcode 0xF", [][]byte{frame(0x8F, "x")}, []string{"close:1002"}},

	// Control frames (5.5).
	{"ping of 126 bytes", [][]byte{frame(0x89, strings.Repeat("p", 126))}, []string{"close:1002"}},
	{"close of 126 bytes", [][]byte{closeFrame(1000, strings.Repeat("r", 124))}, []string{"close:1002"}},
	{"ping of 125 bytes", [][]byte{frame(0x89, strings.Repeat("p", 125))}, []string{"pong:" + strings.Repeat("p", 125)}},
	{"fragmented ping", [][]byte{frame(0x09, "a"), frame(0x80, "b")}, []string{"close:1002"}},

	// Fragmentation (5.4).
	{"continuation without start", [][]byte{frame(0x80, "orphan")}, []string{"close:1002"}},
	{"unfinished continuation without start", [][]byte{frame(0x00, "orphan")}, []string{"close:1002"}},
	{"text during fragmented text", [][]byte{frame(0x01, "a"), frame(0x81, "b")}, []string{"close:1002"}},
	{"binary during fragmented text", [][]byte{frame(0x01, "a"), frame(0x82, "b")}, []string{"close:1002"}},
	{"fragmented text", [][]byte{frame(0x01, "hel"), frame(0x00, ""), frame(0x80, "lo")}, []string{"text:hello"}},
	{"fragmented text with interleaved ping",
		[][]byte{frame(0x01, "hel"), frame(0x89, "mid"), frame(0x80, "lo")},
		[]string{"pong:mid", "text:hello"}},
	{"fragmented text with interleaved pong",
		[][]byte{frame(0x01, "a"), frame(0x8A, "x"), frame(0x00, "b"), frame(0x80, "c")},
		[]string{"text:abc"}},

	// UTF-8 (8.1).
	{"invalid UTF-8", [][]byte{frame(0x81, "abc\xff")}, []string{"close:1007"}},
	{"overlong encoding", [][]byte{frame(0x81, "\xc0\xaf")}, []string{"close:1007"}},
	{"surrogate half", [][]byte{frame(0x81, "\xed\xa0\x80")}, []string{"close:1007"}},
	{"truncated at end of message", [][]byte{frame(0x81, "ok\xe2\x82")}, []string{"close:1007"}},
	{"valid UTF-8 split across fragments", [][]byte{frame(0x01, "\xe2\x82"), frame(0x80, "\xac!")}, []string{"text:€!"}},
	{"invalid UTF-8 split across fragments", [][]byte{frame(0x01, "\xe2\x82"), frame(0x80, "\x28")}, []string{"close:1007"}},
	// Fail fast: the first fragment is already invalid, so the close comes
	// without the rest of the message ever being sent.
	{"invalid UTF-8 in first fragment", [][]byte{frame(0x01, "fine so far \xff")}, []string{"close:1007"}},
	{"invalid UTF-8 mid-frame", [][]byte{header(0x81, 100), maskedPrefix(100, "ab\xffcd")}, []string{"close:1007"}},

	// Close frames (5.5.1, 7.4).
	{"close with 1-byte payload", [][]byte{wstest.RawFrame(0x88, true, []byte{0x03})}, []string{"close:1002"}},
	{"close 1005", [][]byte{closeFrame(1005, "")}, []string{"close:1002"}},
	{"close 1006", [][]byte{closeFrame(1006, "")}, []string{"close:1002"}},
	{"close 999", [][]byte{closeFrame(999, "")}, []string{"close:1002"}},
	{"close 0", [][]byte{closeFrame(0, "")}, []string{"close:1002"}},
	{"close 1004", [][]byte{closeFrame(1004, "")}, []string{"close:1002"}},
	{"close 1015", [][]byte{closeFrame(1015, "")}, []string{"close:1002"}},
	{"close 2999", [][]byte{closeFrame(2999, "")}, []string{"close:1002"}},
	{"close 5000", [][]byte{closeFrame(5000, "")}, []string{"close:1002"}},
	{"close 65535", [][]byte{closeFrame(65535, "")}, []string{"close:1002"}},
	// An invalid UTF-8 reason is invalid payload data (7.4.1: 1007).
	{"close reason invalid UTF-8", [][]byte{closeFrame(1000, "bye\xff")}, []string{"close:1007"}},
	{"close 3000 echoed", [][]byte{closeFrame(3000, "ok")}, []string{"close:3000"}},
	{"close 1001 echoed", [][]byte{closeFrame(1001, "")}, []string{"close:1001"}},

	// Size caps.
	{"declared length over MaxMessage", [][]byte{header(0x81, protoMaxMessage+1)}, []string{"close:1009"}},
	{"declared length 2^63-1", [][]byte{{0x81, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4}}, []string{"close:1009"}},
	{"64-bit length with the top bit set", [][]byte{{0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4}}, []string{"close:1002"}},
	{"fragments over MaxMessage", [][]byte{frame(0x01, strings.Repeat("a", 600)), header(0x80, 600)}, []string{"close:1009"}},
	{"exactly MaxMessage", [][]byte{frame(0x81, strings.Repeat("m", protoMaxMessage))}, []string{"text:" + strings.Repeat("m", protoMaxMessage)}},

	// Binary messages are gzip'd text.
	{"binary gzip", [][]byte{wstest.RawFrame(0x82, true, wstest.Gzip("zipped"))}, []string{"text:zipped"}},
	{"binary not gzip", [][]byte{frame(0x82, "plain bytes")}, []string{"close:1003"}},
	{"binary gzip with trailing junk", [][]byte{wstest.RawFrame(0x82, true, append(wstest.Gzip("x"), 0))}, []string{"close:1003"}},
	{"binary gzip of invalid UTF-8", [][]byte{wstest.RawFrame(0x82, true, wstest.Gzip("bad \xff"))}, []string{"close:1007"}},
	{"gzip bomb", [][]byte{wstest.RawFrame(0x82, true, bomb(1<<20))}, []string{"close:1009"}},
	{"gzip just over MaxMessage", [][]byte{wstest.RawFrame(0x82, true, wstest.Gzip(strings.Repeat("y", protoMaxMessage+1)))}, []string{"close:1009"}},

	// What was accepted before the violation is still delivered first.
	{"message then violation in one write", [][]byte{append(frame(0x81, "before"), frame(0xC1, "x")...)}, []string{"text:before", "close:1002"}},
	{"message then close in one write", [][]byte{append(frame(0x81, "last words"), closeFrame(1000, "")...)}, []string{"text:last words", "close:1000"}},
}

// maskedPrefix returns the first bytes of the masked payload of an n-byte
// frame built by header, starting with s: the rest of the frame is never sent.
func maskedPrefix(n int, s string) []byte {
	p := make([]byte, n)
	copy(p, s)
	f := wstest.RawFrame(0x81, true, p)
	return f[len(f)-n : len(f)-n+len(s)]
}

// TestProtocolViolations drives every RFC 6455 rule wsd enforces with raw
// frames and checks the exact frames it answers, the close code last, and
// that it closes TCP after a close. Each case has its own room with an
// observer, which must hear exactly the messages that went through.
func TestProtocolViolations(t *testing.T) {
	srv, addr, stats := start(t, session.Config{
		MaxMessage:   protoMaxMessage,
		CloseTimeout: 5 * time.Second, // well apart from the EOF bound below
	})

	t.Run("cases", func(t *testing.T) {
		for i, tc := range protocolCases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				room := fmt.Sprintf("&room=proto%d", i)
				observer := wstest.Dial(t, addr, fmt.Sprintf("specialKey=observer%d%s", i, room))
				c := wstest.Dial(t, addr, fmt.Sprintf("specialKey=proto%d%s", i, room))
				for _, p := range tc.send {
					if err := c.WriteRaw(p); err != nil {
						t.Fatalf("write: %v", err)
					}
				}
				var got []string
				for len(got) < len(tc.want) {
					f, err := c.ReadFrame(wstest.DefaultTimeout)
					if err != nil {
						t.Fatalf("got %q, then %v; want %q", got, err, tc.want)
					}
					got = append(got, event(f))
				}
				if strings.Join(got, "|") != strings.Join(tc.want, "|") {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
				var heard []string
				for _, w := range tc.want {
					if strings.HasPrefix(w, "text:") {
						heard = append(heard, w)
					}
				}
				last := tc.want[len(tc.want)-1]
				if !strings.HasPrefix(last, "close:") {
					// Still open: a message goes through.
					if err := c.WriteText("alive"); err != nil {
						t.Fatal(err)
					}
					if f, err := c.ReadFrame(wstest.DefaultTimeout); err != nil || event(f) != "text:alive" {
						t.Fatalf("after %q: %v %v", got, event(f), err)
					}
					heard = append(heard, "text:alive")
				} else {
					// After its close frame the server half-closes at once:
					// nothing else, then EOF, without our close reply.
					start := time.Now()
					if err := c.WaitEOF(2 * time.Second); err != nil {
						t.Fatalf("after %s: %v", last, err)
					}
					if d := time.Since(start); d > time.Second {
						t.Errorf("EOF %v after the close frame", d)
					}
				}
				for _, w := range heard {
					f, err := observer.ReadFrame(wstest.DefaultTimeout)
					if err != nil || event(f) != w {
						t.Fatalf("observer: %s, %v; want %s", event(f), err, w)
					}
				}
				// Nothing else: the observer's own message, broadcast after
				// everything the client sent, is the next frame.
				if err := observer.WriteText("end"); err != nil {
					t.Fatal(err)
				}
				if f, err := observer.ReadFrame(wstest.DefaultTimeout); err != nil || event(f) != "text:end" {
					t.Errorf("observer: %s, %v; want its own end marker", event(f), err)
				}
			})
		}
	})

	wstest.Eventually(t, 5*time.Second, "every connection gone", func() bool {
		return srv.Hub().Live() == 0 && stats.Open.Load() == 0
	})
	if q := stats.QueuedBytes.Load(); q != 0 {
		t.Errorf("QueuedBytes = %d, want 0", q)
	}
	sent := map[uint16]uint64{}
	stats.CloseCodesSent(func(code uint16, n uint64) { sent[code] = n })
	for _, code := range []uint16{1002, 1003, 1007, 1009} {
		want := uint64(0)
		for _, tc := range protocolCases {
			if tc.want[len(tc.want)-1] == fmt.Sprintf("close:%d", code) {
				want++
			}
		}
		if sent[code] != want {
			t.Errorf("close frames with %d counted %d, want %d", code, sent[code], want)
		}
	}
}
