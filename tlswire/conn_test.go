package tlswire_test

import (
	"crypto/tls"
	"errors"
	"testing"

	"github.com/wsd-chat/wsd/tlswire"
)

type nopOwner struct{}

func (nopOwner) FlushTLS()              {}
func (nopOwner) TLSHandshakeDone(error) {}

// TestFeedRefusesOversizedRecord: a record header before the handshake
// that announces more than MaxRecord bytes is refused as soon as the
// header is in, before any body is buffered; up to MaxRecord is waited for.
func TestFeedRefusesOversizedRecord(t *testing.T) {
	header := func(n int) []byte { return []byte{22, 3, 1, byte(n >> 8), byte(n)} }
	for _, tc := range []struct {
		name  string
		feeds [][]byte
		err   error // of the last feed
	}{
		{"largest allowed, body pending", [][]byte{header(tlswire.MaxRecord)}, nil},
		{"one byte over", [][]byte{header(tlswire.MaxRecord + 1)}, tlswire.ErrRecordTooLarge},
		{"64 KiB claimed", [][]byte{header(0xffff)}, tlswire.ErrRecordTooLarge},
		{"header in two reads", [][]byte{header(0xffff)[:3], header(0xffff)[3:]}, tlswire.ErrRecordTooLarge},
		{"second record oversized", [][]byte{append(header(4), 1, 0, 1, 0), header(0xffff)}, tlswire.ErrRecordTooLarge}, // a ClientHello of 256 bytes begun
		{"short record, body pending", [][]byte{header(300)}, nil},
	} {
		c := tlswire.NewConn(&tls.Config{}, tlswire.NewPool(1, 1), nopOwner{})
		var err error
		for _, p := range tc.feeds {
			if err = c.Feed(p); err != nil {
				break
			}
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
		if tc.err != nil && !errors.Is(err, tlswire.ErrHandshakeInput) {
			t.Errorf("%s: %v is not an ErrHandshakeInput", tc.name, err)
		}
		c.Close()
	}
}
