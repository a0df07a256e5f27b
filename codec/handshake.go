package codec

import (
	"bytes"
	"io"
	"net/http"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
)

// Handshake limits.
const (
	// maxKeyLen caps specialKey: it indexes the session table and shows in logs.
	maxKeyLen = 256
	// MaxRoomLen caps a room name.
	MaxRoomLen = 64
)

// HandshakeEnd returns the length of the request head at the start of p,
// through the blank line that ends it, or -1 if p does not hold it all yet.
// from is where the previous, unsuccessful search stopped scanning (0 on
// the first call); the search resumes a few bytes before it.
func HandshakeEnd(p []byte, from int) int {
	if from -= 3; from < 0 {
		from = 0
	}
	if i := bytes.Index(p[from:], crlfcrlf); i >= 0 {
		return from + i + len(crlfcrlf)
	}
	return -1
}

var crlfcrlf = []byte("\r\n\r\n")

// Request is what wsd takes from an upgrade request. Its byte slices point
// into the Upgrader's scratch space and are valid until its next Upgrade.
type Request struct {
	Key           []byte // specialKey, unescaped
	Gzip          bool   // support_gzip=1
	Room          []byte // room, unescaped; nil for the global room (room absent or empty)
	Token         []byte // token query parameter, nil if none (auth falls back to the Authorization header)
	Origin        []byte // Origin header, if any
	Authorization []byte // raw Authorization header, if any
	Protocol      string // subprotocol selected from Sec-WebSocket-Protocol, "" if none
	// Deflate is the accepted permessage-deflate offer; zero if none was
	// (or the Upgrader's Deflate is off).
	Deflate DeflateParams

	// Chat protocol v1 (docs/protocol.md): V1 is set when the client
	// selected the V1Protocol subprotocol or sent proto=v1. The position
	// parameters are read only then (a seed client's query means what it
	// always did): since and epoch together, or history, for the first room.
	V1         bool
	HasSince   bool
	Since      uint64
	Epoch      []byte // nil unless HasSince
	HasHistory bool
	History    int

	// Rooms is not read from the request: an Authorize hook sets it to the
	// rooms the connection's credentials allow (a JWT rooms claim), which
	// limits the rooms a v1 connection may join later. nil: any room.
	Rooms []string
}

// V1Protocol is the subprotocol a chat protocol v1 client offers.
const V1Protocol = "wsd.v1"

// Bounds of the v1 query parameters; the Hub applies its own, tighter,
// history limit after the upgrade.
const (
	// MaxEpochLen is the longest epoch a query may carry (chat.MaxEpochLen).
	MaxEpochLen = 32
	// MaxHistory is the largest history a query may ask for.
	MaxHistory = 1 << 20
)

// Handshake rejections wsd adds to gobwas/ws's own. They are values so a
// rejected handshake allocates nothing.
var (
	ErrNotFound     = Reject(http.StatusNotFound, "not found: wsd serves WebSocket upgrades on /")
	ErrMissingKey   = Reject(http.StatusBadRequest, "missing specialKey")
	ErrKeyTooLong   = Reject(http.StatusBadRequest, "specialKey longer than 256 bytes")
	ErrBadQuery     = Reject(http.StatusBadRequest, "malformed query string")
	ErrBadRoom      = Reject(http.StatusBadRequest, "bad room name: 1-64 of A-Z a-z 0-9 _ - . :")
	ErrHeadTooLarge = Reject(http.StatusRequestHeaderFieldsTooLarge, "request head too large")
	// A header that names one thing may appear once: with two, the Origin
	// policy, a proxy and wsd could each read a different one (RFC 9110
	// section 5.3; RFC 6455 section 4.2.1 asks for one of each).
	ErrDupOrigin = Reject(http.StatusBadRequest, "duplicate Origin header")
	ErrDupHost   = Reject(http.StatusBadRequest, "duplicate Host header")
	ErrDupWSKey  = Reject(http.StatusBadRequest, "duplicate Sec-WebSocket-Key header")

	// The chat protocol v1 parameters, checked only for a v1 request.
	ErrBadProto   = Reject(http.StatusBadRequest, "bad proto: the one protocol is v1")
	ErrBadSince   = Reject(http.StatusBadRequest, "bad since: a non-negative integer below 2^64, with epoch")
	ErrBadEpoch   = Reject(http.StatusBadRequest, "bad epoch: 1-32 bytes, with since")
	ErrBadHistory = Reject(http.StatusBadRequest, "bad history: a non-negative integer, without since")
)

