package codec

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// The reference implementation here is the standard library's
// compress/flate, independent of the klauspost code wsd uses.

// stdDeflate compresses p as a permessage-deflate client would: from an
// empty window, sync-flushed, the 0x00 0x00 0xff 0xff tail removed.
func stdDeflate(p []byte) []byte {
	var b bytes.Buffer
	w, _ := stdflate.NewWriter(&b, stdflate.DefaultCompression)
	w.Write(p)
	w.Flush()
	out := b.Bytes()
	if !bytes.HasSuffix(out, syncTail[:]) {
		panic("no sync tail")
	}
	return out[:len(out)-4]
}

// stdInflate inflates a permessage-deflate payload with the standard
// library, RFC 7692 7.2.2's way: the tail appended, read to the end.
func stdInflate(payload, dict []byte) ([]byte, error) {
	r := stdflate.NewReaderDict(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(inflateTail)), dict)
	return io.ReadAll(r)
}

// deflateTexts are the texts of the deflate tests and benchmarks.
var deflateTexts = []struct {
	name string
	text []byte
}{
	{"empty", nil},
	{"short", []byte("hi")},
	{"chat 63", chatJSON(63)},
	{"chat 64", chatJSON(64)},
	{"chat 128", chatJSON(128)},
	{"chat 1KiB", chatJSON(1024)},
	{"utf8", []byte(strings.Repeat("你好, κόσμε ", 40))},
	{"random 100", randomBytes(100, 1)},
	{"random 200", randomBytes(200, 2)},
	{"random 70000", randomBytes(70000, 3)},
	{"zeros 70000", make([]byte, 70000)},
	{"chat 64KiB", chatJSON(64 << 10)},
}

// TestAppendDeflateFrame: one server frame per text, RSV1 set exactly when
// the payload is compressed, which the standard library inflates back.
func TestAppendDeflateFrame(t *testing.T) {
	for _, tc := range deflateTexts {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("before")
			frame, compressed := AppendDeflateFrame(bytes.Clone(prefix), tc.text)
			if !bytes.HasPrefix(frame, prefix) {
				t.Fatal("dst clobbered")
			}
			frame = frame[len(prefix):]
			h, size := parseHeader(frame)
			if size == 0 || !h.Fin || h.Op != OpText || h.Masked || int(h.Length) != len(frame)-size {
				t.Fatalf("bad frame header %+v", h)
			}
			payload := frame[size:]
			if (h.Rsv == 4) != compressed || (h.Rsv != 0 && h.Rsv != 4) {
				t.Fatalf("rsv %d, compressed %v", h.Rsv, compressed)
			}
			if !compressed {
				if !bytes.Equal(payload, tc.text) {
					t.Fatal("uncompressed payload differs")
				}
				if len(tc.text) >= DeflateMinSize && len(appendDeflate(nil, tc.text)) < len(tc.text) {
					t.Fatalf("%d bytes that compress were sent plain", len(tc.text))
				}
				return
			}
			if len(tc.text) < DeflateMinSize || len(payload) >= len(tc.text) {
				t.Fatalf("compressed %d bytes into %d", len(tc.text), len(payload))
			}
			got, err := stdInflate(payload, nil)
			if err != nil || !bytes.Equal(got, tc.text) {
				t.Fatalf("standard library inflates it to %d bytes, %v", len(got), err)
			}
			if got, err := inflate(nil, payload, nil, len(tc.text)); err != nil || !bytes.Equal(got, tc.text) {
				t.Fatalf("Inflate: %d bytes, %v", len(got), err)
			}
		})
	}
}

// TestAppendDeflateWindow: a message compressed from an empty window never
// refers further back than its own length, which is what lets wsd honour
// any server_max_window_bits for messages no longer than the window.
func TestAppendDeflateWindow(t *testing.T) {
	for _, bits := range []uint8{8, 9, 10, 12} {
		text := chatJSON(1 << bits)
		payload := appendDeflate(nil, text)
		// An inflater that has only 2^bits bytes of history is the
		// standard library's with its window... which is always 32 KiB;
		// instead check the distance bound directly by inflating with
		// a garbage dictionary: any reference before the message's
		// start would pull dictionary bytes into the output.
		got, err := stdInflate(payload, bytes.Repeat([]byte{0xEE}, 32<<10))
		if err != nil || !bytes.Equal(got, text) {
			t.Fatalf("%d bits: %v", bits, err)
		}
	}
}

