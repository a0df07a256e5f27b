package cluster

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wsd-chat/wsd/codec"
)

// The origin extension between this release and the one before it (wire
// version 1 both): each decodes the other's room messages, the older one
// skipping the sender it does not know of.

// decodeRelease1 is decode as the release before the origin extension
// has it (cluster/wire.go at b158598), verbatim but its name and the
// message type it fills: the fixture a box of that release runs.
func decodeRelease1(p []byte, maxText int, m *message1) error {
	if len(p) < 1 {
		return errMalformed
	}
	if p[0] != wireVersion {
		return errVersion
	}
	if len(p) < 4 {
		return errMalformed
	}
	*m = message1{Kind: msgKind(p[1])}
	flags := p[2]
	if m.Kind < kindRoom || m.Kind > kindAnnounce || flags&^(flagGzip|flagMAC) != 0 {
		return errMalformed
	}
	if flags&flagMAC != 0 {
		if len(p) < 4+macSize {
			return errMalformed
		}
		p = p[:len(p)-macSize] // checked, if this box has keys, before decode
	}
	n := int(p[3])
	p = p[4:]
	if n == 0 || n > maxBoxID || len(p) < n+8 {
		return errMalformed
	}
	m.BoxID = string(p[:n])
	m.Seq = binary.BigEndian.Uint64(p[n:])
	p = p[n+8:]
	if m.Kind.isKey() {
		if len(p) < 8 {
			return errMalformed
		}
		m.Stamp = binary.BigEndian.Uint64(p)
		p = p[8:]
	}
	if len(p) < 2 {
		return errMalformed
	}
	n = int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if n > maxTarget || len(p) < n {
		return errMalformed
	}
	m.Target = string(p[:n])
	p = p[n:]
	if flags&flagGzip != 0 {
		if len(p) < 4 {
			return errMalformed
		}
		g := binary.BigEndian.Uint32(p)
		p = p[4:]
		if uint64(g) > uint64(len(p)) {
			return errMalformed
		}
		m.Gzip = p[:g]
		p = p[g:]
	}
	m.Text = p
	switch m.Kind {
	case kindRoom:
		if m.Target != "" && !codec.ValidRoom([]byte(m.Target)) {
			return errInvalid
		}
	case kindAll:
		if m.Target != "" {
			return errInvalid
		}
	default:
		if m.Target == "" {
			return errInvalid
		}
	}
	if m.Kind.isKey() {
		if len(m.Text) != 0 || m.Gzip != nil || m.Stamp == 0 {
			return errInvalid
		}
		return nil
	}
	if len(m.Text) > maxText {
		return errTooLarge
	}
	if !utf8.Valid(m.Text) {
		return errInvalid
	}
	return nil
}

// message1 is the message of that release.
type message1 struct {
	Kind   msgKind
	BoxID  string
	Seq    uint64
	Stamp  uint64
	Target string
	Gzip   []byte
	Text   []byte
}

// appendRelease1 is that release's Append.
func (m *message1) appendRelease1(dst []byte) []byte {
	flags := byte(0)
	if m.Gzip != nil {
		flags |= flagGzip
	}
	dst = append(dst, wireVersion, byte(m.Kind), flags, byte(len(m.BoxID)))
	dst = append(dst, m.BoxID...)
	dst = binary.BigEndian.AppendUint64(dst, m.Seq)
	if m.Kind.isKey() {
		dst = binary.BigEndian.AppendUint64(dst, m.Stamp)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.Target)))
	dst = append(dst, m.Target...)
	if m.Gzip != nil {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(m.Gzip)))
		dst = append(dst, m.Gzip...)
	}
	return append(dst, m.Text...)
}

// A box of the previous release takes this release's room messages as
// the text they carry (the loop of that release hands the hub m.Text and
// nothing of the section), signed or not.
func TestOriginReadByPreviousRelease(t *testing.T) {
	for name, m := range map[string]message{
		"v1 send":        {Kind: kindRoom, BoxID: "box-a", Seq: 9, Target: "lobby", From: "alice", ID: []byte("c-17"), Text: []byte("héllo")},
		"seed sender":    {Kind: kindRoom, BoxID: "box-a", Seq: 10, Target: "", From: "bob", Text: []byte("hi")},
		"longest fields": {Kind: kindRoom, BoxID: "box-a", Seq: 11, Target: "r", From: strings.Repeat("k", maxFrom), ID: bytes.Repeat([]byte("i"), maxID), Text: []byte("x")},
		"empty text":     {Kind: kindRoom, BoxID: "box-a", Seq: 12, Target: "r", From: "k", Text: []byte{}},
	} {
		for _, signed := range []bool{false, true} {
			p := m.Append(nil)
			if !m.hasOrigin() || p[2]&flagGzip == 0 {
				t.Fatalf("%s: no origin section written", name)
			}
			if signed {
				k, _ := newBusKeys([][]byte{bytes.Repeat([]byte("k"), MinBusKey)})
				p = k.sign("wsd.room.r", p)
			}
			var old message1
			if err := decodeRelease1(p, 1<<20, &old); err != nil {
				t.Fatalf("%s (signed %v): the previous release refuses it: %v", name, signed, err)
			}
			if old.Kind != m.Kind || old.BoxID != m.BoxID || old.Seq != m.Seq || old.Target != m.Target || !bytes.Equal(old.Text, m.Text) {
				t.Fatalf("%s (signed %v): the previous release reads %+v", name, signed, old)
			}
		}
	}
}

