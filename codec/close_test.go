package codec

import (
	"strings"
	"testing"

	"github.com/wsd-chat/wsd/internal/wstest"
)

func TestValidCloseCode(t *testing.T) {
	// RFC 6455 7.4.1 and 7.4.2, every uint16.
	for c := range 1 << 16 {
		code := uint16(c)
		want := (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
		if got := validCloseCode(code); got != want {
			t.Errorf("validCloseCode(%d) = %v, want %v", code, got, want)
		}
	}
	// The codes wsd itself sends must be ones a peer may send back.
	for _, code := range []uint16{CloseNormal, CloseGoingAway, CloseProtocolError, CloseUnsupportedData, CloseInvalidPayload,
		ClosePolicyViolation, CloseTooBig, CloseInternalError, CloseTryAgainLater} {
		if !validCloseCode(code) {
			t.Errorf("wsd sends %d, which is not a valid close code", code)
		}
	}
	if validCloseCode(CloseNoStatus) {
		t.Error("1005 must never be on the wire")
	}
}

var closeCases = []struct {
	name   string
	in     []byte
	code   uint16
	reason string
	err    *CloseError
}{
	{"empty", nil, CloseNoStatus, "", nil},
	{"one byte", []byte{3}, 0, "", ErrBadClosePayload},
	{"1000", wstest.ClosePayload(1000, ""), 1000, "", nil},
	{"1000 reason", wstest.ClosePayload(1000, "bye"), 1000, "bye", nil},
	{"4999 utf8 reason", wstest.ClosePayload(4999, "très bien"), 4999, "très bien", nil},
	{"3000 123-byte reason", wstest.ClosePayload(3000, strings.Repeat("r", 123)), 3000, strings.Repeat("r", 123), nil},
	{"0", wstest.ClosePayload(0, ""), 0, "", ErrBadCloseCode},
	{"999", wstest.ClosePayload(999, ""), 0, "", ErrBadCloseCode},
	{"1004", wstest.ClosePayload(1004, ""), 0, "", ErrBadCloseCode},
	{"1005", wstest.ClosePayload(1005, ""), 0, "", ErrBadCloseCode},
	{"1006", wstest.ClosePayload(1006, ""), 0, "", ErrBadCloseCode},
	{"1015", wstest.ClosePayload(1015, ""), 0, "", ErrBadCloseCode},
	{"1016", wstest.ClosePayload(1016, ""), 0, "", ErrBadCloseCode},
	{"2999", wstest.ClosePayload(2999, ""), 0, "", ErrBadCloseCode},
	{"5000", wstest.ClosePayload(5000, ""), 0, "", ErrBadCloseCode},
	{"bad code before bad utf8", wstest.ClosePayload(5000, "\xff"), 0, "", ErrBadCloseCode},
	{"invalid utf8", wstest.ClosePayload(1000, "\xc3\x28"), 0, "", ErrInvalidUTF8},
	{"truncated utf8", wstest.ClosePayload(1000, "ok\xe4\xbd"), 0, "", ErrInvalidUTF8},
	{"surrogate", wstest.ClosePayload(1000, "\xed\xa0\x80"), 0, "", ErrInvalidUTF8},
}

func TestParseClose(t *testing.T) {
	for _, tc := range closeCases {
		code, reason, err := ParseClose(tc.in)
		if code != tc.code || string(reason) != tc.reason || err != tc.err {
			t.Errorf("%s: ParseClose(% x) = %d, %q, %v; want %d, %q, %v", tc.name, tc.in, code, reason, err, tc.code, tc.reason, tc.err)
		}
	}
}

func TestCloseErrors(t *testing.T) {
	for _, e := range []*CloseError{ErrUnmasked, ErrReservedBits, ErrReservedOpcode, ErrControlTooLong, ErrControlFragment,
		ErrBadLength, ErrUnexpectedCont, ErrExpectedCont, ErrBadClosePayload, ErrBadCloseCode} {
		if e.Code != CloseProtocolError {
			t.Errorf("%v: code %d, want 1002", e, e.Code)
		}
	}
	for e, code := range map[*CloseError]uint16{ErrInvalidUTF8: 1007, ErrMessageTooBig: 1009, ErrInflatedTooBig: 1009,
		ErrNotGzip: 1003, ErrCompressedFragment: 1002, ErrBadDeflate: 1007, ErrDeflateTooBig: 1009} {
		if e.Code != code {
			t.Errorf("%v: code %d, want %d", e, e.Code, code)
		}
	}
	if got := ErrInvalidUTF8.Error(); got != "websocket close 1007: invalid UTF-8" {
		t.Fatalf("Error() = %q", got)
	}
}
