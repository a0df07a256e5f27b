package codec

import (
	stdflate "compress/flate"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// permessage-deflate data (RFC 7692 section 7.2).
//
// Outbound, a message is compressed from an empty window (wsd always
// answers server_no_context_takeover), sync-flushed, and sent without the
// flush's final 0x00 0x00 0xff 0xff, with RSV1 set. No compressor outlives
// a call: they are pooled.
//
// Inbound, a pooled inflater is borrowed per message, primed with the
// connection's dictionary (the last 2^w bytes the client's messages
// inflated to, if it keeps its context) and returned at once: an idle
// connection holds at most that dictionary, never an inflater.

// deflateLevel is the level messages are compressed at; chat messages are
// short and a broadcast is compressed on the fan-out path.
const deflateLevel = flate.BestSpeed

// DeflateMinSize is the smallest text wsd compresses. Below it a deflate
// peer gets the plain text frame (RSV1 clear): level 1 stores chat text
// under 64 bytes (the payload grows by 6 bytes), at 64 bytes it loses 1.5
// bytes on average, at 96 it saves 12%, at 128 26%, at 512 52%
// (BenchmarkDeflateSizes, varied chat JSON). From the threshold up, a
// frame that does not shrink is sent plain too.
const DeflateMinSize = 64

type deflater struct {
	w   *flate.Writer
	out appendWriter
}

var deflaters = sync.Pool{New: func() any {
	d := &deflater{}
	d.w, _ = flate.NewWriter(&d.out, deflateLevel)
	return d
}}

// syncTail ends a sync flush; permessage-deflate leaves it off the wire.
var syncTail = [4]byte{0x00, 0x00, 0xff, 0xff}

// appendDeflate appends to dst the permessage-deflate payload of text: its
// DEFLATE from an empty window, sync-flushed, without the final
// 0x00 0x00 0xff 0xff.
func appendDeflate(dst, text []byte) []byte {
	d := deflaters.Get().(*deflater)
	d.out.b = dst
	d.w.Reset(&d.out)
	_, _ = d.w.Write(text) // appendWriter never fails
	_ = d.w.Flush()
	dst = d.out.b
	d.out.b = nil
	deflaters.Put(d)
	return dst[:len(dst)-len(syncTail)]
}

// AppendDeflateFrame appends to dst one text frame carrying text for a
// permessage-deflate peer: compressed with RSV1 set when text is at least
// DeflateMinSize bytes and compression makes it smaller, else the plain
// text frame. compressed reports which.
func AppendDeflateFrame(dst, text []byte) (frame []byte, compressed bool) {
	if len(text) < DeflateMinSize {
		return AppendFrame(dst, OpText, text), false
	}
	start := len(dst)
	// Compress behind room for the largest header, then slide the payload
	// down once the header size is known.
	dst = append(dst, make([]byte, maxServerHeader)...)
	dst = appendDeflate(dst, text)
	n := len(dst) - start - maxServerHeader
	if n >= len(text) {
		return AppendFrame(dst[:start], OpText, text), false
	}
	var hb [maxServerHeader]byte
	hdr := appendHeader(hb[:0], true, OpText, n)
	hdr[0] |= rsv1
	copy(dst[start:], hdr)
	copy(dst[start+len(hdr):], dst[start+maxServerHeader:])
	return dst[:start+len(hdr)+n], true
}

// rsv1 is the Per-Message Compressed bit in a frame's first byte.
const rsv1 = 0x40

// inflateTail is appended to every compressed payload: the sync flush the
// sender left off (RFC 7692 7.2.2), then an empty final stored block so the
// inflater ends with io.EOF instead of waiting for more input.
var inflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// tailReader reads a payload, then inflateTail, without copying either.
// It is an io.ByteReader so flate reads from it directly, with no bufio.
type tailReader struct {
	p    []byte
	tail []byte
}

func (r *tailReader) Read(b []byte) (int, error) {
	if len(r.p) == 0 {
		r.p, r.tail = r.tail, nil
		if len(r.p) == 0 {
			return 0, io.EOF
		}
	}
	n := copy(b, r.p)
	r.p = r.p[n:]
	return n, nil
}

func (r *tailReader) ReadByte() (byte, error) {
	if len(r.p) == 0 {
		r.p, r.tail = r.tail, nil
		if len(r.p) == 0 {
			return 0, io.EOF
		}
	}
	c := r.p[0]
	r.p = r.p[1:]
	return c, nil
}

// Inflation uses the standard library's decompressor, not klauspost's:
// klauspost's keeps Huffman tables across Reset without clearing them, so a
// pooled one decodes some corrupt streams (incomplete codes) through entries
// left by an earlier message — possibly another connection's — instead of
// failing. DEFLATE has no checksum to catch that (gzip's CRC does, which is
// why Gunzip can pool klauspost readers). FuzzInflate found it.
type inflater struct {
	r   io.ReadCloser // the decompressor, a flate.Resetter
	src tailReader
}

var inflaters = sync.Pool{New: func() any {
	f := &inflater{}
	f.r = stdflate.NewReader(&f.src)
	return f
}}

// Inflate appends to dst the message a permessage-deflate payload
// compresses (RFC 7692 7.2.2), with dict as the window the sender's
// compressor had before it (nil when it takes over no context). It fails
// with ErrBadDeflate for data that does not inflate and with
// ErrDeflateTooBig as soon as the output would pass limit bytes, so a
// decompression bomb costs about limit bytes of memory, not the bomb.
//
// An empty payload is an empty message. A message may end with a final
// (BFINAL) block, as RFC 7692 7.2.3.5 lets senders do, followed by
// nothing or by the one 0x00 octet of that section's example (with the
// appended 0x00 0x00 0xff 0xff, an empty stored block); any other bytes
// after it are no part of the message and fail with ErrBadDeflate.
func inflate(dst, payload, dict []byte, limit int) ([]byte, error) {
	if len(payload) == 0 {
		return dst, nil
	}
	f := inflaters.Get().(*inflater)
	defer func() {
		f.src = tailReader{} // do not pin the caller's buffers in the pool
		inflaters.Put(f)
	}()
	f.src = tailReader{p: payload, tail: inflateTail}
	_ = f.r.(stdflate.Resetter).Reset(&f.src, dict)
	out, err := readCapped(dst, f.r, limit, ErrDeflateTooBig, ErrBadDeflate)
	// The inflater ended at a final block; it reads no further than the
	// byte holding that block's last bit, so what it left of the payload
	// (the tail not reached yet) followed the final block.
	if rest := f.src.p; err == nil && f.src.tail != nil && !(len(rest) == 0 || len(rest) == 1 && rest[0] == 0) {
		return dst, ErrBadDeflate
	}
	return out, err
}

// dictWindow keeps the last bytes of a client's inflated messages: the
// dictionary its next compressed message may refer back into when it takes
// over its context. The zero value is empty and one pointer in size (every
// connection's Stream has one, most never use it); the buffer is allocated
// at the first Push and is 2^bits bytes at most.
type dictWindow struct {
	p *[]byte
}

// Bytes returns the dictionary, nil while empty.
func (w *dictWindow) Bytes() []byte {
	if w.p == nil {
		return nil
	}
	return *w.p
}

// Push appends p, keeping only the last 1<<bits bytes.
func (w *dictWindow) Push(p []byte, bits uint8) {
	if w.p == nil {
		w.p = new([]byte)
	}
	b := *w.p
	// zlib up to 1.2.8 compresses with a 512-byte window when asked for
	// 256 (RFC 7692 section 7.1.2.2 notes the quirk): keep at least that,
	// a longer dictionary is always harmless.
	size := 1 << max(bits, 9)
	if len(p) >= size {
		b = grow(b, size, size)
		b = append(b[:0], p[len(p)-size:]...)
	} else {
		if keep := size - len(p); len(b) > keep {
			// Drop the oldest bytes first.
			n := copy(b, b[len(b)-keep:])
			b = b[:n]
		}
		b = grow(b, len(b)+len(p), size)
		b = append(b, p...)
	}
	*w.p = b
}

// grow makes room in b for need bytes, never past size.
func grow(b []byte, need, size int) []byte {
	if need <= cap(b) {
		return b
	}
	nb := make([]byte, len(b), min(size, max(2*cap(b), need, 256)))
	copy(nb, b)
	return nb
}

// Reset forgets the dictionary and its buffer.
func (w *dictWindow) Reset() { w.p = nil }