// Upgrader runs the zero-copy WebSocket upgrade on a complete request head
// and extracts the chat parameters. It is not safe for concurrent use; keep
// one per worker or take them from a pool.
type Upgrader struct {
	// Admit is asked once the path is known to be right; a non-nil error
	// (a Reject refusal such as a 503 at capacity) rejects the upgrade with its status, or
	// with 503 if it was not made by Reject.
	Admit func() error
	// Protocols are the subprotocols wsd speaks; the first of the client's
	// Sec-WebSocket-Protocol offer that is listed is selected (RFC 6455
	// section 4.2.2). Set it before the first Upgrade.
	Protocols []string
	// Deflate is the permessage-deflate wsd negotiates; zero: none.
	Deflate DeflateConfig

	up  ws.Upgrader
	req Request
	rw  headRW
	// scratch space the Request slices point into
	key, room, token, origin, auth []byte
	// the v1 parameters' raw values, checked once the request is known to
	// be v1 (after gobwas/ws returns); nil when absent. They are copies
	// (into the *Buf scratch): the URI they come from is in gobwas/ws's
	// pooled read buffer, which another connection's handshake reuses as
	// soon as Upgrade returns.
	proto, since, epoch, history             []byte
	protoBuf, sinceBuf, epochBuf, historyBuf []byte
	ep                                       []byte // the unescaped epoch
	// seen records which query parameters were taken: the first of a
	// duplicated parameter wins, as with net/http's FormValue.
	seen uint8
	// hdrs records which single-valued headers were seen (hdrOrigin,
	// hdrHost), to refuse a second one.
	hdrs uint8
	// hooked counts the header lines gobwas/ws handed to a hook.
	hooked int
	head   []byte // the request head being upgraded, for onBeforeUpgrade
	ext    []byte // Sec-WebSocket-Extensions lines, joined
	exts   [1]httphead.Option
}

// NewUpgrader returns an Upgrader whose gobwas/ws hooks write into it.
func NewUpgrader() *Upgrader {
	u := &Upgrader{}
	u.up = ws.Upgrader{
		ReadBufferSize:  MaxHeadSize,
		WriteBufferSize: 512,
		OnRequest:       u.onRequest,
		OnHeader:        u.onHeader,
		OnHost:          u.onHost,
		OnBeforeUpgrade: u.onBeforeUpgrade,
		ExtensionCustom: u.onExtensions,
	}
	return u
}

// MaxHeadSize is the largest request head wsd reads; a longer one gets 431.
const MaxHeadSize = 8 << 10

// Upgrade parses head (a complete request head, see HandshakeEnd) and
// appends the HTTP response to out: 101 with the accept key, or the error
// status with a one-line reason. A nil error means the connection is a
// WebSocket now and req describes it.
func (u *Upgrader) Upgrade(head, out []byte) (req *Request, resp []byte, err error) {
	u.req = Request{}
	u.ext = u.ext[:0]
	u.rw = headRW{r: head, out: out}
	u.seen = 0
	u.hdrs = 0
	u.hooked = 0
	u.head = head
	if len(u.Protocols) > 0 && u.up.Protocol == nil {
		u.up.Protocol = u.knowsProtocol
	}
	u.proto, u.since, u.epoch, u.history = nil, nil, nil, nil
	hs, err := u.up.Upgrade(&u.rw)
	u.req.Protocol = hs.Protocol
	resp = u.rw.out
	u.rw = headRW{}
	u.head = nil
	if err == nil {
		if err = u.v1Params(); err != nil {
			// The 101 is written already: answer the refusal instead.
			resp = AppendRejection(resp[:len(out)], err)
		}
	}
	u.proto, u.since, u.epoch, u.history = nil, nil, nil, nil
	if err != nil {
		if len(resp) == len(out) {
			// gobwas/ws answers nothing when the request line itself does
			// not parse; every refusal gets a status line here.
			resp = AppendRejection(resp, err)
		}
		return nil, resp, err
	}
	return &u.req, resp, nil
}

