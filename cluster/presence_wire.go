package cluster

import (
	"encoding/binary"
	"time"

	"github.com/wsd-chat/wsd/chat"
)

// The text of a presence message (kindPresence), after the usual header
// (wire.go: the room is its target, its seq the room's change number on
// the sending box):
//
//	flags   1 byte: bit 0 snapshot (the keys are the box's whole set),
//	        bit 1 lists (keys follow; else the count is all there is)
//	count   uvarint: the room's members on the sending box
//	joined  uvarint n, then n × (uvarint length 1..maxFrom + key), if lists
//	left    the same, if lists and not a snapshot
//	...     later versions append fields: the rest is ignored
//
// A kindLease text is the sender's lease in milliseconds (uvarint); a
// kindPresenceAsk text is the id of the box asked, or empty for any box
// with members in the room; a kindGone text is empty.
const (
	presSnapshot = 1
	presLists    = 2
)

// Bounds of what a presence text may say: counts beyond any one box's
// connections, and leases outside them, are refused as invalid.
const (
	maxPresenceCount = 1 << 30
	minLease         = time.Millisecond
	maxLease         = time.Hour
)

// presenceMsg is a decoded presence text; its keys are copies.
type presenceMsg struct {
	snapshot, lists bool
	count           int
	joined, left    []string
}

// appendPresence encodes lc's change after dst.
func appendPresence(dst []byte, lc *chat.LocalChange) []byte {
	flags := byte(0)
	if lc.Snapshot {
		flags |= presSnapshot
	}
	if lc.Lists {
		flags |= presLists
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(lc.Count))
	if !lc.Lists {
		return dst
	}
	dst = appendKeys(dst, lc.Keys)
	if !lc.Snapshot {
		dst = appendKeys(dst, lc.Left)
	}
	return dst
}

func appendKeys(dst []byte, keys []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		dst = binary.AppendUvarint(dst, uint64(len(k)))
		dst = append(dst, k...)
	}
	return dst
}

// presenceSize is appendPresence's length for lc.
func presenceSize(lc *chat.LocalChange) int {
	n := 1 + binary.MaxVarintLen64
	if lc.Lists {
		n += keysSize(lc.Keys) + keysSize(lc.Left)
	}
	return n
}

func keysSize(keys []string) int {
	n := binary.MaxVarintLen64
	for _, k := range keys {
		n += binary.MaxVarintLen64 + len(k)
	}
	return n
}

// parsePresence decodes a presence text. A key is 1..maxFrom bytes (as
// the handshake caps it); a key list longer than the text could hold is
// malformed, so parsing allocates at most in proportion to the text.
func parsePresence(p []byte, m *presenceMsg) error {
	*m = presenceMsg{}
	if len(p) < 1 {
		return errMalformed
	}
	m.snapshot, m.lists = p[0]&presSnapshot != 0, p[0]&presLists != 0
	p = p[1:]
	c, n := binary.Uvarint(p)
	if n <= 0 {
		return errMalformed
	}
	if c > maxPresenceCount {
		return errInvalid
	}
	m.count = int(c)
	p = p[n:]
	if !m.lists {
		return nil
	}
	var err error
	if m.joined, p, err = parseKeys(p); err != nil {
		return err
	}
	if !m.snapshot {
		if m.left, _, err = parseKeys(p); err != nil {
			return err
		}
	}
	return nil
}

func parseKeys(p []byte) ([]string, []byte, error) {
	k, n := binary.Uvarint(p)
	if n <= 0 {
		return nil, nil, errMalformed
	}
	p = p[n:]
	if k > uint64(len(p)/2) { // each key takes 2 bytes at least
		return nil, nil, errMalformed
	}
	var keys []string
	if k > 0 {
		keys = make([]string, 0, k)
	}
	for i := uint64(0); i < k; i++ {
		l, n := binary.Uvarint(p)
		if n <= 0 {
			return nil, nil, errMalformed
		}
		p = p[n:]
		if l == 0 || l > maxFrom {
			return nil, nil, errInvalid
		}
		if l > uint64(len(p)) {
			return nil, nil, errMalformed
		}
		keys = append(keys, string(p[:l]))
		p = p[l:]
	}
	return keys, p, nil
}

// appendLease encodes a lease text.
func appendLease(dst []byte, lease time.Duration) []byte {
	return binary.AppendUvarint(dst, uint64(lease.Milliseconds()))
}

// parseLease decodes a lease text.
func parseLease(p []byte) (time.Duration, error) {
	ms, n := binary.Uvarint(p)
	if n <= 0 {
		return 0, errMalformed
	}
	d := time.Duration(ms) * time.Millisecond
	if ms > uint64(maxLease/time.Millisecond) || d < minLease {
		return 0, errInvalid
	}
	return d, nil
}
