package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wsd-chat/wsd/chat"
)

// Every presence text appendPresence writes reads back as it was.
func TestPresenceTextRoundTrip(t *testing.T) {
	for _, lc := range []chat.LocalChange{
		{Lists: true, Count: 2, Keys: []string{"a", "b"}, Left: []string{"c"}},
		{Lists: true, Snapshot: true, Count: 3, Keys: []string{"a", "b", strings.Repeat("k", maxFrom)}},
		{Lists: true, Count: 0, Left: []string{"z"}},
		{Count: 5000},
		{Snapshot: true, Count: 5000},
	} {
		var m presenceMsg
		p := appendPresence(nil, &lc)
		if len(p) > presenceSize(&lc) {
			t.Fatalf("%+v: %d bytes, size said %d", lc, len(p), presenceSize(&lc))
		}
		if err := parsePresence(p, &m); err != nil {
			t.Fatalf("%+v: %v", lc, err)
		}
		got := fmt.Sprint(m.snapshot, m.lists, m.count, m.joined, m.left)
		if want := fmt.Sprint(lc.Snapshot, lc.Lists, lc.Count, lc.Keys, lc.Left); got != want {
			t.Fatalf("read back %s, want %s", got, want)
		}
	}
}

// Texts that are cut short, claim more keys than they hold, or hold an
// empty or over-long key, a huge count or a lease out of range are
// refused.
func TestPresenceTextRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		p    []byte
		want error
	}{
		{"empty", nil, errMalformed},
		{"no count", []byte{presLists}, errMalformed},
		{"no keys", []byte{presLists, 1}, errMalformed},
		{"more keys than bytes", []byte{presLists, 1, 200, 1, 'a'}, errMalformed},
		{"empty key", []byte{presLists | presSnapshot, 1, 1, 0, 0}, errInvalid},
		{"key cut short", []byte{presLists | presSnapshot, 1, 1, 5, 'a', 'b'}, errMalformed},
		{"long key", append([]byte{presLists | presSnapshot, 1, 1, 0x81, 0x02}, make([]byte, maxFrom+1)...), errInvalid},
		{"huge count", []byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f}, errInvalid},
		{"no left list", []byte{presLists, 1, 1, 1, 'a'}, errMalformed},
	} {
		var m presenceMsg
		if err := parsePresence(c.p, &m); err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	for _, p := range [][]byte{nil, {0}, appendLease(nil, 2*maxLease)} {
		if _, err := parseLease(p); err == nil {
			t.Errorf("lease %x taken", p)
		}
	}
	if d, err := parseLease(appendLease(nil, 15*time.Second)); err != nil || d != 15*time.Second {
		t.Errorf("lease 15s read as %v %v", d, err)
	}
}

func FuzzPresenceText(f *testing.F) {
	f.Add(appendPresence(nil, &chat.LocalChange{Lists: true, Count: 2, Keys: []string{"a", "b"}, Left: []string{"c"}}))
	f.Add(appendPresence(nil, &chat.LocalChange{Lists: true, Snapshot: true, Count: 1, Keys: []string{"x"}}))
	f.Add([]byte{0, 5})
	f.Fuzz(func(t *testing.T, p []byte) {
		if d, err := parseLease(p); err == nil && (d < minLease || d > maxLease) {
			t.Fatalf("lease %v taken", d)
		}
		var m presenceMsg
		if parsePresence(p, &m) != nil {
			return
		}
		// What parses re-encodes to a text that parses the same.
		lc := chat.LocalChange{Snapshot: m.snapshot, Lists: m.lists, Count: m.count, Keys: m.joined, Left: m.left}
		var again presenceMsg
		if err := parsePresence(appendPresence(nil, &lc), &again); err != nil {
			t.Fatalf("re-encoded %+v does not parse: %v", m, err)
		}
		if fmt.Sprint(m) != fmt.Sprint(again) {
			t.Fatalf("%+v read back as %+v", m, again)
		}
		for _, k := range append(m.joined, m.left...) {
			if k == "" || len(k) > maxFrom {
				t.Fatalf("key %q taken", k)
			}
		}
	})
}
