package cluster

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
)

// Bus authentication. With keys, every message a box publishes carries a
// MAC (flagMAC): HMAC-SHA256 over the subject, a NUL and the message,
// truncated to macSize bytes, appended to it. A box with keys drops, and
// counts, any message without a MAC valid under one of them (unsigned,
// bad_mac): a NATS client without the key can neither kick a key, pose
// as a box, nor broadcast. During a rotation a box holds two keys: the
// first signs, both verify.

// macSize is the length of the MAC trailer.
const macSize = 16

// MinBusKey is the shortest bus key accepted, in bytes.
const MinBusKey = 32

// ParseBusKeys reads a bus key file: one or two keys, one a line (blank
// lines and # comments skipped), each at least MinBusKey bytes; the first
// signs, both verify.
func ParseBusKeys(data []byte) ([][]byte, error) {
	var keys [][]byte
	for _, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if len(line) < MinBusKey {
			return nil, fmt.Errorf("a bus key is %d bytes, shorter than %d", len(line), MinBusKey)
		}
		keys = append(keys, bytes.Clone(line))
	}
	switch {
	case len(keys) == 0:
		return nil, errors.New("no bus key")
	case len(keys) > 2:
		return nil, fmt.Errorf("%d bus keys: one, or two during a rotation", len(keys))
	}
	return keys, nil
}

// busKeys holds the MACs of one key set. Its hashes are used by the
// bridge goroutine only.
type busKeys struct {
	macs []hash.Hash // [0] signs
	sum  [sha256.Size]byte
	buf  []byte // the subject and its NUL, written at once
}

func newBusKeys(keys [][]byte) (*busKeys, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	if len(keys) > 2 {
		return nil, fmt.Errorf("cluster: %d bus keys: one, or two during a rotation", len(keys))
	}
	k := &busKeys{}
	for _, key := range keys {
		if len(key) < MinBusKey {
			return nil, fmt.Errorf("cluster: a bus key is shorter than %d bytes", MinBusKey)
		}
		k.macs = append(k.macs, hmac.New(sha256.New, key))
	}
	return k, nil
}

func (k *busKeys) mac(h hash.Hash, subject string, msg []byte) []byte {
	h.Reset()
	k.buf = append(append(k.buf[:0], subject...), 0)
	h.Write(k.buf)
	h.Write(msg)
	return h.Sum(k.sum[:0])[:macSize]
}

// sign marks data as signed and appends its MAC.
func (k *busKeys) sign(subject string, data []byte) []byte {
	data[2] |= flagMAC
	return append(data, k.mac(k.macs[0], subject, data)...)
}

// verify reports why p, received on subject, is refused (a drop reason),
// or -1.
func (k *busKeys) verify(subject string, p []byte) int {
	if len(p) < 4+macSize || p[2]&flagMAC == 0 {
		return DropUnsigned
	}
	msg, tag := p[:len(p)-macSize], p[len(p)-macSize:]
	for _, h := range k.macs {
		if hmac.Equal(k.mac(h, subject, msg), tag) {
			return -1
		}
	}
	return DropBadMAC
}

// SetBusKeys replaces the bus keys (a reload): keys as ParseBusKeys
// returns them; none turns authentication off.
func (b *Bridge) SetBusKeys(keys [][]byte) error {
	k, err := newBusKeys(keys)
	if err != nil {
		return err
	}
	b.busKeys.Store(k)
	return nil
}

// Authenticated reports whether the bridge signs and verifies bus
// messages.
func (b *Bridge) Authenticated() bool { return b.busKeys.Load() != nil }
