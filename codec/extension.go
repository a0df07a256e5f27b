package codec

import (
	"bytes"

	"github.com/gobwas/httphead"
)

// permessage-deflate negotiation (RFC 7692 section 7.1).
//
// wsd's answer always carries server_no_context_takeover: every broadcast
// is compressed once, from an empty window, and the same bytes go to every
// deflate peer. On the client side wsd either tells the client not to keep
// its context (client_no_context_takeover: nothing to hold between
// messages) or lets it keep a window of at most 2^ClientWindowBits bytes,
// which the connection then holds as a plain dictionary (see inflate).
//
// gobwas/ws's own negotiation (wsflate.Extension) is not used because it
// answers every accepted offer with the one fixed set of Parameters it was
// given, and declines what wsd accepts:
//   - it declines an offer whose client_max_window_bits is absent or below
//     the configured one, where wsd answers min(ClientWindowBits, the
//     offer), or client_no_context_takeover to a client that offered no
//     client_max_window_bits;
//   - it declines an offer whose server_max_window_bits is above the
//     configured one (any, if none is), where wsd accepts every value: it
//     compresses from an empty window, and a message longer than the
//     window goes out uncompressed;
//   - a malformed offer (a repeated parameter, a bad window size) is an
//     error that fails the whole upgrade, where wsd declines that offer
//     and tries the next;
//   - it keeps the first accepted offer in its own state across calls,
//     where wsd negotiates again over every Sec-WebSocket-Extensions line
//     seen so far (they form one list).

// DeflateConfig is what a server is willing to negotiate.
type DeflateConfig struct {
	// Enabled turns permessage-deflate negotiation on.
	Enabled bool
	// ClientWindowBits bounds the LZ77 window a client may keep across
	// messages (client context takeover), and so the dictionary the server
	// holds per connection: 2^ClientWindowBits bytes.
	//
	//   - 0 always answers client_no_context_takeover: a client's messages
	//     are compressed independently and the server holds nothing between
	//     them.
	//   - 9..14: a client that offered client_max_window_bits is answered
	//     client_max_window_bits=min(this, its value); one that did not is
	//     answered client_no_context_takeover (its window could not be bounded).
	//   - 15: context takeover with the full 32 KiB window for every client.
	//
	// 8 is not accepted: zlib (every browser) cannot compress raw DEFLATE
	// with a 256-byte window.
	ClientWindowBits int
}

// Valid reports whether c's ClientWindowBits is usable.
func (c DeflateConfig) Valid() bool {
	return c.ClientWindowBits == 0 || (c.ClientWindowBits >= 9 && c.ClientWindowBits <= 15)
}

// DeflateParams are the parameters of an accepted permessage-deflate offer.
// The zero value means the extension was not negotiated.
type DeflateParams struct {
	Enabled bool
	// ServerWindowBits is the client's server_max_window_bits (15 if it set
	// none). wsd compresses every message from an empty window, so its
	// matches never reach further back than the message is long: a
	// compressed frame honours the limit whenever the message is at most
	// 2^ServerWindowBits bytes; longer ones must go out uncompressed.
	ServerWindowBits uint8
	// ClientWindowBits is the window the client's compressor keeps across
	// messages; 0 when it takes over no context (client_no_context_takeover
	// was answered), so every message inflates from an empty window.
	ClientWindowBits uint8

	// What the answer says, beyond permessage-deflate; server_no_context_takeover.
	answerServerBits bool  // server_max_window_bits=ServerWindowBits
	answerClientBits uint8 // client_max_window_bits=answerClientBits, if non-zero
}

// ServerFits reports whether a compressed message of n bytes (before
// compression) respects the peer's server_max_window_bits.
func (p DeflateParams) ServerFits(n int) bool {
	return p.ServerWindowBits >= 15 || n <= 1<<p.ServerWindowBits
}

// String returns the Sec-WebSocket-Extensions value answering the accepted
// offer, such as "permessage-deflate;server_no_context_takeover;
// client_no_context_takeover" (gobwas/ws writes no spaces); "" if none.
func (p DeflateParams) String() string {
	if !p.Enabled {
		return ""
	}
	var b bytes.Buffer
	_, _ = httphead.WriteOptions(&b, []httphead.Option{p.option()})
	return b.String()
}