func TestInflate(t *testing.T) {
	for _, tc := range deflateTexts {
		for _, payload := range [][]byte{stdDeflate(tc.text), appendDeflate(nil, tc.text)} {
			got, err := inflate([]byte("dst"), payload, nil, len(tc.text))
			if err != nil || string(got[:3]) != "dst" || !bytes.Equal(got[3:], tc.text) {
				t.Fatalf("%s: %d bytes, %v", tc.name, len(got), err)
			}
			if len(tc.text) > 0 {
				if _, err := inflate(nil, payload, nil, len(tc.text)-1); err != ErrDeflateTooBig {
					t.Fatalf("%s: one byte over the limit: %v", tc.name, err)
				}
			}
		}
	}
	// A message ended with a final block (RFC 7692 7.2.3.5), as a sender
	// without sync flush would: the appended tail is ignored.
	var b bytes.Buffer
	w, _ := stdflate.NewWriter(&b, 9)
	w.Write([]byte("final block"))
	w.Close()
	if got, err := inflate(nil, b.Bytes(), nil, 100); err != nil || string(got) != "final block" {
		t.Fatalf("BFINAL: %q %v", got, err)
	}
	// RFC 7692 7.2.3.5's example: "Hello" in a final block, then one 0x00.
	if got, err := inflate(nil, []byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, nil, 5); err != nil || string(got) != "Hello" {
		t.Fatalf("RFC BFINAL example: %q %v", got, err)
	}
	// Anything else after the final block is not part of the message.
	for name, rest := range map[string][]byte{
		"junk":          []byte("junk"),
		"one 0x01":      {0x01},
		"two zeros":     {0x00, 0x00},
		"another block": stdDeflate([]byte("more")),
	} {
		p := append(append([]byte(nil), b.Bytes()...), rest...)
		if got, err := inflate([]byte("x"), p, nil, 100); err != ErrBadDeflate || string(got) != "x" {
			t.Errorf("BFINAL then %s: %q %v, want ErrBadDeflate", name, got, err)
		}
	}
	for name, p := range map[string][]byte{
		"empty payload":               nil,
		"empty message (RFC 7.2.3.6)": {0x00},
		"empty message, stdlib":       stdDeflate(nil),
	} {
		if got, err := inflate([]byte{}, p, nil, 0); err != nil || len(got) != 0 {
			t.Fatalf("%s: %q %v", name, got, err)
		}
	}
	// RFC 7692 7.2.3.1's "Hello" and 7.2.3.2's, sharing the window.
	hello := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}
	if got, err := inflate(nil, hello, nil, 5); err != nil || string(got) != "Hello" {
		t.Fatalf("RFC example: %q %v", got, err)
	}
	if got, err := inflate(nil, []byte{0xf2, 0x00, 0x11, 0x00, 0x00}, []byte("Hello"), 5); err != nil || string(got) != "Hello" {
		t.Fatalf("RFC example with context takeover: %q %v", got, err)
	}
	for name, p := range map[string][]byte{
		"reserved block type":     {0xff, 0xff},
		"bad stored length":       {0x00, 0x05, 0x00, 0x00, 0x00},
		"truncated dynamic block": stdDeflate(chatJSON(1000))[:20],
		"reference before start":  {0xf2, 0x00, 0x11, 0x00, 0x00},
	} {
		if got, err := inflate([]byte("x"), p, nil, 1<<20); err != ErrBadDeflate || string(got) != "x" {
			t.Errorf("%s: %q %v, want ErrBadDeflate", name, got, err)
		}
	}
}

const deflateBombSize = 100 << 20

