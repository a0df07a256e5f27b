package session

import (
	"net/netip"
	"testing"
	"unsafe"

	"github.com/wsd-chat/wsd/codec"
	"github.com/wsd-chat/wsd/poller"
)

// TestSizeof pins the size of every struct a connection, or one more room
// of a v1 connection, costs (as the Go runtime's sizeof_test.go does), so
// that growth is a decision made in review: a seed connection's bytes are
// the headline figure (docs/performance.md, "Per-connection cost"). Conn
// must stay within the 288-byte allocation class, with no padding between
// its fields.
func TestSizeof(t *testing.T) {
	tests := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"Conn", unsafe.Sizeof(Conn{}), 288},                // every connection; a 288-byte object (was 320: tls and addrRate behind ext, byteRate and deliveries behind rates, msgStart shares timer with the deadline, shutWR, werr and fdClosed in wend)
		{"poller.Desc", unsafe.Sizeof(poller.Desc{}), 40},   // in Conn
		{"connInput", unsafe.Sizeof(connInput{}), 112},      // only while input arrives in pieces (pooled)
		{"codec.Stream", unsafe.Sizeof(codec.Stream{}), 80}, // in connInput
		{"connExt", unsafe.Sizeof(connExt{}), 16},           // wss or a per-address delivery limit only
		{"connRates", unsafe.Sizeof(connRates{}), 16},       // a sender, until its next ping or pong once idle
		{"v1Conn", unsafe.Sizeof(v1Conn{}), 48},             // a v1 connection, idle: its rooms (was 464 with the work below in it, 104 with its allowed and left rooms inline, its cold join and a pointer to its Conn)
		{"v1Work", unsafe.Sizeof(v1Work{}), 408},            // a v1 command or join in progress, pooled (its join's lag filter and hold flag: log.go, write.go; +16: who held the key when a first join began to wait; +8: a join waiting for the Log)
		{"subEntry", unsafe.Sizeof(subEntry{}), 24},         // a v1 connection's room, in the room's list (+8: lag, a cold join's filter)
		{"sub", unsafe.Sizeof(sub{}), 16},                   // the same room, in the connection's list (a pointer to it, not its name: 24 → 16)
		{"room", unsafe.Sizeof(room{}), 64},                 // a room with members in a shard (+16: its name, which its subs share)
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s is %d bytes, want %d: a change in per-connection memory must be deliberate", tt.name, tt.got, tt.want)
		}
	}
	if pad := unsafe.Sizeof(Conn{}) - connFieldBytes(); pad > 7 {
		t.Errorf("Conn has %d bytes of padding: order its fields by alignment", pad)
	}
}

// connFieldBytes is the sum of Conn's field sizes.
func connFieldBytes() uintptr {
	var c Conn
	return unsafe.Sizeof(c.Desc) + unsafe.Sizeof(c.hub) + unsafe.Sizeof(c.key) + unsafe.Sizeof(c.room) +
		unsafe.Sizeof(c.v1) + unsafe.Sizeof(c.ext) + unsafe.Sizeof(c.in) +
		unsafe.Sizeof(c.lastSeen) + unsafe.Sizeof(c.pingedAt) + unsafe.Sizeof(c.timer) +
		unsafe.Sizeof(c.heldAt) + unsafe.Sizeof(c.closeReq) + unsafe.Sizeof(c.rate) + unsafe.Sizeof(c.rates) +
		unsafe.Sizeof(c.inHeld) + unsafe.Sizeof(c.outq) + unsafe.Sizeof(c.queued) +
		unsafe.Sizeof(c.pong) + unsafe.Sizeof(c.pendQueued) + unsafe.Sizeof(c.pendHeld) + unsafe.Sizeof(c.progressAt) +
		unsafe.Sizeof(c.wmu) + unsafe.Sizeof(c.winFrames) + unsafe.Sizeof(c.winBytes) + unsafe.Sizeof(c.member) +
		unsafe.Sizeof(c.state) + unsafe.Sizeof(c.flags) + unsafe.Sizeof(c.ip) + unsafe.Sizeof(c.deflate) +
		unsafe.Sizeof(c.gzip) + unsafe.Sizeof(c.inTable) + unsafe.Sizeof(c.peerClosed) + unsafe.Sizeof(c.broken) +
		unsafe.Sizeof(c.headStarted) + unsafe.Sizeof(c.wclosed) + unsafe.Sizeof(c.wend)
}

// An address kept in 16 bytes comes back as it went in.
func TestAddr16(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "10.1.2.3", "::1", "2001:db8::7", "fe80::1"} {
		a := netip.MustParseAddr(s)
		if got := toAddr16(a).addr(); got != a {
			t.Errorf("%s came back as %s", a, got)
		}
	}
	if got := toAddr16(netip.Addr{}).addr(); got != (netip.Addr{}) {
		t.Errorf("no address came back as %s", got)
	}
}

// Setting or clearing one flag leaves the others as they are.
func TestConnFlags(t *testing.T) {
	var f connFlags
	if !f.trySet(flagPaused) || f.trySet(flagPaused) {
		t.Fatal("trySet of a clear flag must report true once")
	}
	f.set(flagKill)
	f.clear(flagPaused)
	if !f.has(flagKill) || f.has(flagPaused) || f.has(flagHeld) {
		t.Fatalf("flags %b", f.v.Load())
	}
}