// This release takes the previous release's messages, a carried gzip frame
// among them (skipped, as before), with no sender.
func TestPreviousReleaseReadByOrigin(t *testing.T) {
	gz := codec.AppendGzipFrame(nil, []byte("héllo"))
	for _, old := range []message1{
		{Kind: kindRoom, BoxID: "b", Seq: 7, Target: "lobby", Text: []byte("héllo")},
		{Kind: kindRoom, BoxID: "b", Seq: 8, Target: "lobby", Text: []byte("héllo"), Gzip: gz},
		{Kind: kindAll, BoxID: "b", Seq: 9, Text: []byte("x")},
		{Kind: kindDirect, BoxID: "b", Seq: 10, Target: "key", Text: []byte("x")},
		{Kind: kindClaim, BoxID: "b", Seq: 11, Stamp: 5, Target: "key"},
	} {
		var m message
		if err := decode(old.appendRelease1(nil), 1<<20, &m); err != nil {
			t.Fatalf("%v: %v", old.Kind, err)
		}
		if m.Kind != old.Kind || m.BoxID != old.BoxID || m.Seq != old.Seq || m.Stamp != old.Stamp || m.Target != old.Target ||
			!bytes.Equal(m.Text, old.Text) || !bytes.Equal(m.Gzip, old.Gzip) || m.From != "" || m.ID != nil {
			t.Fatalf("%v: read as %+v", old.Kind, m)
		}
	}
}

// The origin extension's bounds and framing.
func TestOriginRejects(t *testing.T) {
	head := func(kind msgKind) []byte {
		return (&message{Kind: kind, BoxID: "b", Seq: 1, Target: "r"}).Append(nil)
	}
	// withSection builds a message of kind with section sec and text.
	withSection := func(kind msgKind, sec []byte, text string) []byte {
		p := head(kind)
		if kind == kindAll {
			p = (&message{Kind: kind, BoxID: "b", Seq: 1}).Append(nil)
		}
		p[2] |= flagGzip
		p = binary.BigEndian.AppendUint32(p, uint32(len(sec)))
		return append(append(p, sec...), text...)
	}
	origin := func(fromLen, idLen int) []byte {
		s := []byte{extOrigin}
		s = binary.BigEndian.AppendUint16(s, uint16(fromLen))
		s = append(s, bytes.Repeat([]byte("k"), fromLen)...)
		s = append(s, byte(idLen))
		return append(s, bytes.Repeat([]byte("i"), idLen)...)
	}
	cases := []struct {
		name string
		p    []byte
		want error
		from string
		id   string
	}{
		{"key at the cap", withSection(kindRoom, origin(maxFrom, 0), "t"), nil, strings.Repeat("k", maxFrom), ""},
		{"id at the cap", withSection(kindRoom, origin(1, maxID), "t"), nil, "k", strings.Repeat("i", maxID)},
		{"key over the cap", withSection(kindRoom, origin(maxFrom+1, 0), "t"), errInvalid, "", ""},
		{"id over the cap", withSection(kindRoom, origin(1, maxID+1), "t"), errInvalid, "", ""},
		{"later fields ignored", withSection(kindRoom, append(origin(1, 1), "future"...), "t"), nil, "k", "i"},
		{"tag only", withSection(kindRoom, []byte{extOrigin}, "t"), errMalformed, "", ""},
		{"key cut short", withSection(kindRoom, origin(5, 0)[:5], "t"), errMalformed, "", ""},
		{"id cut short", withSection(kindRoom, origin(1, 4)[:6], "t"), errMalformed, "", ""},
		{"origin on all", withSection(kindAll, origin(1, 1), "t"), errInvalid, "", ""},
		{"origin on direct", withSection(kindDirect, origin(1, 1), "t"), errInvalid, "", ""},
		{"origin on claim", withSection(kindClaim, origin(1, 1), ""), errInvalid, "", ""},
		{"empty section", withSection(kindRoom, nil, "t"), nil, "", ""},
	}
	for _, c := range cases {
		var m message
		err := decode(c.p, 1<<20, &m)
		if err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
			continue
		}
		if err == nil && (m.From != c.from || string(m.ID) != c.id || string(m.Text) != "t") {
			t.Errorf("%s: from %q id %q text %q", c.name, m.From, m.ID, m.Text)
		}
	}
}

// The MAC covers the origin: changing the sender or its id in transit
// fails verification.
func TestOriginUnderMAC(t *testing.T) {
	k, _ := newBusKeys([][]byte{bytes.Repeat([]byte("k"), MinBusKey)})
	m := message{Kind: kindRoom, BoxID: "b", Seq: 1, Target: "r", From: "alice", ID: []byte("c-1"), Text: []byte("hi")}
	p := k.sign("wsd.room.r", m.Append(nil))
	if r := k.verify("wsd.room.r", p); r != -1 {
		t.Fatalf("genuine message refused: %d", r)
	}
	for _, change := range []struct{ from, to string }{{"alice", "mallo"}, {"c-1", "c-2"}} {
		q := bytes.Clone(p)
		i := bytes.Index(q, []byte(change.from))
		copy(q[i:], change.to)
		if r := k.verify("wsd.room.r", q); r != DropBadMAC {
			t.Errorf("%q changed to %q: verify %d, want bad MAC", change.from, change.to, r)
		}
		// Recomputing the MAC without the key is what it stops; with the
		// key the change would verify: the MAC is over these bytes.
		mac := hmac.New(sha256.New, bytes.Repeat([]byte("k"), MinBusKey))
		mac.Write([]byte("wsd.room.r\x00"))
		mac.Write(q[:len(q)-macSize])
		copy(q[len(q)-macSize:], mac.Sum(nil))
		if r := k.verify("wsd.room.r", q); r != -1 {
			t.Errorf("re-signed %q: verify %d", change.to, r)
		}
	}
}