// deflateBomb is 100 MiB of zeros, compressed to about 100 KiB.
func deflateBomb() []byte {
	var b bytes.Buffer
	w, _ := stdflate.NewWriter(&b, stdflate.BestSpeed)
	zeros := make([]byte, 1<<20)
	for range deflateBombSize >> 20 {
		w.Write(zeros)
	}
	w.Flush()
	return b.Bytes()[:b.Len()-4]
}

// TestInflateBomb: 100 MiB of zeros stops at the limit, having allocated
// about the limit.
func TestInflateBomb(t *testing.T) {
	inflate(nil, stdDeflate([]byte("warm the pool")), nil, 1<<20)
	checkBomb(t, deflateBomb(), func(dst, src []byte, limit int) ([]byte, error) {
		return inflate(dst, src, nil, limit)
	}, ErrDeflateTooBig)
}

// checkBomb: inflate of bomb with a 1 MiB limit fails with tooBig and
// returns nothing, having allocated about the limit, not the bomb: from an
// empty dst a few times the limit (the output grows geometrically), into
// a buffer with room for the limit (almost) nothing.
func checkBomb(t *testing.T, bomb []byte, inflate func(dst, src []byte, limit int) ([]byte, error), tooBig error) {
	t.Helper()
	const limit = 1 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	out, err := inflate(nil, bomb, limit)
	runtime.ReadMemStats(&after)
	if err != tooBig || len(out) != 0 || cap(out) > 2*limit+1 {
		t.Fatalf("err %v (want %v), %d bytes, cap %d", err, tooBig, len(out), cap(out))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8*limit {
		t.Fatalf("inflating the bomb allocated %d bytes, limit %d", alloc, limit)
	}
	dst := make([]byte, 0, limit+1)
	runtime.ReadMemStats(&before)
	out, err = inflate(dst, bomb, limit)
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; err != tooBig || alloc > 64<<10 || cap(out) != limit+1 {
		t.Fatalf("into a %d-byte buffer: %v, allocated %d bytes, cap %d", limit+1, err, alloc, cap(out))
	}
}

// TestInflateContextTakeover: a client that keeps its compressor across
// messages, inflated with only a dictWindow between messages, for the full
// window and for reduced ones.
func TestInflateContextTakeover(t *testing.T) {
	msgs := [][]byte{[]byte("Hello"), []byte("Hello"), chatJSON(300), chatJSON(300), []byte("x"), nil, chatJSON(5000), chatJSON(200),
		[]byte("你好, κόσμε"), []byte("你好, κόσμε"), randomBytes(3000, 7), chatJSON(100)}
	for _, bits := range []uint8{9, 10, 12, 15} {
		t.Run(fmt.Sprint(bits), func(t *testing.T) {
			var win dictWindow
			var history []byte
			var full *stdflate.Writer
			var b bytes.Buffer
			if bits == 15 {
				// The client's compressor, kept across messages.
				full, _ = stdflate.NewWriter(&b, 6)
			}
			for i, m := range msgs {
				b.Reset()
				if full != nil {
					full.Write(m)
					full.Flush()
				} else {
					// A client with a 2^bits window: it can refer back
					// into the last 2^bits bytes only.
					dict := history[max(0, len(history)-1<<bits):]
					w, _ := stdflate.NewWriterDict(&b, 6, dict)
					w.Write(m)
					w.Flush()
				}
				payload := b.Bytes()[:b.Len()-4]
				got, err := inflate(nil, payload, win.Bytes(), 1<<20)
				if err != nil || !bytes.Equal(got, m) {
					t.Fatalf("message %d: %d bytes, %v", i, len(got), err)
				}
				win.Push(got, bits)
				history = append(history, m...)
				if want := history[max(0, len(history)-1<<bits):]; !bytes.Equal(win.Bytes(), want) {
					t.Fatalf("message %d: window of %d bytes, want the last %d", i, len(win.Bytes()), len(want))
				}
				if cap(win.Bytes()) > 1<<bits {
					t.Fatalf("window buffer %d bytes for %d bits", cap(win.Bytes()), bits)
				}
			}
		})
	}
	// A client that refers further back than its window: the bytes are not
	// there, the message does not inflate.
	var b bytes.Buffer
	old := randomBytes(2000, 9)
	w, _ := stdflate.NewWriterDict(&b, 9, old)
	w.Write(old[:600])
	w.Flush()
	var win dictWindow
	win.Push(old, 9)
	if _, err := inflate(nil, b.Bytes()[:b.Len()-4], win.Bytes(), 1<<20); err != ErrBadDeflate {
		t.Fatalf("reference beyond the window: %v", err)
	}
}

// TestDeflateAllocs: with room in dst, compressing and inflating allocate
// nothing (pooled writers and readers).
func TestDeflateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	for _, n := range []int{128, 1024} {
		msg := chatJSON(n)
		buf := make([]byte, 0, 4096)
		if a := testing.AllocsPerRun(200, func() { buf, _ = AppendDeflateFrame(buf[:0], msg) }); a != 0 {
			t.Errorf("AppendDeflateFrame of %d bytes: %v allocs", n, a)
		}
		z := stdDeflate(msg)
		if a := testing.AllocsPerRun(200, func() {
			var err error
			if buf, err = inflate(buf[:0], z, nil, 1<<20); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("Inflate of %d bytes: %v allocs", n, a)
		}
	}
}

// chatWords builds varied chat text: a JSON envelope around words drawn at
// random from a small vocabulary, unlike chatJSON's one repeated line.
func chatWords(n int, seed uint64) []byte {
	words := strings.Fields("the a to and of you i it is that for on in this be are what we have was with just so can not " +
		"hello there everyone today meeting later lunch anyone going see thanks great ok sure tomorrow morning " +
		"project deploy server broken fixed working again please check message room channel update status soon")
	rng := rand.New(rand.NewPCG(seed, seed))
	var b []byte
	for len(b) < n {
		b = append(b, `{"from":"user`...)
		b = strconv.AppendInt(b, int64(rng.IntN(1000)), 10)
		b = append(b, `","text":"`...)
		for range 3 + rng.IntN(12) {
			b = append(b, words[rng.IntN(len(words))]...)
			b = append(b, ' ')
		}
		b = append(b[:len(b)-1], `"}`...)
	}
	return b[:n]
}

// BenchmarkDeflateSizes measures what compression buys chat text of each
// size, and what it costs: the numbers behind DeflateMinSize. The metrics
// are the compressed payload size and the bytes saved (negative: lost)
// against the plain payload; ns/op is one compression.
func BenchmarkDeflateSizes(b *testing.B) {
	for _, n := range []int{16, 32, 48, 64, 96, 128, 192, 256, 512, 1024, 4096} {
		for _, kind := range []string{"chat", "json"} {
			b.Run(fmt.Sprintf("%s/%d", kind, n), func(b *testing.B) {
				// Average over 64 different texts of this size.
				texts := make([][]byte, 64)
				for i := range texts {
					texts[i] = chatWords(n, uint64(i))
					if kind == "json" {
						texts[i] = chatJSON(n)
					}
				}
				total := 0
				for _, t := range texts {
					total += len(appendDeflate(nil, t))
				}
				buf := make([]byte, 0, 2*n+64)
				b.ReportAllocs()
				b.SetBytes(int64(n))
				i := 0
				for b.Loop() {
					buf = appendDeflate(buf[:0], texts[i%len(texts)])
					i++
				}
				avg := float64(total) / float64(len(texts))
				b.ReportMetric(avg, "deflated-B")
				b.ReportMetric(float64(n)-avg, "saved-B")
			})
		}
	}
}

func BenchmarkAppendDeflateFrame(b *testing.B) {
	for _, n := range []int{128, 1024} {
		msg := chatJSON(n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				buf, _ = AppendDeflateFrame(buf[:0], msg)
			}
		})
	}
}

