package session

import (
	"net/netip"
	"sync"

	"github.com/wsd-chat/wsd/codec"
)

// connInput is a connection's input in progress: the frame decoder with a
// message, frame or header arriving in pieces, a request head not yet
// complete, TLS ciphertext not yet turned into plaintext. Between messages
// there is none (Conn.in is nil): an idle connection does not pay for it.
// A permessage-deflate connection whose client keeps its compression
// context keeps one, since the stream holds that context's window.
type connInput struct {
	stream     codec.Stream
	hs         []byte // request bytes while the head is incomplete
	tlsPending int    // ciphertext fed since plaintext last came out
}

var connInputs = sync.Pool{New: func() any { return new(connInput) }}

// input1 returns c's input state, taken from the pool if c has none.
// OnReady only.
func (c *Conn) input1() *connInput {
	if c.in == nil {
		c.in = connInputs.Get().(*connInput)
		c.in.stream.SetDeflate(c.deflate)
	}
	return c.in
}

// idleInput gives c's input state back once it holds nothing: nothing
// partial, no request head, no deflate context. OnReady only.
func (c *Conn) idleInput() {
	in := c.in
	if in == nil || in.hs != nil || in.tlsPending > 0 {
		return
	}
	if !c.broken && (in.stream.Partial() || (c.deflate.Enabled && c.deflate.ClientWindowBits > 0)) {
		return
	}
	c.releaseInput()
}

// releaseInput gives c's input state back, whatever it holds. The caller
// charges the inbound budget for what went (chargeInput).
func (c *Conn) releaseInput() {
	in := c.in
	if in == nil {
		return
	}
	in.stream.Release()
	*in = connInput{}
	connInputs.Put(in)
	c.in = nil
}

// held is what c's input holds of the inbound budget.
func (in *connInput) held() int {
	if in == nil {
		return 0
	}
	return in.stream.Held() + cap(in.hs)
}

// addr16 is a source address in 16 bytes rather than netip.Addr's 24 (no
// zone: per-address limits count a link-local peer under its address). An
// IPv4 address is kept IPv4-mapped, and no address (a peer that is not on
// IP) as the unspecified one, which no TCP peer can have.
type addr16 [16]byte

func toAddr16(a netip.Addr) addr16 {
	if !a.IsValid() {
		return addr16{}
	}
	return a.As16()
}

func (a addr16) addr() netip.Addr {
	b := netip.AddrFrom16(a)
	switch {
	case b.Is4In6():
		return b.Unmap()
	case b.IsUnspecified():
		return netip.Addr{}
	}
	return b
}
