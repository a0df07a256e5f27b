// The message format the scenarios send and check, and gunzipping binary
// frames. A payload is printable ASCII (so valid UTF-8), padded to -size:
//
//	B<run:8 hex> <sender:4 hex> <seq:8 hex> <sent at:16 hex ns> <padding>
//
// The send time is nanoseconds on the client's monotonic clock since the
// scenario started; the padding depends on seq and position, so a
// corrupted or truncated payload is caught.

package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"io"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

const (
	hdrLen     = 41
	minPayload = 48
	warmSender = 0xffff // sender id of warm-up messages, never counted
)

// decoded is what a receiver learns from one payload.
type decoded struct {
	ts     int64
	seq    uint32
	sender uint16
	ok     bool
	// v1 only: the envelope's kind and seq (the room's, not the payload's).
	kind   byte
	envSeq uint64
}

const hexDigits = "0123456789abcdef"

func putHex(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = hexDigits[v&0xf]
		v >>= 4
	}
}

func getHex(src []byte) (uint64, bool) {
	var v uint64
	for _, c := range src {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// fillPayload writes a whole payload into dst (len(dst) ≥ minPayload).
func fillPayload(dst []byte, run uint32, sender uint16, seq uint32, ts int64) {
	dst[0] = 'B'
	putHex(dst[1:9], uint64(run))
	dst[9] = ' '
	putHex(dst[10:14], uint64(sender))
	dst[14] = ' '
	putHex(dst[15:23], uint64(seq))
	dst[23] = ' '
	putHex(dst[24:40], uint64(ts))
	dst[40] = ' '
	copy(dst[hdrLen:], padding(seq, len(dst)-hdrLen))
}

// padPattern is "abc…zabc…", long enough for any padding seen so far.
var padPattern atomic.Pointer[[]byte]

// padding returns the n padding bytes of message seq: byte i of the
// payload (i ≥ hdrLen) is 'a' + (i+seq) mod 26. Checking a payload is
// then one bytes.Equal.
func padding(seq uint32, n int) []byte {
	p := padPattern.Load()
	if p == nil || len(*p) < n+26 {
		b := make([]byte, max(n+26, 4096))
		for j := range b {
			b[j] = 'a' + byte(j%26)
		}
		padPattern.Store(&b)
		p = &b
	}
	off := int((hdrLen + uint64(seq)) % 26)
	return (*p)[off : off+n]
}

// parsePayload checks a payload of the given run and size completely.
func parsePayload(p []byte, run uint32, size int) decoded {
	if len(p) != size || p[0] != 'B' || p[9] != ' ' || p[14] != ' ' || p[23] != ' ' || p[40] != ' ' {
		return decoded{}
	}
	r, ok1 := getHex(p[1:9])
	snd, ok2 := getHex(p[10:14])
	seq, ok3 := getHex(p[15:23])
	ts, ok4 := getHex(p[24:40])
	if !ok1 || !ok2 || !ok3 || !ok4 || uint32(r) != run {
		return decoded{}
	}
	if !bytes.Equal(p[hdrLen:], padding(uint32(seq), len(p)-hdrLen)) {
		return decoded{}
	}
	return decoded{ts: int64(ts), seq: uint32(seq), sender: uint16(snd), ok: true}
}

// gunzipper is a pooled gzip reader with its output buffer: a decoder's
// state is tens of KiB, far too much to keep per connection.
type gunzipper struct {
	zr  gzip.Reader
	src bytes.Reader
	out []byte
}

var gunzippers = sync.Pool{New: func() any { return new(gunzipper) }}

var errTooLong = errors.New("gunzipped message longer than expected")

// gunzipCheck gunzips p (one gzip member, nothing after it) and parses the
// result.
func gunzipCheck(p []byte, run uint32, size int) decoded {
	g := gunzippers.Get().(*gunzipper)
	defer gunzippers.Put(g)
	out, err := g.gunzip(p, size)
	if err != nil {
		return decoded{}
	}
	return parsePayload(out, run, size)
}

func (g *gunzipper) gunzip(p []byte, limit int) ([]byte, error) {
	g.src.Reset(p)
	if err := g.zr.Reset(&g.src); err != nil {
		return nil, err
	}
	g.zr.Multistream(false)
	if cap(g.out) < limit+1 {
		g.out = make([]byte, limit+1)
	}
	out := g.out[:limit+1]
	n := 0
	for {
		m, err := g.zr.Read(out[n:])
		n += m
		switch {
		case err == io.EOF: // the trailer (CRC-32, length) checked out
			if g.src.Len() != 0 {
				return nil, errors.New("bytes after the gzip member")
			}
			return out[:n], nil
		case err != nil:
			return nil, err
		case n == len(out):
			return nil, errTooLong
		}
	}
}

// gzipMemo remembers what identical gzip frames decoded to. Every
// gzip-capable receiver gets the same bytes for a broadcast (from wsd and
// from the baseline), so the client gunzips each broadcast once instead of
// once per receiver: the client stays cheap and the server is what is
// measured. A hit is an exact byte-for-byte match of a frame that was
// gunzipped (CRC checked) and parsed, so every frame is still checked.
type gzipMemo struct {
	shards [64]memoShard
	max    int // entries per shard before it is emptied
}

type memoShard struct {
	mu sync.Mutex
	m  map[string]decoded
	_  [40]byte // keep shards on separate cache lines
}

const memoShardMax = 2048

func newGzipMemo() *gzipMemo {
	g := &gzipMemo{max: memoShardMax}
	for i := range g.shards {
		g.shards[i].m = make(map[string]decoded)
	}
	return g
}

// check decodes one gzip frame, through the memo when there is one.
func (g *gzipMemo) check(p []byte, run uint32, size int) decoded {
	if g == nil || len(p) < 18 {
		return gunzipCheck(p, run, size)
	}
	// The gzip trailer's CRC-32 is a ready-made hash.
	return g.lookup(p, crcOf(p), run, size, gunzipCheck)
}

// crcOf is a gzip member's trailer CRC-32 (len(p) ≥ 18).
func crcOf(p []byte) uint32 { return binary.LittleEndian.Uint32(p[len(p)-8:]) }

func hashOf(p []byte) uint32 { return uint32(maphash.Bytes(memoSeed, p)) }

// checkDeflate decodes one permessage-deflate payload, through the memo
// when there is one (wsd sends every deflate peer the same bytes).
func (g *gzipMemo) checkDeflate(p []byte, run uint32, size int) decoded {
	if g == nil {
		return inflateCheck(p, run, size)
	}
	return g.lookup(p, hashOf(p), run, size, inflateCheck)
}

var memoSeed = maphash.MakeSeed()

func (g *gzipMemo) lookup(p []byte, hash uint32, run uint32, size int, decode func([]byte, uint32, int) decoded) decoded {
	sh := &g.shards[hash%uint32(len(g.shards))]
	sh.mu.Lock()
	d, hit := sh.m[string(p)]
	sh.mu.Unlock()
	if hit {
		return d
	}
	d = decode(p, run, size)
	sh.mu.Lock()
	if len(sh.m) >= g.max {
		clear(sh.m)
	}
	sh.m[string(p)] = d
	sh.mu.Unlock()
	return d
}

// permessage-deflate (RFC 7692): a client compresses each message from an
// empty window (it offers no context takeover) and inflates the server's.

type deflater struct {
	w   *flate.Writer
	out bytes.Buffer
}

var deflaters = sync.Pool{New: func() any {
	d := &deflater{}
	d.w, _ = flate.NewWriter(&d.out, flate.BestSpeed)
	return d
}}

// appendDeflate appends the permessage-deflate payload of p to dst.
func appendDeflate(dst, p []byte) []byte {
	d := deflaters.Get().(*deflater)
	defer deflaters.Put(d)
	d.out.Reset()
	d.w.Reset(&d.out)
	d.w.Write(p)
	d.w.Flush()
	return append(dst, d.out.Bytes()[:d.out.Len()-4]...) // without 00 00 ff ff
}

// deflateTail ends a payload: the sync flush's 00 00 ff ff, then an empty
// final block so the reader stops with io.EOF.
var deflateTail = []byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}

type inflater struct {
	r    io.ReadCloser
	src  bytes.Reader
	tail bytes.Reader
	mr   multiByteReader
	out  []byte
}

// multiByteReader reads a then b, and is an io.ByteReader so flate does
// not wrap it in a bufio.Reader.
type multiByteReader struct{ a, b *bytes.Reader }

func (m *multiByteReader) Read(p []byte) (int, error) {
	if m.a.Len() > 0 {
		return m.a.Read(p)
	}
	return m.b.Read(p)
}

func (m *multiByteReader) ReadByte() (byte, error) {
	if m.a.Len() > 0 {
		return m.a.ReadByte()
	}
	return m.b.ReadByte()
}

var inflaters = sync.Pool{New: func() any {
	f := &inflater{}
	f.mr = multiByteReader{&f.src, &f.tail}
	f.r = flate.NewReader(&f.mr)
	return f
}}

// inflateCheck inflates a permessage-deflate payload and parses the result.
func inflateCheck(p []byte, run uint32, size int) decoded {
	return inflateWith(p, run, size, size, parsePayload)
}

// inflateWith inflates p into at most limit bytes and hands them to parse
// (valid only during the call).
func inflateWith(p []byte, run uint32, size, limit int, parse func([]byte, uint32, int) decoded) decoded {
	f := inflaters.Get().(*inflater)
	defer inflaters.Put(f)
	f.src.Reset(p)
	f.tail.Reset(deflateTail)
	f.r.(flate.Resetter).Reset(&f.mr, nil)
	if cap(f.out) < limit+1 {
		f.out = make([]byte, limit+1)
	}
	out := f.out[:limit+1]
	n := 0
	for {
		m, err := f.r.Read(out[n:])
		n += m
		switch {
		case err == io.EOF:
			return parse(out[:n], run, size)
		case err != nil, n == len(out):
			return decoded{}
		}
	}
}