func (u *Upgrader) onRequest(uri []byte) error {
	path, query := uri, []byte(nil)
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		path, query = uri[:i], uri[i+1:]
	}
	if len(path) != 1 || path[0] != '/' {
		return ErrNotFound
	}
	if u.Admit != nil {
		if err := u.Admit(); err != nil {
			if _, ok := err.(*ws.ConnectionRejectedError); !ok {
				// gobwas/ws would answer a plain error with 500 while
				// StatusOf says 400: refuse it as the 503 it means.
				err = Reject(http.StatusServiceUnavailable, err.Error())
			}
			return err
		}
	}
	var err error
	for len(query) > 0 {
		var pair []byte
		if i := bytes.IndexByte(query, '&'); i >= 0 {
			pair, query = query[:i], query[i+1:]
		} else {
			pair, query = query, nil
		}
		name, value := pair, []byte(nil)
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			name, value = pair[:i], pair[i+1:]
		}
		bit := paramBit(name)
		if u.seen&bit != 0 {
			continue // a repeated parameter: the first one counts
		}
		u.seen |= bit
		switch string(name) {
		case "specialKey":
			if u.key, err = unescape(u.key[:0], value); err != nil {
				return err
			}
			u.req.Key = u.key
		case "support_gzip":
			u.req.Gzip = string(value) == "1"
		case "room":
			if u.room, err = unescape(u.room[:0], value); err != nil {
				return err
			}
			// "room=" is the global room, as if room were absent. The
			// scratch slice is non-nil after a first use, so emptiness,
			// not nil-ness, decides: a pooled Upgrader answers the same
			// as a fresh one.
			u.req.Room = nonEmpty(u.room)
		case "token":
			if u.token, err = unescape(u.token[:0], value); err != nil {
				return err
			}
			u.req.Token = nonEmpty(u.token)
		case "proto":
			u.proto = keep(&u.protoBuf, value)
		case "since":
			u.since = keep(&u.sinceBuf, value)
		case "epoch":
			u.epoch = keep(&u.epochBuf, value)
		case "history":
			u.history = keep(&u.historyBuf, value)
		}
	}
	switch {
	case len(u.req.Key) == 0:
		return ErrMissingKey
	case len(u.req.Key) > maxKeyLen:
		return ErrKeyTooLong
	case u.req.Room != nil && !ValidRoom(u.req.Room):
		return ErrBadRoom
	}
	return nil
}

// paramBit names the query parameters wsd reads, for Upgrader.seen.
func paramBit(name []byte) uint8 {
	switch string(name) {
	case "specialKey":
		return 1
	case "support_gzip":
		return 2
	case "room":
		return 4
	case "token":
		return 8
	case "proto":
		return 16
	case "since":
		return 32
	case "epoch":
		return 64
	case "history":
		return 128
	}
	return 0
}

// v1Params decides whether the request is v1 and, if so, reads its
// position parameters strictly: since and history plain digits (no sign,
// no escape), since and epoch together, history alone; the epoch 1-32
// bytes once unescaped, as a join command's.
func (u *Upgrader) v1Params() error {
	switch {
	case u.proto != nil && string(u.proto) != "v1":
		return ErrBadProto
	case u.proto == nil && u.req.Protocol != V1Protocol:
		return nil
	}
	u.req.V1 = true
	if (u.since != nil) != (u.epoch != nil) {
		if u.since == nil {
			return ErrBadEpoch
		}
		return ErrBadSince
	}
	if u.since != nil {
		if u.history != nil {
			return ErrBadHistory
		}
		n, ok := parseUint(u.since, ^uint64(0))
		if !ok {
			return ErrBadSince
		}
		var err error
		if u.ep, err = unescape(u.ep[:0], u.epoch); err != nil || len(u.ep) == 0 || len(u.ep) > MaxEpochLen {
			return ErrBadEpoch
		}
		u.req.HasSince, u.req.Since, u.req.Epoch = true, n, u.ep
	}
	if u.history != nil {
		n, ok := parseUint(u.history, MaxHistory)
		if !ok {
			return ErrBadHistory
		}
		u.req.HasHistory, u.req.History = true, int(n)
	}
	return nil
}

// keep copies value into *buf, reusing it, and returns the copy: never nil,
// so that a present but empty parameter stays present.
func keep(buf *[]byte, value []byte) []byte {
	b := append((*buf)[:0], value...)
	if b == nil {
		b = []byte{}
	}
	*buf = b
	return b
}