// option is the answer as gobwas/ws writes it; every slice is static.
func (p DeflateParams) option() httphead.Option {
	o := httphead.Option{Name: bExtName}
	o.Parameters.Set(bServerNoContext, nil)
	if p.answerServerBits {
		o.Parameters.Set(bServerBits, bWindowBits[p.ServerWindowBits])
	}
	switch {
	case p.ClientWindowBits == 0:
		o.Parameters.Set(bClientNoContext, nil)
	case p.answerClientBits != 0:
		o.Parameters.Set(bClientBits, bWindowBits[p.answerClientBits])
	}
	return o
}

var (
	bExtName         = []byte(extName)
	bServerNoContext = []byte(paramServerNoContext)
	bClientNoContext = []byte(paramClientNoContext)
	bServerBits      = []byte(paramServerBits)
	bClientBits      = []byte(paramClientBits)
	bWindowBits      = func() (b [16][]byte) {
		for i := 8; i < 16; i++ {
			b[i] = []byte(windowBitsText[i])
		}
		return b
	}()
)

const (
	extName              = "permessage-deflate"
	paramServerNoContext = "server_no_context_takeover"
	paramClientNoContext = "client_no_context_takeover"
	paramServerBits      = "server_max_window_bits"
	paramClientBits      = "client_max_window_bits"
)

var windowBitsText = [16]string{8: "8", 9: "9", 10: "10", 11: "11", 12: "12", 13: "13", 14: "14", 15: "15"}

// NegotiateDeflate picks the first acceptable permessage-deflate offer in
// the Sec-WebSocket-Extensions field value list (several header lines are
// one list joined with commas, RFC 7230 3.2.2) and returns its answer.
//
// An offer is declined — the next one is considered — when it has a
// parameter RFC 7692 does not define, the same parameter twice, a value
// where none is allowed, no value where one is required, or a window size
// other than 8..15 (quoted values are unquoted first). Any offer that
// passes is acceptable to wsd, whatever its window sizes (see
// DeflateParams). A field that does not parse as an extension list at all
// declines every offer: where one element ends is then anyone's guess.
// Declining never fails the handshake; the connection just goes uncompressed.
func NegotiateDeflate(field []byte, cfg DeflateConfig) (p DeflateParams, ok bool) {
	if !cfg.Enabled || !cfg.Valid() {
		return p, false
	}
	sc := extScanner{s: field}
	for {
		sc.ows()
		if sc.end() {
			break
		}
		if sc.s[sc.i] == ',' { // an empty list element
			sc.i++
			continue
		}
		name := sc.token()
		if name == nil {
			return DeflateParams{}, false
		}
		var o offer
		isDeflate := asciiEqualFold(name, extName)
		for {
			sc.ows()
			if sc.end() || sc.s[sc.i] == ',' {
				break
			}
			if sc.s[sc.i] != ';' {
				return DeflateParams{}, false
			}
			sc.i++
			sc.ows()
			pname := sc.token()
			if pname == nil {
				return DeflateParams{}, false
			}
			sc.ows()
			var (
				val      []byte
				hasValue bool
			)
			if !sc.end() && sc.s[sc.i] == '=' {
				sc.i++
				sc.ows()
				hasValue = true
				if val = sc.token(); val == nil {
					var good bool
					if val, good = sc.quoted(); !good {
						return DeflateParams{}, false
					}
				}
			}
			if isDeflate {
				o.param(pname, val, hasValue)
			}
		}
		if isDeflate && !ok && !o.bad {
			p, ok = o.answer(cfg), true
		}
	}
	return p, ok
}

// offer collects one permessage-deflate offer's parameters.
type offer struct {
	seen              uint8 // bit per parameter, to catch duplicates
	bad               bool
	serverNoContext   bool
	clientNoContext   bool
	serverBits        uint8 // 0: not offered
	clientBits        uint8 // 0: not offered or offered without a value
	clientBitsOffered bool
}