func BenchmarkInflate(b *testing.B) {
	for _, n := range []int{128, 1024} {
		z := stdDeflate(chatJSON(n))
		for _, dict := range []int{0, 1024, 32 << 10} {
			b.Run(fmt.Sprintf("%d/dict%d", n, dict), func(b *testing.B) {
				d := chatJSON(dict)
				if dict == 0 {
					d = nil
				}
				buf := make([]byte, 0, 4096)
				b.ReportAllocs()
				b.SetBytes(int64(n))
				for b.Loop() {
					var err error
					if buf, err = inflate(buf[:0], z, d, 1<<20); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// FuzzInflate: never panics, never returns more than limit bytes, and
// agrees with the standard library's inflater.
func FuzzInflate(f *testing.F) {
	for _, tc := range deflateTexts {
		if len(tc.text) < 2000 {
			f.Add(stdDeflate(tc.text), uint16(len(tc.text)), false)
			f.Add(appendDeflate(nil, tc.text), uint16(len(tc.text)/2), true)
		}
	}
	f.Add([]byte{0xf2, 0x00, 0x11, 0x00, 0x00}, uint16(10), true)
	f.Add([]byte{0x00}, uint16(0), false)
	f.Fuzz(func(t *testing.T, in []byte, limit uint16, withDict bool) {
		var dict []byte
		if withDict {
			dict = []byte("Hello, a dictionary")
		}
		out, err := inflate([]byte("dst"), in, dict, int(limit))
		if !bytes.HasPrefix(out, []byte("dst")) {
			t.Fatal("dst clobbered")
		}
		out = out[3:]
		if len(out) > int(limit) {
			t.Fatalf("%d bytes out over limit %d", len(out), limit)
		}
		if err != nil && len(out) != 0 {
			t.Fatalf("%d bytes out with %v", len(out), err)
		}
		if len(in) == 0 {
			if err != nil || len(out) != 0 {
				t.Fatalf("empty payload: %v", err)
			}
			return
		}
		// Read one byte past the limit at most: a bomb stays cheap here too.
		want, stdErr := io.ReadAll(io.LimitReader(stdflate.NewReaderDict(
			io.MultiReader(bytes.NewReader(in), bytes.NewReader(inflateTail)), dict), int64(limit)+1))
		switch {
		case err == nil:
			if stdErr != nil || !bytes.Equal(out, want) {
				t.Fatalf("Inflate gave %d bytes; the standard library %d, %v", len(out), len(want), stdErr)
			}
		case err == ErrDeflateTooBig:
			// The limit may cut a stream off before its corruption shows.
			if stdErr == nil && len(want) <= int(limit) {
				t.Fatalf("ErrDeflateTooBig for %d bytes, limit %d", len(want), limit)
			}
		case err == ErrBadDeflate:
			if stdErr == nil && len(want) <= int(limit) {
				t.Fatalf("ErrBadDeflate for data the standard library inflates to %d bytes", len(want))
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func newStdWriterDict(w io.Writer, dict []byte) *stdflate.Writer {
	fw, _ := stdflate.NewWriterDict(w, 6, dict)
	return fw
}

// TestInflateNoStaleState: a corrupt stream with an incomplete Huffman code
// (found by FuzzInflate) must fail however the pooled inflater was used
// before. klauspost's decompressor, reused, decoded it through Huffman
// entries left by the previous message; the standard library's does not.
func TestInflateNoStaleState(t *testing.T) {
	bad := []byte("\x1c\xc7\xdd\t\x800\f\x04\xe0U\xc2=w\x82nc !X\xc8A0\xfe\xe0\xf2\"\x8f0000071\xa9\x9f\xcc\x0f")
	for _, tc := range deflateTexts {
		if len(tc.text) > 2000 {
			continue
		}
		for range 5 {
			if _, err := inflate(nil, stdDeflate(tc.text), nil, 1<<20); err != nil {
				t.Fatal(err)
			}
			if out, err := inflate(nil, bad, nil, 63); err != ErrBadDeflate {
				t.Fatalf("after %s: %d bytes, %v; want ErrBadDeflate", tc.name, len(out), err)
			}
		}
	}
}