// parseUint reads 1-20 decimal digits with a value at most limit.
func parseUint(p []byte, limit uint64) (uint64, bool) {
	if len(p) == 0 || len(p) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (limit-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func (u *Upgrader) knowsProtocol(p []byte) bool {
	for _, known := range u.Protocols {
		if string(p) == known {
			return true
		}
	}
	return false
}

// Origin returns the Origin header of the last request, also when it was
// refused; valid until the next Upgrade.
func (u *Upgrader) Origin() []byte { return u.req.Origin }

// Bits of Upgrader.hdrs.
const (
	hdrOrigin = 1 << iota
	hdrHost
)

// gobwas/ws takes any number of Host, Origin and Sec-WebSocket-Key lines
// without complaint: it calls OnHost for each Host line, OnHeader for each
// Origin line, and lets the last Sec-WebSocket-Key line win, calling no
// hook for it. So Host and Origin are counted in their hooks, and the key
// lines in onBeforeUpgrade, which runs only once everything else passed.

func (u *Upgrader) onHost([]byte) error {
	u.hooked++
	if u.hdrs&hdrHost != 0 {
		return ErrDupHost
	}
	u.hdrs |= hdrHost
	return nil
}

// unhookedLines is how many header lines gobwas/ws reads without calling
// a hook of the Upgrader's in a request with none repeated: Upgrade,
// Connection, Sec-WebSocket-Version and Sec-WebSocket-Key, each required,
// so present at least once by the time onBeforeUpgrade runs. The other
// unhooked kind, Sec-WebSocket-Protocol, is optional: a request with one
// takes the slow path.
const unhookedLines = 4

func (u *Upgrader) onBeforeUpgrade() (ws.HandshakeHeader, error) {
	// Every line of the head but the request line and the blank one is a
	// header line gobwas/ws parsed; each went to a hook or is one of the
	// unhooked kinds. If only the four required unhooked lines are left,
	// each is there once (the fast path: no scan); else count the keys.
	lines := bytes.Count(u.head, []byte("\n")) - 2
	if lines-u.hooked > unhookedLines && secKeyLines(u.head) > 1 {
		return nil, ErrDupWSKey
	}
	return nil, nil
}

// secKeyLines counts the Sec-WebSocket-Key lines of head (the name in any
// case), splitting and trimming lines as gobwas/ws does: at '\n', without
// a trailing '\r', the name trimmed of spaces and tabs. A line is dropped
// at its first byte unless that is an 's'.
func secKeyLines(head []byte) int {
	const name = "sec-websocket-key"
	n := 0
	i := bytes.IndexByte(head, '\n') // past the request line
	for i >= 0 {
		head = head[i+1:]
		i = bytes.IndexByte(head, '\n')
		line := head
		if i >= 0 {
			line = head[:i]
		}
		j := 0
		for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
			j++
		}
		if j == len(line) || line[j] == '\r' && j == len(line)-1 {
			if j == 0 {
				break // the blank line that ends the head
			}
			continue
		}
		if line[j]|0x20 != 's' || len(line)-j <= len(name) || !bytes.EqualFold(line[j:j+len(name)], []byte(name)) {
			continue
		}
		// The name is followed by blanks and the colon, or it is another name.
		for j += len(name); j < len(line) && (line[j] == ' ' || line[j] == '\t'); j++ {
		}
		if j < len(line) && line[j] == ':' {
			n++
		}
	}
	return n
}

func (u *Upgrader) onHeader(key, value []byte) error {
	u.hooked++
	switch {
	case bytes.EqualFold(key, []byte("Origin")):
		if u.hdrs&hdrOrigin != 0 {
			return ErrDupOrigin
		}
		u.hdrs |= hdrOrigin
		u.origin = append(u.origin[:0], value...)
		u.req.Origin = u.origin
	case bytes.EqualFold(key, []byte("Authorization")):
		u.auth = append(u.auth[:0], value...)
		u.req.Authorization = u.auth
	}
	return nil
}

// onExtensions sees each Sec-WebSocket-Extensions line. The lines form one
// list, so the offers are negotiated again over all lines seen so far; the
// answer to the last call is the one gobwas/ws writes. It never refuses the
// handshake: an offer wsd cannot accept is declined.
func (u *Upgrader) onExtensions(line []byte, _ []httphead.Option) ([]httphead.Option, bool) {
	u.hooked++
	if !u.Deflate.Enabled {
		return nil, true
	}
	if len(u.ext) > 0 {
		u.ext = append(u.ext, ',')
	}
	u.ext = append(u.ext, line...)
	p, ok := NegotiateDeflate(u.ext, u.Deflate)
	u.req.Deflate = p
	if !ok {
		return nil, true
	}
	u.exts[0] = p.option()
	return u.exts[:1], true
}

const bearer = "Bearer "

// nonEmpty returns p, or nil when p is empty.
func nonEmpty(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	return p
}

// ValidRoom reports whether name is an acceptable room name.
func ValidRoom(name []byte) bool {
	if len(name) == 0 || len(name) > MaxRoomLen {
		return false
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '-', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// unescape appends the query-unescaped value ('+' is a space) to dst.
func unescape(dst, v []byte) ([]byte, error) {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '+':
			dst = append(dst, ' ')
		case '%':
			if i+2 >= len(v) {
				return dst, ErrBadQuery
			}
			hi, ok1 := unhex(v[i+1])
			lo, ok2 := unhex(v[i+2])
			if !ok1 || !ok2 {
				return dst, ErrBadQuery
			}
			dst = append(dst, hi<<4|lo)
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// headRW feeds gobwas/ws exactly the request head and collects its answer,
// so bytes the client pipelined after the head stay with the caller.
type headRW struct {
	r   []byte
	out []byte
}

func (h *headRW) Read(p []byte) (int, error) {
	if len(h.r) == 0 {
		return 0, io.EOF
	}
	n := copy(p, h.r)
	h.r = h.r[n:]
	return n, nil
}

func (h *headRW) Write(p []byte) (int, error) {
	h.out = append(h.out, p...)
	return len(p), nil
}
