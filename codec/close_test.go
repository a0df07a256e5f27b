package codec

import "testing"

func TestParseClose(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		code uint16
		err  *CloseError
	}{
		{nil, CloseNoStatus, nil},
		{[]byte{3}, 0, ErrBadClosePayload},
		{closePayload(1000, ""), 1000, nil},
		{closePayload(4999, "ok"), 4999, nil},
		{closePayload(1005, ""), 0, ErrBadCloseCode},
		{closePayload(1000, "\xc3\x28"), 0, ErrInvalidUTF8},
	} {
		code, _, err := ParseClose(tc.in)
		if code != tc.code || err != tc.err {
			t.Errorf("ParseClose(% x) = %d, %v; want %d, %v", tc.in, code, err, tc.code, tc.err)
		}
	}
	if ErrReplaced.Code != 4001 || ErrReplaced.Reason != "replaced" {
		t.Fatal("ErrReplaced must be 4001 replaced (the seed protocol's kick)")
	}
	if ErrSlowConsumer.Error() == "" {
		t.Fatal("empty error text")
	}
}