func (o *offer) param(name, val []byte, hasValue bool) {
	var bit uint8
	switch {
	case asciiEqualFold(name, paramServerNoContext):
		bit = 1
		o.serverNoContext = true
		o.bad = o.bad || hasValue
	case asciiEqualFold(name, paramClientNoContext):
		bit = 2
		o.clientNoContext = true
		o.bad = o.bad || hasValue
	case asciiEqualFold(name, paramServerBits):
		bit = 4
		b := windowBits(val)
		o.bad = o.bad || !hasValue || b == 0
		o.serverBits = b
	case asciiEqualFold(name, paramClientBits):
		bit = 8
		o.clientBitsOffered = true
		if hasValue {
			b := windowBits(val)
			o.bad = o.bad || b == 0
			o.clientBits = b
		}
	default:
		o.bad = true
		return
	}
	o.bad = o.bad || o.seen&bit != 0
	o.seen |= bit
}

func (o *offer) answer(cfg DeflateConfig) DeflateParams {
	p := DeflateParams{Enabled: true, ServerWindowBits: 15}
	if o.serverBits != 0 {
		// An accepted server_max_window_bits is answered with the same value.
		p.ServerWindowBits = o.serverBits
		p.answerServerBits = true
	}
	want := uint8(cfg.ClientWindowBits)
	switch {
	case want == 0 || o.clientNoContext:
		// ClientWindowBits 0: client_no_context_takeover is answered.
	case o.clientBitsOffered:
		limit := uint8(15)
		if o.clientBits != 0 {
			limit = o.clientBits
		}
		p.ClientWindowBits = min(want, limit)
		p.answerClientBits = p.ClientWindowBits
	case want == 15:
		p.ClientWindowBits = 15
	}
	return p
}

// windowBits parses a window size: "8" to "15", nothing else (no sign, no
// leading zero); 0 if val is not one.
func windowBits(val []byte) uint8 {
	switch len(val) {
	case 1:
		if val[0] == '8' || val[0] == '9' {
			return val[0] - '0'
		}
	case 2:
		if val[0] == '1' && val[1] >= '0' && val[1] <= '5' {
			return 10 + val[1] - '0'
		}
	}
	return 0
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// extScanner reads the RFC 7230 list syntax of Sec-WebSocket-Extensions.
type extScanner struct {
	s   []byte
	i   int
	buf [16]byte // an unquoted value; longer ones are no window size anyway
}

func (sc *extScanner) end() bool { return sc.i >= len(sc.s) }

// ows skips optional whitespace.
func (sc *extScanner) ows() {
	for sc.i < len(sc.s) && (sc.s[sc.i] == ' ' || sc.s[sc.i] == '\t') {
		sc.i++
	}
}

// token reads 1*tchar; nil if there is none.
func (sc *extScanner) token() []byte {
	start := sc.i
	for sc.i < len(sc.s) && isTchar(sc.s[sc.i]) {
		sc.i++
	}
	if sc.i == start {
		return nil
	}
	return sc.s[start:sc.i]
}

// quoted reads a quoted-string and returns its unescaped content, cut to
// 16 bytes: no longer value is meaningful here (window sizes have 1 or 2).
func (sc *extScanner) quoted() ([]byte, bool) {
	if sc.end() || sc.s[sc.i] != '"' {
		return nil, false
	}
	sc.i++
	out := sc.buf[:0]
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		sc.i++
		switch {
		case c == '"':
			return out, true
		case c == '\\':
			if sc.end() {
				return nil, false
			}
			c = sc.s[sc.i]
			sc.i++
			if !isQuotedPairChar(c) {
				return nil, false
			}
		case !isQdtext(c):
			return nil, false
		}
		if len(out) < len(sc.buf) {
			out = append(out, c)
		}
	}
	return nil, false // unterminated
}

// isTchar: RFC 7230 3.2.6 token characters.
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// isQdtext: HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text.
func isQdtext(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E) || c >= 0x80
}

// isQuotedPairChar: HTAB / SP / VCHAR / obs-text.
func isQuotedPairChar(c byte) bool {
	return c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7E) || c >= 0x80
}
